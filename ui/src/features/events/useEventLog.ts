import { useEffect, useRef, useState } from "react";
import { api, qs } from "../../api/client";
import { useLiveEvents } from "../../api/live";
import type { EventEnvelope, EventPage } from "../../api/types";

/** Most events loaded from the stored log; older ones stay on the server. */
export const MAX_BACKFILL = 200_000;

/**
 * The global log: the stored events, page by page from the start, plus every live event of
 * the stream (which was open before the first page was asked for, so nothing falls between).
 */
export function useEventLog() {
  const [backfill, setBackfill] = useState<EventEnvelope[]>([]);
  const [live, setLive] = useState<EventEnvelope[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const seen = useRef(new Set<number>());
  const liveSeen = useRef(new Set<number>());

  useEffect(() => {
    let stop = false;
    (async () => {
      let after = 0;
      const acc: EventEnvelope[] = [];
      try {
        while (!stop && acc.length < MAX_BACKFILL) {
          const page = await api<EventPage>(`/api/events${qs({ after, limit: 1000 })}`);
          if (page.events.length === 0) break;
          for (const e of page.events) {
            if (!seen.current.has(e.position)) {
              seen.current.add(e.position);
              acc.push(e);
            }
          }
          after = page.next_after;
          if (!stop) setBackfill(acc.slice());
        }
      } catch (e) {
        if (!stop) setError(e);
      } finally {
        if (!stop) setLoading(false);
      }
    })();
    return () => {
      stop = true;
    };
  }, []);

  useLiveEvents((e) => {
    if (liveSeen.current.has(e.position)) return;
    liveSeen.current.add(e.position);
    setLive((l) => [...l, e]);
  });

  return { backfill, seen: seen.current, live, loading, error };
}
