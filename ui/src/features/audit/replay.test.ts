import { describe, expect, it } from "vitest";
import type { Instance } from "../../api/types";
import { ev } from "../../test/samples";
import { changesOf, exportHistory, indexAtTime } from "./replay";

const state = (over: Partial<Instance>) => ({ id: "i", status: "requested", progress: 5, cost_micro_eur: 0, cost_eur: "0.000000", public_ip: null, ...over }) as Instance;

describe("replay", () => {
  it("shows what an event changed, leaving out the cost that only time moved", () => {
    const before = state({ status: "booting", progress: 30, cost_micro_eur: 10 });
    const after = state({ status: "booting", progress: 40, cost_micro_eur: 25, public_ip: "10.0.0.7" });
    expect(changesOf(before, after).map((c) => c.path)).toEqual(["progress", "public_ip"]);
  });

  it("the first event's changes are the whole first state", () => {
    const first = state({});
    expect(changesOf(null, first).every((c) => c.kind === "added")).toBe(true);
    expect(changesOf(null, first).map((c) => c.path)).toContain("status");
  });

  it("finds the last event at or before a time", () => {
    const h = [ev("A", {}, { recorded_at: "2026-11-30T10:00:00Z" }), ev("B", {}, { recorded_at: "2026-11-30T10:05:00Z" })];
    expect(indexAtTime(h, "2026-11-30T09:59:59Z")).toBe(-1);
    expect(indexAtTime(h, "2026-11-30T10:00:00Z")).toBe(0);
    expect(indexAtTime(h, "2026-11-30T10:07:00Z")).toBe(1);
  });

  it("exports every event with the state it left", () => {
    const e = ev("InstanceRequested", {});
    const out = exportHistory("i", [e], new Map([[e.position, state({})]]));
    expect(out.history[0].state_after?.status).toBe("requested");
    expect(out.instance_id).toBe("i");
  });
});
