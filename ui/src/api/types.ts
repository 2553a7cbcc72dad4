// Shapes of the inferplane HTTP API (docs/api.md). Money is integer micro-euros.

export type Actor = { kind: "operator" | "api_key" | "processor" | "system" | string; id: string };

export type EventMetadata = {
  correlation_id?: string;
  causation_id?: string;
  actor?: Actor;
  request_id?: string | null;
  tenant_id?: string;
};

export type EventEnvelope = {
  position: number;
  aggregate_type: string;
  aggregate_id: string;
  sequence: number;
  event_type: string;
  event_version: string;
  payload: unknown;
  metadata: EventMetadata;
  recorded_at: string;
};

export type EventPage = { events: EventEnvelope[]; next_after: number };

export type InstanceStatus =
  | "requested" | "provisioning" | "booting" | "installing" | "starting" | "ready"
  | "unavailable" | "draining" | "terminating" | "terminated" | "failed" | "archived";

export const INSTANCE_STATUSES: InstanceStatus[] = [
  "requested", "provisioning", "booting", "installing", "starting", "ready",
  "unavailable", "draining", "terminating", "terminated", "failed", "archived",
];

export type InstallPhase = {
  name: string;
  status: string;
  duration_ms: number | null;
  exit_code: number | null;
  log_bytes: number;
};

export type Instance = {
  id: string;
  status: InstanceStatus;
  progress: number;
  model_id: string;
  model_repo: string;
  model_required_vram_gb: number;
  zone: string;
  allowed_zones: string[];
  instance_type: string;
  gpu_count: number;
  vram_per_gpu_gb: number;
  hourly_price_micro_eur: number;
  hourly_price_eur: string;
  data_volume_gb: number;
  vllm_mode: string;
  provider: string;
  server: { server_id: string; zone: string; commercial_type: string; deleted: boolean } | null;
  volumes: { volume_id: string; zone: string; size_gb: number; attached: boolean; deleted: boolean }[];
  public_ip: string | null;
  failure: { code: string; message: string; at_status: string } | null;
  install: { attempt: number; phases: InstallPhase[]; completed: boolean };
  readiness: { check: string; ok: boolean; duration_ms: number; detail: string | null }[];
  cost_micro_eur: number;
  cost_eur: string;
  version: number;
  requested_at: string;
  ready_at: string | null;
  terminated_at: string | null;
  updated_at: string;
  [extra: string]: unknown;
};

export type InstancePage = {
  instances: Instance[];
  total: number;
  limit: number;
  offset: number;
  next_offset: number | null;
};

export type InstanceStateAt = {
  at: number | string;
  position: number;
  version: number;
  recorded_at: string;
  events_applied: number;
  state: Instance;
};

export type Model = {
  id: string;
  hf_repo_id: string;
  display_name: string;
  parameter_count: number;
  required_vram_gb: number;
  context_length: number;
  data_volume_gb: number;
  data_volume_computed: boolean;
  task: "generate" | "embed";
  active: boolean;
  version: number;
  registered_at: string;
  updated_at: string;
};

export type Zone = {
  id: string;
  provider: string;
  code: string;
  display_name: string;
  active: boolean;
};

export type InstanceType = {
  id: string;
  code: string;
  gpu_model: string;
  gpu_count: number;
  vram_per_gpu_gb: number;
  vcpus: number;
  ram_gb: number;
  hourly_price_micro_eur: number;
  hourly_price_eur: string;
  availability: Record<string, "available" | "scarce" | "shortage">;
  total_vram_gb: number;
  active: boolean;
};

export type CompatibleTypes = {
  model_id: string;
  hf_repo_id: string;
  required_vram_gb: number;
  recommended_data_volume_gb: number;
  zone: string | null;
  instance_types: InstanceType[];
};

export type ApiKeyStatus = "active" | "revoked" | "expired";

export type ApiKey = {
  id: string;
  name: string;
  prefix: string;
  models: string[] | null;
  rpm_limit: number | null;
  tpm_limit: number | null;
  /** Token budget of the key (the gateway refuses requests past it); null: no budget. */
  budget_tokens: number | null;
  expires_at: string | null;
  status: ApiKeyStatus;
  /** The replaced key's prefix while its grace period runs. */
  previous_prefix?: string | null;
  created_at: string;
  last_used_at: string | null;
  rotated_at: string | null;
  grace_until: string | null;
  version: number;
};

export type ApiKeySecret = { key: string; api_key: ApiKey };

export type UsageRow = {
  bucket_start: string;
  key_id?: string | null; // null: the operator (console) traffic
  key_prefix?: string;
  model?: string;
  instance_id?: string | null;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  ttft_p50_ms: number | null;
  ttft_p95_ms: number | null;
};

export type Usage = { bucket: "hour" | "day"; group_by: string[]; rows: UsageRow[] };

export type Costs = {
  instances: {
    instance_id: string;
    model: string;
    instance_type: string;
    zone: string;
    billable_seconds: number;
    cost_micro_eur: number;
  }[];
  models: {
    model: string;
    cost_micro_eur: number;
    prompt_tokens: number;
    completion_tokens: number;
    cost_per_million_tokens_micro_eur: number | null;
  }[];
};

export type Problem = {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errors?: { field: string; message: string }[];
};
