-- SQLite has one writer, so events commit in seq order; every event is transaction 0 and
-- the feed's (tx, seq) position is its seq. See the PostgreSQL migration for the why.
ALTER TABLE events ADD COLUMN tx BIGINT NOT NULL DEFAULT 0;
CREATE INDEX events_position_idx ON events (tx, seq);
ALTER TABLE feed_state ADD COLUMN pruned_tx BIGINT NOT NULL DEFAULT 0;

CREATE TABLE webhook_relay (
    id INTEGER PRIMARY KEY NOT NULL,
    tx BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
INSERT INTO webhook_relay (id, tx, seq) VALUES (1, 0, (SELECT COALESCE(MAX(seq), 0) FROM events));
