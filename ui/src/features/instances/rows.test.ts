import { describe, expect, it } from "vitest";
import type { Instance } from "../../api/types";
import { applyFilters, costSoFar, DEFAULT_FILTERS, filtersFromParams, filtersToParams, upsert } from "./rows";

const row = (id: string, over: Partial<Instance> = {}) =>
  ({
    id, status: "ready", progress: 100, model_repo: "meta-llama/Llama-3.1-8B-Instruct", zone: "fr-par-2", instance_type: "L4-1-24G",
    public_ip: "10.0.0.1", cost_micro_eur: 0, hourly_price_micro_eur: 3_600_000, requested_at: "2026-11-30T00:00:00Z", terminated_at: null, version: 1,
    ...over,
  }) as Instance;

describe("instance filters", () => {
  it("round-trip through the URL, defaults left out", () => {
    const f = { ...DEFAULT_FILTERS, statuses: ["ready", "failed"] as Instance["status"][], q: "llama", sort: "cost" as const, desc: false };
    const p = filtersToParams(f);
    expect(p.toString()).toBe("status=ready%2Cfailed&q=llama&sort=cost");
    expect(filtersFromParams(p)).toEqual(f);
    expect(filtersToParams(DEFAULT_FILTERS).toString()).toBe("");
    expect(filtersFromParams(new URLSearchParams("status=bogus,ready&sort=-nope"))).toMatchObject({ statuses: ["ready"], sort: "requested_at", desc: true });
  });

  it("filter by status, zone and text (model, id, IP) and hide archived by default", () => {
    const rows = [
      row("a"),
      row("b", { status: "failed", zone: "nl-ams-1" }),
      row("c", { model_repo: "BAAI/bge-m3", public_ip: "192.168.1.9" }),
      row("d", { status: "archived" }),
    ];
    const ids = (f: Partial<typeof DEFAULT_FILTERS>) => applyFilters(rows, { ...DEFAULT_FILTERS, ...f }).map((r) => r.id).sort();
    expect(ids({})).toEqual(["a", "b", "c"]);
    expect(ids({ archived: true })).toEqual(["a", "b", "c", "d"]);
    expect(ids({ statuses: ["failed"] })).toEqual(["b"]);
    expect(ids({ zone: "nl-ams-1" })).toEqual(["b"]);
    expect(ids({ q: "BGE" })).toEqual(["c"]);
    expect(ids({ q: "192.168" })).toEqual(["c"]);
  });

  it("sort by status in life-cycle order, both ways", () => {
    const rows = [row("r", { status: "ready" }), row("q", { status: "requested" }), row("f", { status: "failed" })];
    expect(applyFilters(rows, { ...DEFAULT_FILTERS, sort: "status", desc: false }).map((r) => r.id)).toEqual(["q", "r", "f"]);
    expect(applyFilters(rows, { ...DEFAULT_FILTERS, sort: "status", desc: true }).map((r) => r.id)).toEqual(["f", "r", "q"]);
  });
});

describe("live rows", () => {
  it("a fresher copy replaces the row, an older one is ignored, a new one goes first", () => {
    const rows = [row("a", { version: 3 }), row("b")];
    expect(upsert(rows, row("a", { version: 4, status: "draining" }))[0].status).toBe("draining");
    expect(upsert(rows, row("a", { version: 2, status: "booting" }))).toBe(rows);
    expect(upsert(rows, row("z")).map((r) => r.id)).toEqual(["z", "a", "b"]);
  });

  it("cost so far counts whole seconds at the hourly price while billing runs", () => {
    const now = Date.parse("2026-11-30T00:10:00.900Z");
    expect(costSoFar(row("a"), now)).toBe(600_000); // 600 s at 3.6 €/h
    expect(costSoFar(row("a", { terminated_at: "2026-11-30T00:01:00Z", cost_micro_eur: 60_000 }), now)).toBe(60_000);
  });
});
