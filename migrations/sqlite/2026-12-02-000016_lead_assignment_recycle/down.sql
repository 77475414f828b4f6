DROP TABLE sales_settings;
DROP INDEX leads_status_updated_idx;
ALTER TABLE leads DROP COLUMN recycle_reason;
ALTER TABLE leads DROP COLUMN recycled_at;
ALTER TABLE leads DROP COLUMN assigned_at;
ALTER TABLE leads DROP COLUMN assignment_rule_id;
DROP TABLE lead_assignment_rules;
