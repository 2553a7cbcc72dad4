import type { Instance, UsageRow } from "../../api/types";

export type ModelRuntime = {
  instances: number;
  ready: number;
  gpus: number;
  vramGb: number;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  ttftP50: number | null;
};

const EMPTY: ModelRuntime = { instances: 0, ready: 0, gpus: 0, vramGb: 0, requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, ttftP50: null };
const LIVE = new Set(["requested", "provisioning", "booting", "installing", "starting", "ready", "unavailable", "draining"]);

/**
 * Capacity per model (repository id) from live instances, traffic from usage rows. GPUs and
 * VRAM count only ready instances: what can serve now.
 */
export function runtimeByModel(instances: Instance[], usage: UsageRow[]): Map<string, ModelRuntime> {
  const out = new Map<string, ModelRuntime>();
  const get = (k: string) => {
    const key = k.toLowerCase();
    if (!out.has(key)) out.set(key, { ...EMPTY });
    return out.get(key)!;
  };
  for (const i of instances) {
    if (!LIVE.has(i.status)) continue;
    const r = get(i.model_repo);
    r.instances++;
    if (i.status === "ready") {
      r.ready++;
      r.gpus += i.gpu_count;
      r.vramGb += i.gpu_count * i.vram_per_gpu_gb;
    }
  }
  const ttft = new Map<string, { sum: number; n: number }>();
  for (const u of usage) {
    if (!u.model) continue;
    const r = get(u.model);
    r.requests += u.requests;
    r.errors += u.errors;
    r.promptTokens += u.prompt_tokens;
    r.completionTokens += u.completion_tokens;
    if (u.ttft_p50_ms !== null && u.requests > 0) {
      const t = ttft.get(u.model.toLowerCase()) ?? { sum: 0, n: 0 };
      t.sum += u.ttft_p50_ms * u.requests;
      t.n += u.requests;
      ttft.set(u.model.toLowerCase(), t);
    }
  }
  for (const [k, t] of ttft) get(k).ttftP50 = Math.round(t.sum / t.n);
  return out;
}
