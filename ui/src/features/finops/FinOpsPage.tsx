import { useEffect, useMemo, useRef, useState } from "react";
import { api, download, isNotAvailable, qs } from "../../api/client";
import { useLiveEvents, useStreamStatus } from "../../api/live";
import type { Costs, Usage } from "../../api/types";
import { ErrorBox, NotAvailable } from "../../components/common";
import { eur, num, shortId } from "../../lib/format";
import { byBucket, totalsBy, type Dimension } from "./aggregate";
import { HBars, StackedBars } from "./charts";

function isoDaysAgo(days: number): string {
  return new Date(Date.now() - days * 86400_000).toISOString().slice(0, 10);
}

export function FinOpsPage() {
  const [from, setFrom] = useState(isoDaysAgo(7));
  const [to, setTo] = useState(isoDaysAgo(-1));
  const [bucket, setBucket] = useState<"hour" | "day">("day");
  const [dim, setDim] = useState<Dimension>("model");
  const [usage, setUsage] = useState<Usage | null>(null);
  const [costs, setCosts] = useState<Costs | null>(null);
  const [missing, setMissing] = useState(false);
  const [error, setError] = useState<unknown>(null);
  // Usage and costs follow the live stream: a usage batch (appended about every second by each
  // gateway) or an instance event reloads them, once per burst.
  const [tick, setTick] = useState(0);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => clearTimeout(pending.current ?? undefined), []);
  const reloadSoon = () => {
    if (!pending.current)
      pending.current = setTimeout(() => {
        pending.current = null;
        setTick((t) => t + 1);
      }, 500);
  };
  useLiveEvents((e) => {
    if (e.aggregate_type !== "usage" && e.aggregate_type !== "instance") return;
    reloadSoon();
  });
  // What was appended between the first load and the stream going live reaches no handler:
  // load again once it is live (and after each reconnection).
  const status = useStreamStatus();
  useEffect(() => {
    if (status === "live") reloadSoon();
  }, [status]);

  const range = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  useEffect(() => {
    setError(null);
    const r = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
    Promise.all([
      api<Usage>(`/api/usage${qs({ group_by: "key,model,worker", bucket, ...r })}`),
      api<Costs>(`/api/costs${qs(r)}`),
    ])
      .then(([u, c]) => {
        setUsage(u);
        setCosts(c);
      })
      .catch((e) => (isNotAvailable(e) ? setMissing(true) : setError(e)));
  }, [from, to, bucket, tick]);

  const buckets = useMemo(() => byBucket(usage?.rows ?? []), [usage]);
  const totals = useMemo(() => totalsBy(usage?.rows ?? [], dim), [usage, dim]);
  if (missing) return <NotAvailable what="The usage and cost endpoints (GET /api/usage, /api/costs)" />;
  const fmtLabel = (s: string) => (bucket === "hour" ? s.slice(5, 13).replace("T", " ") + "h" : s.slice(0, 10));
  const totalCost = costs?.instances.reduce((s, i) => s + i.cost_micro_eur, 0) ?? 0;

  return (
    <section className="finops">
      <div className="toolbar">
        <h1>FinOps</h1>
        <label className="inline">
          from <input type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label className="inline">
          to <input type="date" value={to} onChange={(e) => setTo(e.target.value)} />
        </label>
        <select aria-label="Bucket" value={bucket} onChange={(e) => setBucket(e.target.value as "hour" | "day")}>
          <option value="hour">per hour</option>
          <option value="day">per day</option>
        </select>
        <span className="spacer" />
        <button onClick={() => download(`/api/usage/export${qs({ format: "csv", ...range })}`, "usage.csv").catch(setError)}>Export CSV</button>
        <button onClick={() => download(`/api/usage/export${qs({ format: "json", ...range })}`, "usage.jsonl").catch(setError)}>Export JSON</button>
      </div>
      <ErrorBox error={error} />
      <div className="cards">
        <div className="card">
          <small>GPU cost</small>
          <strong data-testid="total-cost">{eur(totalCost)}</strong>
        </div>
        <div className="card">
          <small>Requests</small>
          <strong data-testid="usage-requests">{num(buckets.reduce((s, b) => s + b.requests, 0))}</strong>
        </div>
        <div className="card">
          <small>Tokens in / out</small>
          <strong>
            {num(buckets.reduce((s, b) => s + b.prompt, 0))} / {num(buckets.reduce((s, b) => s + b.completion, 0))}
          </strong>
        </div>
      </div>
      <div className="split">
        <div className="panel">
          <h2>Tokens over time</h2>
          {buckets.length === 0 && <p className="muted">No usage recorded in this range yet.</p>}
          <StackedBars
            labels={buckets.map((b) => fmtLabel(b.start))}
            series={[
              { label: "prompt", color: "#5b8def", values: buckets.map((b) => b.prompt) },
              { label: "completion", color: "#f0a04b", values: buckets.map((b) => b.completion) },
            ]}
            format={num}
          />
        </div>
        <div className="panel">
          <h2>GPU cost by model</h2>
          <HBars items={(costs?.models ?? []).map((m) => ({ label: m.model, value: m.cost_micro_eur }))} format={(n) => eur(n)} />
          <table className="grid">
            <thead>
              <tr>
                <th>Model</th>
                <th>Cost</th>
                <th>Tokens</th>
                <th>€ / M tokens</th>
              </tr>
            </thead>
            <tbody>
              {(costs?.models ?? []).map((m) => (
                <tr key={m.model}>
                  <td>{m.model}</td>
                  <td>{eur(m.cost_micro_eur)}</td>
                  <td>{num(m.prompt_tokens + m.completion_tokens)}</td>
                  <td>{m.cost_per_million_tokens_micro_eur == null ? "—" : eur(m.cost_per_million_tokens_micro_eur, 4)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
      <div className="panel">
        <div className="toolbar">
          <h2>Usage by</h2>
          {(["key", "model", "worker"] as const).map((d) => (
            <button key={d} className={`chip${dim === d ? " on" : ""}`} onClick={() => setDim(d)}>
              {d}
            </button>
          ))}
        </div>
        <div className="scroll-x">
          <table className="grid" data-testid="usage-totals">
            <thead>
              <tr>
                <th>{dim}</th>
                <th>Requests</th>
                <th>Errors</th>
                <th>Prompt tokens</th>
                <th>Completion tokens</th>
                <th>TTFT p95 (max)</th>
              </tr>
            </thead>
            <tbody>
              {totals.map((t) => (
                <tr key={t.label}>
                  <td>{dim === "worker" ? shortId(t.label) : t.label}</td>
                  <td>{num(t.requests)}</td>
                  <td>{num(t.errors)}</td>
                  <td>{num(t.prompt)}</td>
                  <td>{num(t.completion)}</td>
                  <td>{t.ttftP95 === null ? "—" : `${t.ttftP95} ms`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
      <div className="panel">
        <h2>GPU cost by instance</h2>
        <div className="scroll-x">
          <table className="grid">
            <thead>
              <tr>
                <th>Instance</th>
                <th>Model</th>
                <th>Type</th>
                <th>Zone</th>
                <th>Billable hours</th>
                <th>Cost</th>
              </tr>
            </thead>
            <tbody>
              {(costs?.instances ?? []).map((i) => (
                <tr key={i.instance_id}>
                  <td>{shortId(i.instance_id)}</td>
                  <td>{i.model}</td>
                  <td>{i.instance_type}</td>
                  <td>{i.zone}</td>
                  <td>{(i.billable_seconds / 3600).toFixed(2)}</td>
                  <td>{eur(i.cost_micro_eur)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </section>
  );
}
