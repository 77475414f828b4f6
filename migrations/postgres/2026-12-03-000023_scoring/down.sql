DROP INDEX form_submissions_contact_idx;
DROP INDEX form_submissions_lead_idx;
DROP TABLE contact_scores;
DROP TABLE score_changes;
DROP TABLE scoring_models;
