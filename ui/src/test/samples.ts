// Payloads recorded from the API contract (docs/api.md and the parallel features' contract).
import type { ApiKey, Costs, EventEnvelope, Usage } from "../api/types";

let position = 100;
export function ev(event_type: string, data?: Record<string, unknown>, over: Partial<EventEnvelope> = {}): EventEnvelope {
  position++;
  return {
    position,
    aggregate_type: "instance",
    aggregate_id: "01a22a69-c1da-7133-8375-d7a4dfae4ce2",
    sequence: position - 100,
    event_type,
    event_version: "1",
    payload: data ? { [event_type]: data } : event_type,
    metadata: { actor: { kind: "processor", id: "bootstrap" }, correlation_id: "0193a5b0-7c1e-7d2a-9f00-5a1b2c3d4e5f" },
    recorded_at: new Date(Date.UTC(2026, 10, 30, 3, 0, 0) + position * 10).toISOString(),
    ...over,
  };
}

export const KEY: ApiKey = {
  id: "0193f000-0000-7000-8000-000000000001",
  name: "chatbot prod",
  prefix: "sk-ab12",
  models: ["meta-llama/Llama-3.1-8B-Instruct"],
  rpm_limit: 600,
  tpm_limit: null,
  budget_tokens: 5_000_000,
  expires_at: null,
  status: "active",
  created_at: "2026-11-29T10:00:00Z",
  last_used_at: "2026-11-30T02:00:00Z",
  rotated_at: null,
  grace_until: null,
  version: 1,
};

export const USAGE: Usage = {
  bucket: "day",
  group_by: ["key", "model", "worker"],
  rows: [
    { bucket_start: "2026-11-28T00:00:00Z", key_id: KEY.id, key_prefix: "sk-ab12", model: "meta-llama/Llama-3.1-8B-Instruct", instance_id: "i-1", requests: 120, errors: 2, prompt_tokens: 40000, completion_tokens: 9000, ttft_p50_ms: 80, ttft_p95_ms: 210 },
    { bucket_start: "2026-11-29T00:00:00Z", key_id: KEY.id, key_prefix: "sk-ab12", model: "meta-llama/Llama-3.1-8B-Instruct", instance_id: "i-1", requests: 80, errors: 0, prompt_tokens: 20000, completion_tokens: 6000, ttft_p50_ms: 90, ttft_p95_ms: 300 },
    { bucket_start: "2026-11-29T00:00:00Z", key_id: "k2", key_prefix: "sk-cd34", model: "BAAI/bge-m3", instance_id: "i-2", requests: 500, errors: 5, prompt_tokens: 100000, completion_tokens: 0, ttft_p50_ms: null, ttft_p95_ms: null },
  ],
};

export const COSTS: Costs = {
  instances: [
    { instance_id: "i-1", model: "meta-llama/Llama-3.1-8B-Instruct", instance_type: "L4-1-24G", zone: "fr-par-2", billable_seconds: 7200, cost_micro_eur: 1_500_000 },
    { instance_id: "i-2", model: "BAAI/bge-m3", instance_type: "RENDER-S", zone: "fr-par-1", billable_seconds: 3600, cost_micro_eur: 1_242_600 },
  ],
  models: [
    { model: "meta-llama/Llama-3.1-8B-Instruct", cost_micro_eur: 1_500_000, prompt_tokens: 60000, completion_tokens: 15000, cost_per_million_tokens_micro_eur: 20_000_000 },
    { model: "BAAI/bge-m3", cost_micro_eur: 1_242_600, prompt_tokens: 100000, completion_tokens: 0, cost_per_million_tokens_micro_eur: 12_426_000 },
  ],
};
