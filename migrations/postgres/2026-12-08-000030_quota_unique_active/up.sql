-- One active quota per user, period and currency, kept by the database: the check in code
-- alone let two requests at once (a double click, a retried create, a restore racing a
-- create) both pass it on PostgreSQL. Archived quotas are history (a quota is changed by
-- archiving it and creating another), so they may repeat and the index is partial.
-- Active duplicates such races left are archived first, deterministically: the oldest
-- (created_at, then id) stays active, as the first one set; the others are archived now.
UPDATE quotas
SET archived_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    updated_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    version = version + 1
WHERE archived_at IS NULL
  AND EXISTS (
    SELECT 1 FROM quotas AS older
    WHERE older.archived_at IS NULL
      AND older.user_id = quotas.user_id
      AND older.period = quotas.period
      AND older.currency = quotas.currency
      AND (older.created_at < quotas.created_at
           OR (older.created_at = quotas.created_at AND older.id < quotas.id))
  );
CREATE UNIQUE INDEX quotas_active_key ON quotas (user_id, period, currency)
    WHERE archived_at IS NULL;
