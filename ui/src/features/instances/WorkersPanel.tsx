import { useEffect, useState } from "react";
import { api, ApiError } from "../../api/client";

type Worker = Record<string, unknown>;

function workersOf(body: unknown): Worker[] {
  if (Array.isArray(body)) return body as Worker[];
  if (body && typeof body === "object") {
    for (const k of ["workers", "items"]) {
      const v = (body as Record<string, unknown>)[k];
      if (Array.isArray(v)) return v as Worker[];
    }
  }
  return [];
}

/** Flattens nested telemetry (`gpus[0].utilization`) into labelled numbers. */
export function gauges(w: Worker, prefix = ""): [string, number][] {
  const out: [string, number][] = [];
  for (const [k, v] of Object.entries(w)) {
    const label = prefix ? `${prefix}.${k}` : k;
    if (typeof v === "number") out.push([label, v]);
    else if (Array.isArray(v)) v.forEach((x, i) => x && typeof x === "object" && out.push(...gauges(x as Worker, `${label}[${i}]`)));
    else if (v && typeof v === "object") out.push(...gauges(v as Worker, label));
  }
  return out;
}

/**
 * GPU and engine telemetry of the instance's worker, from `GET /api/workers` (heartbeats are
 * not events, so this panel refreshes every 5 s). Hidden when the server has no such route.
 */
export function WorkersPanel({ instanceId }: { instanceId: string }) {
  const [workers, setWorkers] = useState<Worker[] | null>(null);
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout>;
    const load = () =>
      api<unknown>("/api/workers")
        .then((b) => {
          if (stop) return;
          setWorkers(workersOf(b).filter((w) => w.instance_id === instanceId));
          timer = setTimeout(load, 5000);
        })
        .catch((e) => {
          if (stop) return;
          if (e instanceof ApiError && e.status === 404) setWorkers(null);
          else timer = setTimeout(load, 5000);
        });
    load();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [instanceId]);
  if (!workers || workers.length === 0) return null;
  return (
    <div className="panel" data-testid="workers">
      <h2>Worker telemetry</h2>
      {workers.map((w, n) => (
        <div key={String(w.id ?? n)} className="gauges">
          {gauges(w).map(([k, v]) => {
            const pct = /percent|utili[sz]ation|_pct$/.test(k) ? Math.min(100, v <= 1 ? v * 100 : v) : null;
            return (
              <div key={k} className="gauge">
                <span className="muted">{k}</span>
                {pct !== null ? (
                  <span className="progress wide">
                    <span style={{ width: `${pct}%` }} />
                  </span>
                ) : null}
                <strong>{Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(2)}</strong>
              </div>
            );
          })}
        </div>
      ))}
    </div>
  );
}
