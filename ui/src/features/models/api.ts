import { api, qs } from "../../api/client";
import type { Model, Usage } from "../../api/types";

export const listModels = () => api<{ models: Model[] }>("/api/models").then((r) => r.models);

export type ModelFields = {
  hf_repo_id?: string;
  display_name?: string;
  parameter_count?: number;
  required_vram_gb?: number;
  context_length?: number;
  data_volume_gb?: number;
  task?: "generate" | "embed";
};

export const registerModel = (body: ModelFields) => api<Model>("/api/models", { method: "POST", body });
export const updateModel = (id: string, version: number, body: ModelFields) =>
  api<Model>(`/api/models/${id}`, { method: "PATCH", body, headers: { "If-Match": `"${version}"` } });
export const setModelActive = (id: string, active: boolean) =>
  api<Model>(`/api/models/${id}/${active ? "activate" : "deactivate"}`, { method: "POST" });

export const usageByModel = (from: string, to: string) =>
  api<Usage>(`/api/usage${qs({ group_by: "model", bucket: "day", from, to })}`);
