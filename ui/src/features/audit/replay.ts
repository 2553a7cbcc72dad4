// The auditor's replay: states at consecutive positions of an instance's history, and what
// each event changed between them.
import type { EventEnvelope, Instance } from "../../api/types";
import { CLOCK_PATHS, diff, type Change } from "../../lib/diff";

/** What event `k` changed: the diff between the state before it and the state after it. */
export function changesOf(before: Instance | null, after: Instance): Change[] {
  const changes = diff(before ?? {}, after);
  return changes.filter((c) => !CLOCK_PATHS.has(c.path));
}

/** The index in `history` of the last event at or before `at` (a time), or -1. */
export function indexAtTime(history: EventEnvelope[], at: string): number {
  const t = Date.parse(at);
  let k = -1;
  history.forEach((e, i) => {
    if (Date.parse(e.recorded_at) <= t) k = i;
  });
  return k;
}

export function exportHistory(id: string, history: EventEnvelope[], states: Map<number, Instance>) {
  return {
    instance_id: id,
    exported_at: new Date().toISOString(),
    history: history.map((e) => ({ ...e, state_after: states.get(e.position) ?? null })),
  };
}
