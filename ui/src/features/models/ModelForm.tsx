import { useState } from "react";
import type { Model } from "../../api/types";
import { ErrorBox, Modal } from "../../components/common";
import { registerModel, updateModel, type ModelFields } from "./api";

const int = (s: string) => (s.trim() === "" ? undefined : Number(s));

/** Registers a model, or edits one (with If-Match: a concurrent change is refused, not lost). */
export function ModelForm({ model, onClose, onSaved }: { model: Model | null; onClose: () => void; onSaved: (m: Model) => void }) {
  const [f, setF] = useState({
    hf_repo_id: model?.hf_repo_id ?? "",
    display_name: model?.display_name ?? "",
    parameter_count: String(model?.parameter_count ?? ""),
    required_vram_gb: String(model?.required_vram_gb ?? ""),
    context_length: String(model?.context_length ?? ""),
    data_volume_gb: model && !model.data_volume_computed ? String(model.data_volume_gb) : "",
    task: model?.task ?? "generate",
  });
  const [error, setError] = useState<unknown>(null);
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const save = async () => {
    setError(null);
    const body: ModelFields = {
      display_name: f.display_name.trim() || undefined,
      parameter_count: int(f.parameter_count),
      required_vram_gb: int(f.required_vram_gb),
      context_length: int(f.context_length),
      data_volume_gb: int(f.data_volume_gb),
      task: f.task as "generate" | "embed",
    };
    try {
      onSaved(model ? await updateModel(model.id, model.version, body) : await registerModel({ ...body, hf_repo_id: f.hf_repo_id.trim() }));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Modal title={model ? `Edit ${model.hf_repo_id}` : "Register a model"} onClose={onClose}>
      <div className="form">
        {!model && (
          <label>
            Hugging Face repository (owner/name)
            <input name="hf_repo_id" value={f.hf_repo_id} onChange={set("hf_repo_id")} />
          </label>
        )}
        <label>
          Display name
          <input name="display_name" value={f.display_name} onChange={set("display_name")} />
        </label>
        <label>
          Parameters
          <input name="parameter_count" type="number" value={f.parameter_count} onChange={set("parameter_count")} />
        </label>
        <label>
          Required VRAM (GB)
          <input name="required_vram_gb" type="number" value={f.required_vram_gb} onChange={set("required_vram_gb")} />
        </label>
        <label>
          Context length
          <input name="context_length" type="number" value={f.context_length} onChange={set("context_length")} />
        </label>
        <label>
          Data volume (GB, empty: computed from the size)
          <input name="data_volume_gb" type="number" value={f.data_volume_gb} onChange={set("data_volume_gb")} />
        </label>
        <label>
          Task
          <select name="task" value={f.task} onChange={set("task")}>
            <option value="generate">generate</option>
            <option value="embed">embed</option>
          </select>
        </label>
        <ErrorBox error={error} />
        <div className="actions">
          <button onClick={onClose}>Cancel</button>
          <button className="primary" onClick={save}>
            {model ? "Save" : "Register"}
          </button>
        </div>
      </div>
    </Modal>
  );
}
