-- The change feed without a global write lock. Every event records the id of the
-- transaction that wrote it; readers return only events of transactions older than every
-- transaction still running (pg_snapshot_xmin), in (tx, seq) order, so an event can never
-- appear behind a cursor a reader already holds. Rows written before this migration are
-- transaction 0 (the default is set after the column exists so they are not rewritten).
ALTER TABLE events ADD COLUMN tx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_position_idx ON events (tx, seq);
ALTER TABLE feed_state ADD COLUMN pruned_tx BIGINT NOT NULL DEFAULT 0;

-- Webhook fan-out reads the feed after commit (an outbox relay) from this position; its
-- row lock keeps two replicas from fanning the same events out twice.
CREATE TABLE webhook_relay (
    id INTEGER PRIMARY KEY NOT NULL,
    tx BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
INSERT INTO webhook_relay (id, tx, seq) VALUES (1, 0, (SELECT COALESCE(MAX(seq), 0) FROM events));
