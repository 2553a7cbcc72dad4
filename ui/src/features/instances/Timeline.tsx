import { useMemo, useState } from "react";
import type { EventEnvelope } from "../../api/types";
import { actorLabel, time } from "../../lib/format";
import { buildTimeline, CATEGORIES, filterTimeline, summarize, type Category } from "./timeline";

/** The instance's events as they happen, phases folded with their log lines. */
export function Timeline({ events }: { events: EventEnvelope[] }) {
  const [categories, setCategories] = useState<Category[]>([]);
  const [text, setText] = useState("");
  const groups = useMemo(() => buildTimeline(events), [events]);
  const shown = useMemo(() => filterTimeline(groups, { categories, text }), [groups, categories, text]);
  const toggle = (c: Category) => setCategories((cs) => (cs.includes(c) ? cs.filter((x) => x !== c) : [...cs, c]));
  return (
    <div className="timeline" data-testid="timeline">
      <div className="toolbar">
        <h2>Timeline</h2>
        {CATEGORIES.map((c) => (
          <button key={c} className={`chip${categories.includes(c) ? " on" : ""}`} onClick={() => toggle(c)}>
            {c}
          </button>
        ))}
        <input placeholder="Search events and logs" value={text} onChange={(e) => setText(e.target.value)} />
        <span className="muted">{events.length} events</span>
      </div>
      <ol>
        {shown.map((g) =>
          g.kind === "phase" ? (
            <li key={g.key} className={`tl phase ph-${g.status}`} data-event="Phase" data-phase={g.name}>
              <details open={g.status !== "completed"}>
                <summary>
                  <span className="when">{time(g.first.recorded_at)}</span>
                  <span className="cat cat-bootstrap">phase</span>
                  <strong>{g.name}</strong> <span className={`badge ph-${g.status}`}>{g.status}</span>
                  {g.durationMs !== null && <span className="muted"> {(g.durationMs / 1000).toFixed(1)} s</span>}
                  {g.exitCode !== null && <span className="muted"> exit {g.exitCode}</span>}
                  <span className="muted"> · {g.lines.length} lines · {actorLabel(g.first.metadata.actor)}</span>
                </summary>
                {g.message && <p className="error">{g.message}</p>}
                <pre className="log">
                  {g.lines.map((l, i) => (
                    <div key={i} className={l.stream === "stderr" ? "stderr" : undefined}>
                      {l.text}
                    </div>
                  ))}
                </pre>
              </details>
            </li>
          ) : (
            <li key={g.key} className={`tl cat-${g.category}`} data-event={g.event.event_type}>
              <span className="when">{time(g.event.recorded_at)}</span>
              <span className={`cat cat-${g.category}`}>{g.category}</span>
              <strong>{g.event.event_type}</strong> <span className="summary">{summarize(g.event)}</span>
              <span className="actor" title={`correlation ${g.event.metadata.correlation_id ?? "—"}`}>
                {actorLabel(g.event.metadata.actor)} #{g.event.position}
              </span>
            </li>
          ),
        )}
      </ol>
    </div>
  );
}
