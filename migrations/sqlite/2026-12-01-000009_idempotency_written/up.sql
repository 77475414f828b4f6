-- Set in the transaction of the write an Idempotency-Key request made, so a retry of a
-- request that never finished can tell whether it may run again.
ALTER TABLE idempotency_keys ADD COLUMN write_committed BOOLEAN NOT NULL DEFAULT 0;
