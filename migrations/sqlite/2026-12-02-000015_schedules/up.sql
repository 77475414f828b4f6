-- Named periodic tasks (the platform scheduler). Each row is one task's clock: a replica
-- fires the task by moving next_run_at forward with a compare-and-set, so a tick fires
-- once however many replicas watch it, and the clock survives restarts.
CREATE TABLE schedules (
    name TEXT PRIMARY KEY NOT NULL,
    -- The id audit rows and events name the task by.
    id TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    every_seconds INTEGER NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    next_run_at TEXT NOT NULL,
    last_fired_at TEXT,
    last_job_id TEXT,
    fired_count INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX schedules_due_idx ON schedules (enabled, next_run_at);
