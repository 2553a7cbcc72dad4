import { useCallback, useMemo } from "react";
import { Link, useSearchParams } from "react-router";
import type { EventEnvelope } from "../../api/types";
import { ErrorBox } from "../../components/common";
import { VirtualTable, type Column } from "../../components/VirtualTable";
import { actorLabel, dateTime, shortId } from "../../lib/format";
import { summarize } from "../instances/timeline";
import { combine, filterEvents, filtersFromParams, filtersToParams, NO_FILTERS, type EventFilters } from "./filter";
import { useEventLog } from "./useEventLog";

const AGGREGATES = ["instance", "model", "zone", "instance_type", "api_key", "usage"];

export function EventLogPage() {
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => filtersFromParams(params), [params]);
  const setFilters = useCallback((f: EventFilters) => setParams(filtersToParams(f), { replace: true }), [setParams]);
  const { backfill, seen, live, loading, error } = useEventLog();
  // `seen` grows with `backfill`: recompute when either list changes.
  const all = useMemo(() => combine(backfill, seen, live), [backfill, seen, live]);
  const shown = useMemo(() => filterEvents(all, filters), [all, filters]);
  const types = useMemo(() => [...new Set(all.slice(0, 20000).map((e) => e.event_type))].sort(), [all]);

  const columns = useMemo<Column<EventEnvelope>[]>(() => {
    const follow = (correlation_id: string) => setFilters({ ...NO_FILTERS, correlation_id });
    return [
      { key: "position", header: "#", width: "70px", render: (e) => e.position },
      { key: "time", header: "Recorded", width: "160px", render: (e) => dateTime(e.recorded_at) },
      {
        key: "aggregate",
        header: "Aggregate",
        width: "minmax(120px, 1fr)",
        render: (e) =>
          e.aggregate_type === "instance" ? (
            <Link to={`/instances/${e.aggregate_id}`}>instance {shortId(e.aggregate_id)}</Link>
          ) : (
            <span title={e.aggregate_id}>
              {e.aggregate_type} {shortId(e.aggregate_id)}
            </span>
          ),
      },
      { key: "type", header: "Event", width: "minmax(190px, 1fr)", render: (e) => <strong>{e.event_type}</strong> },
      { key: "summary", header: "Payload", width: "minmax(120px, 2fr)", render: (e) => <span className="summary">{summarize(e)}</span> },
      { key: "actor", header: "Actor", width: "minmax(100px, 1fr)", render: (e) => actorLabel(e.metadata.actor) },
      {
        key: "corr",
        header: "Correlation",
        width: "110px",
        render: (e) =>
          e.metadata.correlation_id ? (
            <button className="link corr" onClick={() => follow(e.metadata.correlation_id!)} title="Follow this correlation across aggregates">
              {e.metadata.correlation_id.slice(0, 8)}
            </button>
          ) : (
            "—"
          ),
      },
    ];
  }, [setFilters]);

  return (
    <section>
      <div className="toolbar">
        <h1>Event log</h1>
        <select
          aria-label="Aggregate type"
          value={filters.aggregate_type}
          onChange={(e) => setFilters({ ...filters, aggregate_type: e.target.value })}
          data-testid="filter-aggregate"
        >
          <option value="">all aggregates</option>
          {AGGREGATES.map((a) => (
            <option key={a}>{a}</option>
          ))}
        </select>
        <input
          list="event-types"
          placeholder="Event type"
          value={filters.event_type}
          onChange={(e) => setFilters({ ...filters, event_type: e.target.value })}
          data-testid="filter-event-type"
        />
        <datalist id="event-types">
          {types.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <input
          placeholder="Correlation id"
          value={filters.correlation_id}
          onChange={(e) => setFilters({ ...filters, correlation_id: e.target.value })}
          data-testid="filter-correlation"
        />
        {(filters.aggregate_type || filters.event_type || filters.correlation_id || filters.aggregate_id) && (
          <button onClick={() => setFilters(NO_FILTERS)}>Clear</button>
        )}
        <span className="spacer" />
        <span className="muted" data-testid="event-count">
          {shown.length.toLocaleString("en-US")} of {all.length.toLocaleString("en-US")} events
          {loading ? " (loading the stored log…)" : ""} · {live.length} live
        </span>
      </div>
      <ErrorBox error={error} />
      <VirtualTable testId="events" rows={shown} columns={columns} rowKey={(e) => String(e.position)} rowHeight={30} />
    </section>
  );
}
