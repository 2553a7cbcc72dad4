-- The append-only event store.
--
-- Columns up to `metadata` and the primary key are postgres-es's layout (cqrs-es tooling can
-- read this table). `position`, `transaction_id` and `recorded_at` give the store a global,
-- gap-safe order: readers only read below the xid8 horizon, see docs/architecture.md.
create table events (
    aggregate_type text not null,
    aggregate_id   text not null,
    sequence       bigint not null check (sequence >= 1),
    event_type     text not null,
    event_version  text not null,
    payload        jsonb not null,
    metadata       jsonb not null,
    position       bigint generated always as identity,
    transaction_id xid8 not null default pg_current_xact_id(),
    recorded_at    timestamptz not null default now(),
    primary key (aggregate_type, aggregate_id, sequence)
);

create unique index events_position on events (position);
create unique index events_global_order on events (transaction_id, position);
create index events_event_type on events (event_type, transaction_id, position);
create index events_correlation_id on events ((metadata ->> 'correlation_id'));

-- History is immutable: the database itself refuses to rewrite it.
create function events_refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'the event store is append-only: % on events is refused', tg_op
        using errcode = 'restrict_violation';
end;
$$;

create trigger events_no_update before update on events
    for each row execute function events_refuse_change();
create trigger events_no_delete before delete on events
    for each row execute function events_refuse_change();
create trigger events_no_truncate before truncate on events
    for each statement execute function events_refuse_change();

-- One small wake-up per append transaction: identical notifications within a transaction are
-- folded by PostgreSQL, and the payload never carries the event itself.
create function events_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('inferplane_events', '');
    return null;
end;
$$;

create trigger events_notify after insert on events
    for each statement execute function events_notify();

-- Idempotent commands: the key is recorded in the same transaction as the events it caused,
-- so a retried command finds the first result instead of appending twice.
create table command_idempotency (
    tenant_id       uuid not null,
    idempotency_key text not null,
    fingerprint     text not null,
    aggregate_type  text not null,
    aggregate_id    text not null,
    sequence        bigint not null,
    recorded_at     timestamptz not null default now(),
    primary key (tenant_id, idempotency_key)
);

create index command_idempotency_recorded_at on command_idempotency (recorded_at);

-- One row per projection: where it is in the global stream and which version of its code
-- built it. Updated in the same transaction as the projection's read model, which lives in
-- its own schema `rm_<name>` (rebuilt beside it and swapped in, see docs/architecture.md).
create table projection_checkpoints (
    name            text primary key,
    version         integer not null,
    transaction_id  xid8 not null default '0'::xid8,
    position        bigint not null default 0,
    events_applied  bigint not null default 0,
    updated_at      timestamptz not null default now()
);
