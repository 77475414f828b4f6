-- Lead assignment rules (ordered, first match wins) and the nurture/recycle policy.

CREATE TABLE lead_assignment_rules (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- Rules are tried in ascending position, then id: first match wins.
    position INTEGER NOT NULL,
    -- JSON array of {field, op, value}; all must hold. Empty matches every lead.
    conditions TEXT NOT NULL,
    -- user, team_round_robin or territory_owner.
    assign_to TEXT NOT NULL,
    user_id TEXT REFERENCES users (id),
    team_id TEXT REFERENCES teams (id),
    territory_id TEXT,
    -- How many leads the rule has handed out: the round-robin position.
    assigned_count INTEGER NOT NULL DEFAULT 0,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX lead_assignment_rules_order_idx ON lead_assignment_rules (position, id);
CREATE INDEX lead_assignment_rules_created_idx ON lead_assignment_rules (created_at, id);

ALTER TABLE leads ADD COLUMN assignment_rule_id TEXT;
ALTER TABLE leads ADD COLUMN assigned_at TEXT;
ALTER TABLE leads ADD COLUMN recycled_at TEXT;
ALTER TABLE leads ADD COLUMN recycle_reason TEXT;
-- The recycle job finds untouched leads of a status.
CREATE INDEX leads_status_updated_idx ON leads (status, updated_at);

-- Settings of the sales domain that are one document each (the recycle policy).
CREATE TABLE sales_settings (
    name TEXT PRIMARY KEY NOT NULL,
    -- The id audit rows and events name the setting by.
    id TEXT NOT NULL UNIQUE,
    value TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
