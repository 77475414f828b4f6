-- Lead scoring: models of attribute and behaviour rules with decay, the score they write to
-- leads and contacts, and the history of every change with its reasons.
CREATE TABLE scoring_models (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- lead or contact
    applies_to TEXT NOT NULL,
    rules TEXT NOT NULL,
    -- Behaviour points halve every this many days; null: they never fade.
    half_life_days INTEGER,
    -- A lead reaching this score is handed to sales (the assignment rules run).
    handoff_score INTEGER,
    owner_id TEXT NOT NULL REFERENCES users (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX scoring_models_name_idx ON scoring_models (name, id);
CREATE INDEX scoring_models_created_idx ON scoring_models (created_at, id);

CREATE TABLE score_changes (
    id TEXT PRIMARY KEY NOT NULL,
    model_id TEXT NOT NULL REFERENCES scoring_models (id),
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    old_score INTEGER NOT NULL,
    new_score INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX score_changes_entity_idx ON score_changes (entity_type, entity_id, created_at);

-- Contacts' scores, kept by marketing beside the contact (leads carry theirs in `score`).
CREATE TABLE contact_scores (
    contact_id TEXT PRIMARY KEY NOT NULL REFERENCES contacts (id),
    score INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX contact_scores_score_idx ON contact_scores (score);
CREATE INDEX form_submissions_lead_idx ON form_submissions (lead_id);
CREATE INDEX form_submissions_contact_idx ON form_submissions (contact_id);
