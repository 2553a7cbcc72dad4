import { useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { useLiveEvents } from "../../api/live";
import type { EventEnvelope, Instance } from "../../api/types";
import { ErrorBox, Progress, StatusBadge } from "../../components/common";
import { dateTime, eur } from "../../lib/format";
import { getInstance, instanceHistory } from "./api";
import { InstanceActions } from "./InstanceActions";
import { costSoFar } from "./rows";
import { mergeEvents } from "./timeline";
import { Timeline } from "./Timeline";
import { WorkersPanel } from "./WorkersPanel";

export function InstanceDetailPage() {
  const { id = "" } = useParams();
  const [instance, setInstance] = useState<Instance | null>(null);
  const [events, setEvents] = useState<EventEnvelope[]>([]);
  const [error, setError] = useState<unknown>(null);
  const refetch = useRef<ReturnType<typeof setTimeout> | null>(null);
  const wanted = useRef(0);

  useEffect(() => {
    setInstance(null);
    setEvents([]);
    wanted.current = 0;
    getInstance(id).then(setInstance).catch(setError);
    instanceHistory(id)
      .then((h) => setEvents((live) => mergeEvents(h, live)))
      .catch(setError);
  }, [id]);

  useLiveEvents((e) => {
    if (e.aggregate_id !== id) return;
    setEvents((known) => mergeEvents(known, [e]));
    wanted.current = Math.max(wanted.current, e.sequence);
    if (!refetch.current) refetch.current = setTimeout(reload, 150);
  });
  // Refetches until the read model has caught up with the last event seen.
  const reload = () => {
    getInstance(id)
      .then((i) => {
        setInstance((old) => (old && old.version > i.version ? old : i));
        refetch.current = i.version < wanted.current ? setTimeout(reload, 250) : null;
      })
      .catch(() => (refetch.current = setTimeout(reload, 1000)));
  };

  if (error && !instance) return <ErrorBox error={error} />;
  if (!instance) return <p className="muted">Loading…</p>;
  const i = instance;
  return (
    <section className="detail">
      <div className="toolbar">
        <h1>
          <Link to="/instances">Instances</Link> / {i.model_repo}
        </h1>
        <StatusBadge status={i.status} />
        <Progress value={i.progress} />
        <span className="spacer" />
        <Link to={`/audit/${i.id}`}>Audit replay</Link>
        <InstanceActions instance={i} onChanged={setInstance} />
      </div>
      <dl className="facts" data-testid="instance-facts" data-status={i.status}>
        <dt>id</dt>
        <dd>{i.id}</dd>
        <dt>type</dt>
        <dd>
          {i.instance_type} ({i.gpu_count}× {i.vram_per_gpu_gb} GB) in {i.zone}
        </dd>
        <dt>IP</dt>
        <dd>{i.public_ip ?? "—"}</dd>
        <dt>price</dt>
        <dd>{eur(i.hourly_price_micro_eur)}/h</dd>
        <dt>cost so far</dt>
        <dd>{eur(costSoFar(i, Date.now()), 4)}</dd>
        <dt>requested</dt>
        <dd>{dateTime(i.requested_at)}</dd>
        <dt>ready</dt>
        <dd>{dateTime(i.ready_at)}</dd>
        <dt>volume</dt>
        <dd>{i.data_volume_gb} GB</dd>
        {i.failure && (
          <>
            <dt>failure</dt>
            <dd className="error">
              {i.failure.code}: {i.failure.message} (at {i.failure.at_status})
            </dd>
          </>
        )}
        <dt>readiness</dt>
        <dd>
          {i.readiness.length === 0
            ? "—"
            : i.readiness.map((r) => (
                <span key={r.check} className={`badge ${r.ok ? "st-ready" : "st-failed"}`} title={r.detail ?? ""}>
                  {r.check} {r.ok ? "ok" : "failed"}
                </span>
              ))}
        </dd>
      </dl>
      <WorkersPanel instanceId={i.id} />
      <Timeline events={events} />
    </section>
  );
}
