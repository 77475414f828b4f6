DROP TABLE import_errors;
DROP TABLE import_chunks;
DROP TABLE imports;
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP INDEX events_occurred_idx;
DROP TABLE feed_state;
