DROP TABLE webhook_relay;
ALTER TABLE feed_state DROP COLUMN pruned_tx;
DROP INDEX events_position_idx;
ALTER TABLE events DROP COLUMN tx;
