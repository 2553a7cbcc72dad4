-- The highest generation a processor's leaders have given a work row. A new leader counts on
-- from above it (and above any row), so a generation is never given twice for a subject, even
-- after the row that carried it is gone: a late write of an earlier leader, guarded by its
-- generation, can then never touch a row of the next.
alter table processor_checkpoints add column generations bigint not null default 0;
