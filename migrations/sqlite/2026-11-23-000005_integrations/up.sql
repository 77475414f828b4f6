-- Integrations: change-feed retention, webhooks and their delivery log, import jobs.

-- Events up to `pruned_through` (by seq) have been deleted by retention; a feed cursor
-- older than that has missed changes and must resync.
CREATE TABLE feed_state (
    id INTEGER PRIMARY KEY NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO feed_state (id, pruned_through) VALUES (1, 0);
CREATE INDEX events_occurred_idx ON events (occurred_at);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    description TEXT,
    -- JSON array of event type patterns: "contact.*", "opportunity.updated", "*".
    event_types TEXT NOT NULL,
    -- JSON object: field of the record → required value.
    filters TEXT NOT NULL,
    secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT 1,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    disabled_at TEXT,
    disabled_reason TEXT,
    created_by TEXT REFERENCES users (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX webhooks_active_idx ON webhooks (active, archived_at);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The exact body sent (and re-sent on retries and redeliveries).
    body TEXT NOT NULL,
    -- pending, delivered, failed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    id TEXT PRIMARY KEY NOT NULL,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at TEXT NOT NULL,
    status_code INTEGER,
    latency_ms BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);

CREATE TABLE imports (
    id TEXT PRIMARY KEY NOT NULL,
    object TEXT NOT NULL,
    format TEXT NOT NULL,
    mode TEXT NOT NULL,
    match_on TEXT,
    -- JSON object: column of the file → field of the object.
    mapping TEXT NOT NULL,
    dry_run BOOLEAN NOT NULL,
    -- uploading, queued, running, succeeded, failed
    status TEXT NOT NULL,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    total_rows BIGINT,
    processed BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX imports_created_idx ON imports (created_at, id);

-- The uploaded file, in pieces, so that any replica can resume the import.
CREATE TABLE import_chunks (
    import_id TEXT NOT NULL REFERENCES imports (id),
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (import_id, n)
);

CREATE TABLE import_errors (
    id TEXT PRIMARY KEY NOT NULL,
    import_id TEXT NOT NULL REFERENCES imports (id),
    line BIGINT NOT NULL,
    field TEXT,
    message TEXT NOT NULL
);
CREATE INDEX import_errors_import_idx ON import_errors (import_id, line);
