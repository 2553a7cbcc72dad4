// A JSON diff between two states: what one event changed, path by path.

export type Change = { path: string; kind: "added" | "removed" | "changed"; before?: unknown; after?: unknown };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function diff(before: unknown, after: unknown, path = ""): Change[] {
  if (Object.is(before, after)) return [];
  if (Array.isArray(before) && Array.isArray(after)) {
    const out: Change[] = [];
    const n = Math.max(before.length, after.length);
    for (let i = 0; i < n; i++) {
      const p = `${path}[${i}]`;
      if (i >= before.length) out.push({ path: p, kind: "added", after: after[i] });
      else if (i >= after.length) out.push({ path: p, kind: "removed", before: before[i] });
      else out.push(...diff(before[i], after[i], p));
    }
    return out;
  }
  if (isObject(before) && isObject(after)) {
    const out: Change[] = [];
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const k of [...keys].sort()) {
      const p = path ? `${path}.${k}` : k;
      if (!(k in before)) out.push({ path: p, kind: "added", after: after[k] });
      else if (!(k in after)) out.push({ path: p, kind: "removed", before: before[k] });
      else out.push(...diff(before[k], after[k], p));
    }
    return out;
  }
  if (before === undefined) return [{ path: path || "$", kind: "added", after }];
  if (after === undefined) return [{ path: path || "$", kind: "removed", before }];
  return [{ path: path || "$", kind: "changed", before, after }];
}

/** Paths whose change is only the passing of time (not worth showing as an event's effect). */
export const CLOCK_PATHS = new Set(["cost_micro_eur", "cost_eur"]);
