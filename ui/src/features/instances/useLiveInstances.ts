import { useCallback, useEffect, useRef, useState } from "react";
import { useLiveEvents } from "../../api/live";
import type { Instance } from "../../api/types";
import { getInstance, listAllInstances } from "./api";
import { upsert } from "./rows";

/**
 * Every instance, loaded once and then kept current from the live stream: an instance event
 * refetches that one instance (batched), never the whole list and never on a timer.
 */
export function useLiveInstances(includeArchived: boolean) {
  const [rows, setRows] = useState<Instance[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  // Instance id -> the version its latest event made; the read model may still be behind it.
  const pending = useRef(new Map<string, number>());
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const reload = useCallback(() => {
    const abort = new AbortController();
    setLoading(true);
    listAllInstances(includeArchived, abort.signal)
      .then((r) => {
        setRows(r);
        setError(null);
      })
      .catch((e) => {
        if (!abort.signal.aborted) setError(e);
      })
      .finally(() => setLoading(false));
    return abort;
  }, [includeArchived]);

  useEffect(() => {
    const abort = reload();
    return () => abort.abort();
  }, [reload]);

  const flush = useCallback(async () => {
    timer.current = null;
    const wanted = [...pending.current];
    pending.current.clear();
    const fresh = await Promise.all(wanted.map(([id]) => getInstance(id).catch(() => null)));
    fresh.forEach((f, i) => {
      const [id, version] = wanted[i];
      // Behind the event that woke us: ask again shortly (the projection follows in ms).
      if (!f || f.version < version) pending.current.set(id, Math.max(version, pending.current.get(id) ?? 0));
    });
    if (pending.current.size && !timer.current) timer.current = setTimeout(flush, 250);
    setRows((rows) => fresh.reduce<Instance[]>((acc, f) => (f ? upsert(acc, f) : acc), rows));
  }, []);

  useLiveEvents((e) => {
    if (e.aggregate_type !== "instance") return;
    pending.current.set(e.aggregate_id, Math.max(e.sequence, pending.current.get(e.aggregate_id) ?? 0));
    if (!timer.current) timer.current = setTimeout(flush, 150);
  });

  return { rows, setRows, loading, error, reload };
}
