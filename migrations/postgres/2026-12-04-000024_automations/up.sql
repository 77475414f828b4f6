-- Automations: event-triggered, multi-step sequences per contact or lead, run by the job
-- queue, with a history of every step.
CREATE TABLE automations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    -- draft, active or paused: only active ones enrol.
    status TEXT NOT NULL,
    -- JSON: {"event": "<type pattern>", "when": [...], "product_family": …} or {"daily": criteria}
    trigger_spec TEXT NOT NULL,
    -- JSON array of steps (wait, condition, send_email, add_to_list, set_field, create_task, notify)
    steps TEXT NOT NULL,
    -- JSON: {"criteria": …, "once_per_subject": bool}
    enrolment TEXT NOT NULL,
    -- JSON: {"events": [...], "criteria": …}
    exit_rules TEXT NOT NULL,
    -- Actions run as this user (their permissions, their audit trail).
    owner_id TEXT NOT NULL REFERENCES users (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX automations_name_idx ON automations (name, id);
CREATE INDEX automations_created_idx ON automations (created_at, id);
CREATE INDEX automations_status_idx ON automations (status, id);

CREATE TABLE automation_runs (
    id TEXT PRIMARY KEY NOT NULL,
    automation_id TEXT NOT NULL REFERENCES automations (id),
    -- contact or lead
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    -- What enrolled it: the event id, `day:<date>` for a daily trigger, `manual:<id>`.
    trigger_key TEXT NOT NULL,
    -- active, completed, exited or failed
    status TEXT NOT NULL,
    -- The next step to run (0-based).
    step INTEGER NOT NULL,
    wake_at TEXT,
    exit_reason TEXT,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
);
-- Never enrolled twice by the same event.
CREATE UNIQUE INDEX automation_runs_once_idx ON automation_runs (automation_id, trigger_key, subject_id);
CREATE INDEX automation_runs_subject_idx ON automation_runs (subject_id, status);
CREATE INDEX automation_runs_started_idx ON automation_runs (automation_id, started_at, id);
CREATE INDEX automation_runs_all_started_idx ON automation_runs (started_at, id);

CREATE TABLE automation_steps (
    id TEXT PRIMARY KEY NOT NULL,
    run_id TEXT NOT NULL REFERENCES automation_runs (id),
    step INTEGER NOT NULL,
    action TEXT NOT NULL,
    -- done, waiting, skipped, exited or failed
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX automation_steps_run_idx ON automation_steps (run_id, at, id);

-- Where the automation relay has read the event log to; its row lock keeps two replicas
-- from enrolling from the same events.
CREATE TABLE automation_cursor (
    id INTEGER PRIMARY KEY NOT NULL,
    tx BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
-- Start at the head: automations react to what happens from now on.
INSERT INTO automation_cursor (id, tx, seq)
    SELECT 1, COALESCE(MAX(tx), 0), COALESCE(MAX(seq), 0) FROM events;
