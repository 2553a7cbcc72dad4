import { describe, expect, it } from "vitest";
import type { Instance } from "../../api/types";
import { USAGE } from "../../test/samples";
import { runtimeByModel } from "./runtime";

const inst = (model_repo: string, status: string, gpu_count = 1, vram_per_gpu_gb = 24) => ({ model_repo, status, gpu_count, vram_per_gpu_gb }) as Instance;

describe("runtimeByModel", () => {
  it("counts live instances, ready GPUs and VRAM, and traffic with a request-weighted TTFT", () => {
    const r = runtimeByModel(
      [inst("meta-llama/Llama-3.1-8B-Instruct", "ready", 2), inst("meta-llama/Llama-3.1-8B-Instruct", "installing"), inst("meta-llama/Llama-3.1-8B-Instruct", "terminated")],
      USAGE.rows,
    );
    const llama = r.get("meta-llama/llama-3.1-8b-instruct")!;
    expect([llama.instances, llama.ready, llama.gpus, llama.vramGb]).toEqual([2, 1, 2, 48]);
    expect([llama.requests, llama.errors, llama.promptTokens]).toEqual([200, 2, 60000]);
    expect(llama.ttftP50).toBe(84); // (80*120 + 90*80) / 200
    expect(r.get("baai/bge-m3")!.ttftP50).toBeNull();
  });
});
