// Filtering and sorting of the instances table, done in the browser: with every row loaded
// once and kept current by live events, a filter change costs no request.
import type { Instance, InstanceStatus } from "../../api/types";
import { INSTANCE_STATUSES } from "../../api/types";

export type SortKey = "requested_at" | "status" | "model" | "zone" | "type" | "progress" | "cost" | "ip";

export type InstanceFilters = {
  statuses: InstanceStatus[]; // empty: all
  q: string; // id, model, IP
  zone: string; // "" all
  sort: SortKey;
  desc: boolean;
  archived: boolean;
};

export const DEFAULT_FILTERS: InstanceFilters = { statuses: [], q: "", zone: "", sort: "requested_at", desc: true, archived: false };

const SORT_KEYS: SortKey[] = ["requested_at", "status", "model", "zone", "type", "progress", "cost", "ip"];

export function filtersFromParams(p: URLSearchParams): InstanceFilters {
  const sortRaw = p.get("sort") ?? "-requested_at";
  const desc = sortRaw.startsWith("-");
  const key = sortRaw.replace(/^-/, "") as SortKey;
  return {
    statuses: (p.get("status") ?? "")
      .split(",")
      .filter((s): s is InstanceStatus => INSTANCE_STATUSES.includes(s as InstanceStatus)),
    q: p.get("q") ?? "",
    zone: p.get("zone") ?? "",
    sort: SORT_KEYS.includes(key) ? key : "requested_at",
    desc,
    archived: p.get("archived") === "1",
  };
}

export function filtersToParams(f: InstanceFilters): URLSearchParams {
  const p = new URLSearchParams();
  if (f.statuses.length) p.set("status", f.statuses.join(","));
  if (f.q) p.set("q", f.q);
  if (f.zone) p.set("zone", f.zone);
  if (f.sort !== "requested_at" || !f.desc) p.set("sort", `${f.desc ? "-" : ""}${f.sort}`);
  if (f.archived) p.set("archived", "1");
  return p;
}

/** Cost so far, counted in the browser between two refreshes (the API's rule: whole seconds). */
export function costSoFar(i: Instance, now: number): number {
  if (i.terminated_at || i.status === "terminated" || i.status === "archived") return i.cost_micro_eur;
  const seconds = Math.max(0, Math.floor((now - Date.parse(i.requested_at)) / 1000));
  return Math.max(i.cost_micro_eur, Math.floor((i.hourly_price_micro_eur * seconds) / 3600));
}

function cmp(a: Instance, b: Instance, key: SortKey): number {
  switch (key) {
    case "requested_at":
      return a.requested_at < b.requested_at ? -1 : a.requested_at > b.requested_at ? 1 : 0;
    case "status":
      return INSTANCE_STATUSES.indexOf(a.status) - INSTANCE_STATUSES.indexOf(b.status);
    case "model":
      return a.model_repo.localeCompare(b.model_repo);
    case "zone":
      return a.zone.localeCompare(b.zone);
    case "type":
      return a.instance_type.localeCompare(b.instance_type);
    case "progress":
      return a.progress - b.progress;
    case "cost":
      return a.cost_micro_eur - b.cost_micro_eur;
    case "ip":
      return (a.public_ip ?? "").localeCompare(b.public_ip ?? "");
  }
}

export function applyFilters(rows: Instance[], f: InstanceFilters): Instance[] {
  const q = f.q.trim().toLowerCase();
  const out = rows.filter(
    (r) =>
      (f.archived || r.status !== "archived") &&
      (f.statuses.length === 0 || f.statuses.includes(r.status)) &&
      (!f.zone || r.zone === f.zone) &&
      (!q || r.id.includes(q) || r.model_repo.toLowerCase().includes(q) || (r.public_ip ?? "").includes(q)),
  );
  out.sort((a, b) => {
    const c = cmp(a, b, f.sort) || (a.requested_at < b.requested_at ? 1 : -1);
    return f.desc ? -c : c;
  });
  return out;
}

/** Merges a fresh copy of one instance into the rows (replacing an older version). */
export function upsert(rows: Instance[], fresh: Instance): Instance[] {
  const i = rows.findIndex((r) => r.id === fresh.id);
  if (i < 0) return [fresh, ...rows];
  if (rows[i].version > fresh.version) return rows;
  const next = rows.slice();
  next[i] = fresh;
  return next;
}
