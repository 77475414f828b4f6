DROP INDEX leads_campaign_idx;
ALTER TABLE mail_messages DROP COLUMN list_unsubscribe;
DROP TABLE suppressions;
DROP TABLE campaign_members;
DROP TABLE campaigns;
DROP TABLE list_members;
DROP TABLE marketing_lists;
DROP TABLE segments;
