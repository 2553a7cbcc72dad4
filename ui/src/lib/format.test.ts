import { describe, expect, it } from "vitest";
import { ageOf, eur } from "./format";

describe("format", () => {
  it("shows micro-euros without floats: cents, or four decimals under one euro", () => {
    expect(eur(1_242_600)).toBe("€1.24");
    expect(eur(12_345_678_900)).toBe("€12,345.67");
    expect(eur(750_000)).toBe("€0.7500");
    expect(eur(345)).toBe("€0.0003");
    expect(eur(0)).toBe("€0.00");
    expect(eur(-2_500_000)).toBe("-€2.50");
    expect(eur(null)).toBe("—");
  });

  it("shows ages in the largest useful unit", () => {
    const now = Date.parse("2026-11-30T12:00:00Z");
    expect(ageOf("2026-11-30T11:59:30Z", now)).toBe("30s");
    expect(ageOf("2026-11-30T10:55:00Z", now)).toBe("1h05");
    expect(ageOf("2026-11-28T09:00:00Z", now)).toBe("2d3h");
  });
});
