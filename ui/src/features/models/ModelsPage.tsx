import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { isNotAvailable } from "../../api/client";
import { useLiveEvents } from "../../api/live";
import type { Instance, Model, UsageRow } from "../../api/types";
import { ErrorBox } from "../../components/common";
import { num } from "../../lib/format";
import { listAllInstances } from "../instances/api";
import { listModels, setModelActive, usageByModel } from "./api";
import { ModelForm } from "./ModelForm";
import { runtimeByModel } from "./runtime";

export function ModelsPage() {
  const [models, setModels] = useState<Model[]>([]);
  const [instances, setInstances] = useState<Instance[]>([]);
  const [usage, setUsage] = useState<UsageRow[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState<Model | "new" | null>(null);
  const [q, setQ] = useState("");

  const load = useCallback(() => {
    listModels().then(setModels).catch(setError);
    listAllInstances(false).then(setInstances).catch(setError);
  }, []);
  useEffect(() => {
    load();
    const to = new Date();
    const from = new Date(to.getTime() - 7 * 86400_000);
    usageByModel(from.toISOString(), to.toISOString())
      .then((u) => setUsage(u.rows))
      .catch((e) => (isNotAvailable(e) ? setUsage(null) : setError(e)));
  }, [load]);
  // Catalog and capacity follow the live stream (model and instance events), one reload for
  // a burst of events (a bootstrap appends dozens).
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => clearTimeout(pending.current ?? undefined), []);
  useLiveEvents((e) => {
    if (e.aggregate_type !== "model" && e.aggregate_type !== "instance") return;
    if (!pending.current)
      pending.current = setTimeout(() => {
        pending.current = null;
        load();
      }, 500);
  });

  const runtime = useMemo(() => runtimeByModel(instances, usage ?? []), [instances, usage]);
  const shown = models.filter((m) => !q || `${m.hf_repo_id} ${m.display_name}`.toLowerCase().includes(q.toLowerCase()));
  const toggle = async (m: Model) => {
    try {
      const next = await setModelActive(m.id, !m.active);
      setModels((ms) => ms.map((x) => (x.id === next.id ? next : x)));
    } catch (e) {
      setError(e);
    }
  };

  return (
    <section>
      <div className="toolbar">
        <h1>Models</h1>
        <input placeholder="Filter models" value={q} onChange={(e) => setQ(e.target.value)} />
        <span className="spacer" />
        <button className="primary" onClick={() => setEditing("new")}>
          Register model
        </button>
      </div>
      <ErrorBox error={error} />
      {usage === null && <p className="muted">Traffic figures need the usage API (/api/usage), not available on this server.</p>}
      <div className="scroll-x">
        <table className="grid" data-testid="models">
          <thead>
            <tr>
              <th>Model</th>
              <th>Task</th>
              <th>VRAM</th>
              <th>Context</th>
              <th>Volume</th>
              <th>Instances (ready)</th>
              <th>GPUs</th>
              <th>VRAM serving</th>
              <th>Requests (7 d)</th>
              <th>Errors</th>
              <th>TTFT p50</th>
              <th>Active</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map((m) => {
              const r = runtime.get(m.hf_repo_id.toLowerCase());
              return (
                <tr key={m.id} className={m.active ? undefined : "inactive"}>
                  <td>
                    <strong>{m.display_name}</strong>
                    <br />
                    <small className="muted">{m.hf_repo_id}</small>
                  </td>
                  <td>{m.task}</td>
                  <td>{m.required_vram_gb} GB</td>
                  <td>{num(m.context_length)}</td>
                  <td>
                    {m.data_volume_gb} GB{m.data_volume_computed ? "" : " (pinned)"}
                  </td>
                  <td>
                    {r?.instances ?? 0} ({r?.ready ?? 0})
                  </td>
                  <td>{r?.gpus ?? 0}</td>
                  <td>{r?.vramGb ?? 0} GB</td>
                  <td>{usage ? num(r?.requests ?? 0) : "—"}</td>
                  <td>{usage ? num(r?.errors ?? 0) : "—"}</td>
                  <td>{r?.ttftP50 != null ? `${r.ttftP50} ms` : "—"}</td>
                  <td>
                    <label className="switch">
                      <input type="checkbox" checked={m.active} onChange={() => toggle(m)} aria-label={`active ${m.hf_repo_id}`} />
                      {m.active ? "on" : "off"}
                    </label>
                  </td>
                  <td>
                    <button onClick={() => setEditing(m)}>Edit</button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {editing && (
        <ModelForm
          model={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={(m) => {
            setModels((ms) => [...ms.filter((x) => x.id !== m.id), m].sort((a, b) => a.display_name.localeCompare(b.display_name)));
            setEditing(null);
          }}
        />
      )}
    </section>
  );
}
