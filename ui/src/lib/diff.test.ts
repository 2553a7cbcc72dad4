import { describe, expect, it } from "vitest";
import { diff } from "./diff";

describe("diff", () => {
  it("lists changed, added and removed paths, nested in objects and arrays", () => {
    const before = { status: "booting", progress: 40, server: { id: "s", deleted: false }, volumes: [{ id: "v1" }], ip: null };
    const after = { status: "installing", progress: 50, server: { id: "s", deleted: true }, volumes: [{ id: "v1" }, { id: "v2" }], ip: "1.2.3.4", failure: null };
    expect(diff(before, after)).toEqual([
      { path: "failure", kind: "added", after: null },
      { path: "ip", kind: "changed", before: null, after: "1.2.3.4" },
      { path: "progress", kind: "changed", before: 40, after: 50 },
      { path: "server.deleted", kind: "changed", before: false, after: true },
      { path: "status", kind: "changed", before: "booting", after: "installing" },
      { path: "volumes[1]", kind: "added", after: { id: "v2" } },
    ]);
  });

  it("is empty between equal states and reports a removed key", () => {
    expect(diff({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toEqual([]);
    expect(diff({ a: 1, b: 2 }, { a: 1 })).toEqual([{ path: "b", kind: "removed", before: 2 }]);
  });
});
