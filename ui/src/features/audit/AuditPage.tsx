import { useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import type { EventEnvelope, Instance } from "../../api/types";
import { ErrorBox, StatusBadge } from "../../components/common";
import { actorLabel, dateTime, shortId, time } from "../../lib/format";
import { instanceHistory, instanceStateAt, listAllInstances } from "../instances/api";
import { summarize } from "../instances/timeline";
import { changesOf, exportHistory, indexAtTime } from "./replay";

function Picker() {
  const [rows, setRows] = useState<Instance[]>([]);
  const [q, setQ] = useState("");
  const navigate = useNavigate();
  useEffect(() => {
    listAllInstances(true).then(setRows);
  }, []);
  const shown = rows.filter((r) => !q || r.id.includes(q) || r.model_repo.toLowerCase().includes(q.toLowerCase())).slice(0, 200);
  return (
    <section>
      <h1>Audit replay</h1>
      <p className="muted">Pick an instance to replay its history, event by event, as an auditor sees it.</p>
      <input placeholder="Instance id or model" value={q} onChange={(e) => setQ(e.target.value)} />
      <ul className="picklist">
        {shown.map((r) => (
          <li key={r.id}>
            <button className="link" onClick={() => navigate(`/audit/${r.id}`)}>
              {shortId(r.id)} {r.model_repo}
            </button>{" "}
            <StatusBadge status={r.status} /> <span className="muted">{dateTime(r.requested_at)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function AuditPage() {
  const { id } = useParams();
  return id ? <Replay id={id} /> : <Picker />;
}

function Replay({ id }: { id: string }) {
  const [history, setHistory] = useState<EventEnvelope[]>([]);
  const [k, setK] = useState(-1);
  const [states, setStates] = useState(new Map<number, Instance>());
  const [error, setError] = useState<unknown>(null);
  const [timeInput, setTimeInput] = useState("");

  useEffect(() => {
    instanceHistory(id)
      .then((h) => {
        setHistory(h);
        setK(h.length - 1);
      })
      .catch(setError);
  }, [id]);

  // The states on either side of the selected event, from the server's replay (never the read model).
  useEffect(() => {
    const wanted = [history[k], history[k - 1]].filter((e): e is EventEnvelope => !!e && !states.has(e.position));
    if (wanted.length === 0) return;
    Promise.all(wanted.map((e) => instanceStateAt(id, e.position)))
      .then((rs) =>
        setStates((m) => {
          const next = new Map(m);
          rs.forEach((r, i) => next.set(wanted[i].position, r.state));
          return next;
        }),
      )
      .catch(setError);
  }, [id, history, k, states]);

  const event = history[k];
  const state = event ? states.get(event.position) : undefined;
  const before = k > 0 ? states.get(history[k - 1].position) : null;
  const changes = useMemo(() => (state && before !== undefined ? changesOf(before, state) : []), [state, before]);

  const jumpToTime = () => {
    if (!timeInput) return;
    const idx = indexAtTime(history, new Date(timeInput).toISOString());
    if (idx >= 0) setK(idx);
    else setError(new Error("The instance did not exist yet at that time."));
  };

  const exportJson = async () => {
    // Every state, so that the export is the whole audit, not just what was looked at.
    const all = new Map(states);
    for (const e of history) if (!all.has(e.position)) all.set(e.position, (await instanceStateAt(id, e.position)).state);
    const blob = new Blob([JSON.stringify(exportHistory(id, history, all), null, 2)], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `instance-${id}-history.json`;
    a.click();
  };

  return (
    <section className="audit">
      <div className="toolbar">
        <h1>
          <Link to="/audit">Audit</Link> / <Link to={`/instances/${id}`}>{shortId(id)}</Link>
        </h1>
        <span className="spacer" />
        <input type="datetime-local" step="1" value={timeInput} onChange={(e) => setTimeInput(e.target.value)} aria-label="At time" />
        <button onClick={jumpToTime}>Go to time</button>
        <button onClick={exportJson} disabled={history.length === 0}>
          Export JSON
        </button>
      </div>
      <ErrorBox error={error} />
      {history.length > 0 && (
        <div className="slider">
          <input
            type="range"
            min={0}
            max={history.length - 1}
            value={Math.max(0, k)}
            onChange={(e) => setK(Number(e.target.value))}
            aria-label="Position in history"
            data-testid="replay-slider"
          />
          <span data-testid="replay-at">
            event {k + 1} / {history.length} · #{event?.position} {event?.event_type} · {event && dateTime(event.recorded_at)}
          </span>
        </div>
      )}
      <div className="split">
        <div className="panel">
          <h2>State at this point</h2>
          {state ? (
            <>
              <p data-testid="replay-status">
                <StatusBadge status={state.status} /> progress {state.progress}% · version {state.version}
              </p>
              <pre className="json">{JSON.stringify(state, null, 2)}</pre>
            </>
          ) : (
            <p className="muted">Loading…</p>
          )}
        </div>
        <div className="panel">
          <h2>What this event changed</h2>
          {event && (
            <p>
              <strong>{event.event_type}</strong> by {actorLabel(event.metadata.actor)}, correlation{" "}
              <Link to={`/events?correlation_id=${event.metadata.correlation_id ?? ""}`}>{shortId(event.metadata.correlation_id ?? "—")}</Link>
            </p>
          )}
          <table className="diff" data-testid="replay-diff">
            <tbody>
              {changes.map((c) => (
                <tr key={c.path} className={`d-${c.kind}`}>
                  <td>{c.path}</td>
                  <td>{c.kind === "added" ? "" : JSON.stringify(c.before)}</td>
                  <td>{c.kind === "removed" ? "" : JSON.stringify(c.after)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {state && changes.length === 0 && <p className="muted">No change to the state (a log line, or a repeated outcome).</p>}
          <h2>Events up to here</h2>
          <ol className="upto">
            {history.slice(0, k + 1).map((e, i) => (
              <li key={e.position} className={i === k ? "current" : undefined} onClick={() => setK(i)}>
                <span className="when">{time(e.recorded_at)}</span> <strong>{e.event_type}</strong>{" "}
                <span className="summary">{summarize(e).slice(0, 120)}</span>
              </li>
            ))}
          </ol>
        </div>
      </div>
    </section>
  );
}
