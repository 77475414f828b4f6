DROP INDEX contacts_merged_into_idx;
DROP INDEX leads_converted_contact_idx;
DROP TABLE touchpoints;
