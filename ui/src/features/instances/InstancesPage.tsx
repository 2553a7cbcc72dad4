import { useEffect, useMemo, useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import type { Instance, InstanceStatus } from "../../api/types";
import { INSTANCE_STATUSES } from "../../api/types";
import { ErrorBox, Progress, StatusBadge } from "../../components/common";
import { VirtualTable, type Column } from "../../components/VirtualTable";
import { ageOf, eur } from "../../lib/format";
import { CreateInstanceDialog } from "./CreateInstanceDialog";
import { InstanceActions } from "./InstanceActions";
import { applyFilters, costSoFar, filtersFromParams, filtersToParams, type InstanceFilters, type SortKey } from "./rows";
import { useLiveInstances } from "./useLiveInstances";

const STORAGE = "inferplane.instances.filters";

export function InstancesPage() {
  const [params, setParams] = useSearchParams();
  // The URL holds the filters (shareable); the last ones used are restored from localStorage.
  useEffect(() => {
    if (params.toString() === "" && localStorage.getItem(STORAGE)) {
      setParams(new URLSearchParams(localStorage.getItem(STORAGE)!), { replace: true });
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const filters = useMemo(() => filtersFromParams(params), [params]);
  const setFilters = (f: InstanceFilters) => {
    const p = filtersToParams(f);
    localStorage.setItem(STORAGE, p.toString());
    setParams(p, { replace: true });
  };
  const { rows, setRows, loading, error } = useLiveInstances(filters.archived);
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 5000);
    return () => clearInterval(t);
  }, []);
  const [creating, setCreating] = useState(false);
  const navigate = useNavigate();
  const visible = useMemo(() => applyFilters(rows, filters), [rows, filters]);
  const zones = useMemo(() => [...new Set(rows.map((r) => r.zone))].sort(), [rows]);
  const counts = useMemo(() => {
    const c: Partial<Record<InstanceStatus, number>> = {};
    rows.forEach((r) => (c[r.status] = (c[r.status] ?? 0) + 1));
    return c;
  }, [rows]);

  // Stable between renders, so that a filter change re-renders only the rows that changed.
  const columns = useMemo<Column<Instance>[]>(() => [
    { key: "status", header: "State", width: "110px", sortable: true, render: (r) => <StatusBadge status={r.status} /> },
    { key: "progress", header: "Progress", width: "90px", sortable: true, render: (r) => <Progress value={r.progress} /> },
    {
      key: "model",
      header: "Model",
      width: "minmax(160px, 2fr)",
      sortable: true,
      render: (r) => (
        // A plain link (the row's click navigates): lighter than a router Link on every row.
        <a href={`/instances/${r.id}`} onClick={(e) => e.preventDefault()} title={r.id}>
          {r.model_repo}
        </a>
      ),
    },
    { key: "zone", header: "Zone", width: "80px", sortable: true, render: (r) => r.zone },
    { key: "type", header: "Type", width: "minmax(90px, 1fr)", sortable: true, render: (r) => r.instance_type },
    { key: "ip", header: "IP", width: "minmax(90px, 1fr)", sortable: true, render: (r) => r.public_ip ?? "—" },
    { key: "cost", header: "Cost so far", width: "90px", sortable: true, render: (r) => eur(costSoFar(r, now)) },
    { key: "requested_at", header: "Age", width: "60px", sortable: true, render: (r) => ageOf(r.requested_at, now) },
    {
      key: "actions",
      header: "",
      width: "minmax(120px, 1fr)",
      render: (r) => <InstanceActions instance={r} compact onChanged={(i) => setRows((rs) => rs.map((x) => (x.id === i.id ? i : x)))} />,
    },
  ], [now, setRows]);

  const toggleStatus = (s: InstanceStatus) => {
    const has = filters.statuses.includes(s);
    setFilters({ ...filters, statuses: has ? filters.statuses.filter((x) => x !== s) : [...filters.statuses, s] });
  };
  const sortBy = (key: string) =>
    setFilters({ ...filters, sort: key as SortKey, desc: filters.sort === key ? !filters.desc : key === "requested_at" });

  return (
    <section>
      <div className="toolbar">
        <h1>Instances</h1>
        <input
          placeholder="Filter: model, id, IP"
          value={filters.q}
          onChange={(e) => setFilters({ ...filters, q: e.target.value })}
          data-testid="instances-filter"
        />
        <select value={filters.zone} onChange={(e) => setFilters({ ...filters, zone: e.target.value })} aria-label="Zone">
          <option value="">all zones</option>
          {zones.map((z) => (
            <option key={z}>{z}</option>
          ))}
        </select>
        <label className="check">
          <input type="checkbox" checked={filters.archived} onChange={(e) => setFilters({ ...filters, archived: e.target.checked })} />
          archived
        </label>
        <span className="spacer" />
        <button className="primary" onClick={() => setCreating(true)}>
          New instance
        </button>
      </div>
      <div className="chips">
        {INSTANCE_STATUSES.filter((s) => s !== "archived" || filters.archived).map((s) => (
          <button key={s} className={`chip${filters.statuses.includes(s) ? " on" : ""}`} onClick={() => toggleStatus(s)}>
            {s} <small>{counts[s] ?? 0}</small>
          </button>
        ))}
      </div>
      <ErrorBox error={error} />
      {loading && rows.length === 0 ? (
        <p className="muted">Loading…</p>
      ) : (
        <VirtualTable
          testId="instances"
          rows={visible}
          columns={columns}
          rowKey={(r) => r.id}
          sort={{ key: filters.sort, desc: filters.desc }}
          onSort={sortBy}
          onRowClick={(r) => navigate(`/instances/${r.id}`)}
        />
      )}
      {creating && (
        <CreateInstanceDialog
          onClose={() => setCreating(false)}
          onCreated={(i) => {
            setRows((rs) => [i, ...rs.filter((r) => r.id !== i.id)]);
            setCreating(false);
            navigate(`/instances/${i.id}`);
          }}
        />
      )}
    </section>
  );
}
