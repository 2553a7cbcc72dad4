import { api } from "../../api/client";
import type { ApiKey, ApiKeySecret } from "../../api/types";

export type KeyFields = {
  name?: string;
  models?: string[] | null;
  rpm_limit?: number | null;
  tpm_limit?: number | null;
  budget_tokens?: number | null;
  expires_at?: string | null;
};

export const listKeys = () => api<{ items: ApiKey[] }>("/api/keys").then((r) => r.items);
/** Creates a key; fields left empty are not sent (the server's defaults: no limit). */
export const createKey = (body: KeyFields & { name: string }) =>
  api<ApiKeySecret>("/api/keys", { method: "POST", body: Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null)) });
export const updateKey = (id: string, body: KeyFields) => api<ApiKey>(`/api/keys/${id}`, { method: "PATCH", body });
export const revokeKey = (id: string) => api<ApiKey>(`/api/keys/${id}`, { method: "DELETE" });
export const rotateKey = (id: string, grace_seconds?: number) =>
  api<ApiKeySecret>(`/api/keys/${id}/rotate`, { method: "POST", body: grace_seconds === undefined ? {} : { grace_seconds } });
