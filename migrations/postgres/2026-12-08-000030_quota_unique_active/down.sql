-- Duplicates archived by the up migration stay archived.
DROP INDEX quotas_active_key;
