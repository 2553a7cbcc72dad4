import { useEffect, useMemo, useState } from "react";
import { api, qs } from "../../api/client";
import type { CompatibleTypes, Instance, InstanceType, Model, Zone } from "../../api/types";
import { ErrorBox, Modal } from "../../components/common";
import { eur } from "../../lib/format";
import { requestInstance } from "./api";

/** Zone, then a type offered there, then a model that fits it; the volume follows the model. */
export function CreateInstanceDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (i: Instance) => void }) {
  const [zones, setZones] = useState<Zone[]>([]);
  const [types, setTypes] = useState<InstanceType[]>([]);
  const [models, setModels] = useState<Model[]>([]);
  const [zone, setZone] = useState("");
  const [typeCode, setTypeCode] = useState("");
  const [modelId, setModelId] = useState("");
  const [compatible, setCompatible] = useState<CompatibleTypes | null>(null);
  const [volume, setVolume] = useState<number | "">("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<{ zones: Zone[] }>("/api/zones")
      .then((r) => {
        const active = r.zones.filter((z) => z.active);
        setZones(active);
        if (active[0]) setZone(active[0].code);
      })
      .catch(setError);
    api<{ models: Model[] }>(`/api/models${qs({ active: "true" })}`)
      .then((r) => setModels(r.models))
      .catch(setError);
  }, []);

  useEffect(() => {
    if (!zone) return;
    api<{ instance_types: InstanceType[] }>(`/api/instance-types${qs({ zone, active: "true" })}`)
      .then((r) => {
        const offered = r.instance_types.filter((t) => ["available", "scarce"].includes(t.availability[zone]));
        setTypes(offered);
        setTypeCode((c) => (offered.some((t) => t.code === c) ? c : (offered[0]?.code ?? "")));
      })
      .catch(setError);
  }, [zone]);

  const type = types.find((t) => t.code === typeCode);
  const fitting = useMemo(() => models.filter((m) => type && m.required_vram_gb <= type.total_vram_gb), [models, type]);
  useEffect(() => {
    if (!fitting.some((m) => m.id === modelId)) setModelId(fitting[0]?.id ?? "");
  }, [fitting, modelId]);

  useEffect(() => {
    if (!modelId || !zone) return;
    setCompatible(null);
    api<CompatibleTypes>(`/api/models/${modelId}/compatible-types${qs({ zone })}`)
      .then((c) => {
        setCompatible(c);
        setVolume(c.recommended_data_volume_gb);
      })
      .catch(setError);
  }, [modelId, zone]);

  const model = models.find((m) => m.id === modelId);
  const confirmedFit = !compatible || compatible.instance_types.some((t) => t.code === typeCode);
  const submit = async () => {
    if (!model) return;
    setBusy(true);
    setError(null);
    try {
      const created = await requestInstance({
        model: model.hf_repo_id,
        zone,
        instance_type: typeCode,
        data_volume_gb: volume === "" ? undefined : volume,
      });
      onCreated(created);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title="New instance" onClose={onClose}>
      <div className="form">
        <label>
          Zone
          <select name="zone" value={zone} onChange={(e) => setZone(e.target.value)}>
            {zones.map((z) => (
              <option key={z.id} value={z.code}>
                {z.code} — {z.display_name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Instance type
          <select name="instance_type" value={typeCode} onChange={(e) => setTypeCode(e.target.value)}>
            {types.map((t) => (
              <option key={t.id} value={t.code}>
                {t.code} — {t.gpu_count}× {t.gpu_model} ({t.total_vram_gb} GB) — {eur(t.hourly_price_micro_eur)}/h
                {t.availability[zone] === "scarce" ? " (scarce)" : ""}
              </option>
            ))}
          </select>
        </label>
        <label>
          Model (fits {type ? `${type.total_vram_gb} GB` : "the type"})
          <select name="model" value={modelId} onChange={(e) => setModelId(e.target.value)}>
            {fitting.map((m) => (
              <option key={m.id} value={m.id}>
                {m.display_name} ({m.required_vram_gb} GB)
              </option>
            ))}
          </select>
        </label>
        <label>
          Data volume (GB){compatible ? `, recommended ${compatible.recommended_data_volume_gb}` : ""}
          <input
            name="data_volume_gb"
            type="number"
            min={10}
            value={volume}
            onChange={(e) => setVolume(e.target.value === "" ? "" : Number(e.target.value))}
          />
        </label>
        <p className="price" data-testid="price">
          {type ? `${eur(type.hourly_price_micro_eur)} per hour (${eur(type.hourly_price_micro_eur * 24)} per day)` : "No type offered in this zone"}
        </p>
        {!confirmedFit && <p className="error">The catalog does not list this type for this model in {zone}.</p>}
        <ErrorBox error={error} />
        <div className="actions">
          <button onClick={onClose}>Cancel</button>
          <button className="primary" disabled={busy || !model || !type} onClick={submit}>
            Request instance
          </button>
        </div>
      </div>
    </Modal>
  );
}
