import type { UsageRow } from "../../api/types";

export type Dimension = "key" | "model" | "worker";

export type Bucket = { start: string; prompt: number; completion: number; requests: number; errors: number };

/** Tokens per time bucket, summed over every other dimension, oldest first. */
export function byBucket(rows: UsageRow[]): Bucket[] {
  const m = new Map<string, Bucket>();
  for (const r of rows) {
    const b = m.get(r.bucket_start) ?? { start: r.bucket_start, prompt: 0, completion: 0, requests: 0, errors: 0 };
    b.prompt += r.prompt_tokens;
    b.completion += r.completion_tokens;
    b.requests += r.requests;
    b.errors += r.errors;
    m.set(r.bucket_start, b);
  }
  return [...m.values()].sort((a, b) => (a.start < b.start ? -1 : 1));
}

export function labelOf(r: UsageRow, d: Dimension): string {
  if (d === "key") return r.key_prefix ?? r.key_id ?? "(operator)";
  if (d === "model") return r.model ?? "—";
  return r.instance_id ?? "—";
}

export type Total = { label: string; requests: number; errors: number; prompt: number; completion: number; ttftP95: number | null };

/** Totals per key, model or worker, largest first. p95 is the worst bucket's (an upper bound). */
export function totalsBy(rows: UsageRow[], d: Dimension): Total[] {
  const m = new Map<string, Total>();
  for (const r of rows) {
    const label = labelOf(r, d);
    const t = m.get(label) ?? { label, requests: 0, errors: 0, prompt: 0, completion: 0, ttftP95: null };
    t.requests += r.requests;
    t.errors += r.errors;
    t.prompt += r.prompt_tokens;
    t.completion += r.completion_tokens;
    if (r.ttft_p95_ms !== null) t.ttftP95 = Math.max(t.ttftP95 ?? 0, r.ttft_p95_ms);
    m.set(label, t);
  }
  return [...m.values()].sort((a, b) => b.prompt + b.completion - (a.prompt + a.completion));
}
