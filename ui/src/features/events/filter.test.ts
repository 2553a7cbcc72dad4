import { describe, expect, it } from "vitest";
import { ev } from "../../test/samples";
import { combine, filterEvents, filtersFromParams, NO_FILTERS } from "./filter";

describe("event log", () => {
  it("combines the stored log with live events it does not hold, newest first", () => {
    const a = ev("ModelRegistered", {}, { aggregate_type: "model" });
    const b = ev("InstanceRequested", {});
    const c = ev("ProvisioningStarted", {});
    const all = combine([a, b], new Set([a.position, b.position]), [b, c]);
    expect(all.map((e) => e.position)).toEqual([c.position, b.position, a.position]);
  });

  it("filters by aggregate type, event type prefix and correlation id, combined", () => {
    const corr = "0193a5b0-0000-7000-8000-000000000001";
    const events = [
      ev("ModelRegistered", {}, { aggregate_type: "model" }),
      ev("PhaseStarted", {}),
      ev("PhaseLogged", {}, { metadata: { correlation_id: corr } }),
      ev("InstanceReady", {}, { metadata: { correlation_id: corr } }),
    ];
    const types = (q: string) => filterEvents(events, filtersFromParams(new URLSearchParams(q))).map((e) => e.event_type);
    expect(types("aggregate_type=model")).toEqual(["ModelRegistered"]);
    expect(types("event_type=phase")).toEqual(["PhaseStarted", "PhaseLogged"]);
    expect(types(`correlation_id=${corr}`)).toEqual(["PhaseLogged", "InstanceReady"]);
    expect(types(`correlation_id=${corr}&event_type=Instance`)).toEqual(["InstanceReady"]);
    expect(filterEvents(events, NO_FILTERS)).toBe(events);
  });
});
