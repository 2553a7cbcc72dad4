-- Worker telemetry: the latest heartbeat of each worker agent, one row per instance.
--
-- Heartbeats arrive every few seconds from every GPU VM; their gauges (queue depth, running
-- requests, KV-cache usage, GPUs, system load) are operational state, not facts of an
-- instance's life, so they are overwritten here instead of appended to the event store. Only
-- meaningful changes (registration, health, the set of served models) become events on the
-- instance (see docs/decisions/0012-worker-heartbeats-telemetry-not-events.md).
--
-- Contract with the gateway, which reads
--   select instance_id, engine_url, models, waiting, running, last_heartbeat_at
--   from worker_telemetry
-- about every 500 ms: these columns keep their names and types.

create table worker_telemetry (
    instance_id uuid primary key,
    -- The engine's OpenAI-compatible base URL as the control plane reaches it
    -- (http://<public ip>:<engine port>), set at registration.
    engine_url text not null,
    -- Models the engine lists on /v1/models.
    models text[] not null default '{}',
    -- The agent's own status: registered (no heartbeat yet), starting, ready, engine_down.
    status text not null,
    -- vllm:num_requests_waiting and vllm:num_requests_running, summed over models.
    waiting integer not null default 0,
    running integer not null default 0,
    -- vllm:kv_cache_usage_perc (0 to 1), when the engine exports it.
    kv_cache_usage double precision,
    gpus jsonb not null default '[]',
    system jsonb not null default '{}',
    agent_version text not null default '',
    -- The install attempt whose agent reports here.
    install_attempt integer not null default 1,
    registered_at timestamptz not null default now(),
    last_heartbeat_at timestamptz not null,
    heartbeats bigint not null default 0,
    constraint worker_telemetry_status_known
        check (status in ('registered', 'starting', 'ready', 'engine_down')),
    constraint worker_telemetry_gauges_not_negative check (waiting >= 0 and running >= 0)
);

create index worker_telemetry_last_heartbeat on worker_telemetry (last_heartbeat_at);
