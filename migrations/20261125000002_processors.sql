-- Process managers: a durable checkpoint per processor, and its durable work list.
--
-- A processor reads the global stream after its checkpoint and turns the events it cares about
-- into work rows, in the same transaction that moves the checkpoint. Work rows are the
-- processor's promise to look at a subject (an instance, a zone...) again: a row leaves only
-- once a step reports the subject done, so a crash between a provider call and recording its
-- outcome leaves the row behind and the next leader repeats the step (finding the tagged
-- resource instead of creating a second one).

create table processor_checkpoints (
    name text primary key,
    transaction_id xid8 not null default '0'::xid8,
    position bigint not null default 0,
    events_seen bigint not null default 0,
    updated_at timestamptz not null default now()
);

create table processor_work (
    processor text not null,
    subject text not null,
    -- When the next step is due; now() when an event asked for attention.
    due_at timestamptz not null,
    -- Bumped on every wake-up, so a step that finishes can tell whether something new arrived
    -- while it ran (and must not delete the row then).
    generation bigint not null default 1,
    -- Failed steps in a row (reset by a step that makes progress).
    failures integer not null default 0,
    -- The event that last woke the subject: correlation and causation of what the step records.
    trigger_position bigint,
    trigger_recorded_at timestamptz,
    correlation_id uuid,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (processor, subject)
);

create index processor_work_due on processor_work (processor, due_at);
