import type { EventEnvelope } from "../../api/types";

export type EventFilters = { aggregate_type: string; event_type: string; correlation_id: string; aggregate_id: string };

export const NO_FILTERS: EventFilters = { aggregate_type: "", event_type: "", correlation_id: "", aggregate_id: "" };

export function filtersFromParams(p: URLSearchParams): EventFilters {
  return {
    aggregate_type: p.get("aggregate_type") ?? "",
    event_type: p.get("event_type") ?? "",
    correlation_id: p.get("correlation_id") ?? "",
    aggregate_id: p.get("aggregate_id") ?? "",
  };
}

export function filtersToParams(f: EventFilters): URLSearchParams {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) p.set(k, v);
  return p;
}

/** Exact matches, as the server's filters (docs/api.md), except event type: a prefix match. */
export function matches(e: EventEnvelope, f: EventFilters): boolean {
  return (
    (!f.aggregate_type || e.aggregate_type === f.aggregate_type) &&
    (!f.event_type || e.event_type.toLowerCase().startsWith(f.event_type.toLowerCase())) &&
    (!f.correlation_id || e.metadata.correlation_id === f.correlation_id.trim()) &&
    (!f.aggregate_id || e.aggregate_id === f.aggregate_id)
  );
}

/** The stored log followed by the live events it does not hold, newest first. */
export function combine(backfill: EventEnvelope[], backfillSeen: Set<number>, live: EventEnvelope[]): EventEnvelope[] {
  const out = backfill.slice();
  for (const e of live) if (!backfillSeen.has(e.position)) out.push(e);
  return out.reverse();
}

export function filterEvents(all: EventEnvelope[], f: EventFilters): EventEnvelope[] {
  if (!f.aggregate_type && !f.event_type && !f.correlation_id && !f.aggregate_id) return all;
  return all.filter((e) => matches(e, f));
}
