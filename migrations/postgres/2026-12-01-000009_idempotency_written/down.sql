ALTER TABLE idempotency_keys DROP COLUMN write_committed;
