import { api, qs } from "../../api/client";
import type { EventEnvelope, Instance, InstancePage, InstanceStateAt } from "../../api/types";

/** Every instance matching the server-side filter, page by page (500 a page). */
export async function listAllInstances(includeArchived: boolean, signal?: AbortSignal): Promise<Instance[]> {
  const out: Instance[] = [];
  let offset: number | null = 0;
  const status = includeArchived
    ? "requested,provisioning,booting,installing,starting,ready,unavailable,draining,terminating,terminated,failed,archived"
    : undefined;
  while (offset !== null) {
    const page: InstancePage = await api<InstancePage>(`/api/instances${qs({ limit: 500, offset, status })}`, { signal });
    out.push(...page.instances);
    offset = page.next_offset;
  }
  return out;
}

export const getInstance = (id: string) => api<Instance>(`/api/instances/${id}`);
export const instanceHistory = (id: string) =>
  api<{ events: EventEnvelope[] }>(`/api/instances/${id}/history`).then((r) => r.events);
export const instanceStateAt = (id: string, at: string | number) =>
  api<InstanceStateAt>(`/api/instances/${id}/state${qs({ at })}`);

export type InstanceRequest = { model: string; zone?: string; instance_type?: string; data_volume_gb?: number };
export const requestInstance = (body: InstanceRequest) => api<Instance>("/api/instances", { method: "POST", body });
export const terminateInstance = (id: string, reason?: string) =>
  api<Instance>(`/api/instances/${id}${qs({ reason })}`, { method: "DELETE" });
export const instanceAction = (id: string, action: "reinstall" | "archive" | "drain") =>
  api<Instance>(`/api/instances/${id}/${action}`, { method: "POST" });
