-- Sales: leads (prospects not yet customers), pipelines with their stages, and
-- opportunities moving through them. Money is in minor units of `currency`; dates are
-- `YYYY-MM-DD`; JSON lists are TEXT, as elsewhere.

CREATE TABLE leads (
    id TEXT PRIMARY KEY NOT NULL,
    first_name TEXT,
    last_name TEXT,
    company TEXT,
    job_title TEXT,
    -- Lowercased, as contact emails are, so duplicates are found by equality.
    email TEXT,
    phone TEXT,
    -- The phone in E.164 (`+442079460958`), for duplicate detection; null when unparsable.
    phone_e164 TEXT,
    country TEXT,
    industry TEXT,
    employee_count BIGINT,
    -- web_form, import, event, referral, partner, campaign, cold_call or other.
    source TEXT NOT NULL,
    campaign_id TEXT,
    -- new, working, nurturing, qualified, disqualified or converted.
    status TEXT NOT NULL,
    disqualified_reason TEXT,
    score INTEGER NOT NULL DEFAULT 0,
    owner_id TEXT REFERENCES users (id),
    converted_at TEXT,
    converted_account_id TEXT REFERENCES accounts (id),
    converted_contact_id TEXT REFERENCES contacts (id),
    converted_opportunity_id TEXT,
    external_source TEXT,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX leads_created_idx ON leads (created_at, id);
CREATE INDEX leads_updated_idx ON leads (updated_at, id);
CREATE INDEX leads_score_idx ON leads (score, id);
CREATE INDEX leads_owner_idx ON leads (owner_id);
CREATE INDEX leads_status_idx ON leads (status);
CREATE INDEX leads_source_idx ON leads (source);
CREATE INDEX leads_email_idx ON leads (email);
CREATE INDEX leads_phone_idx ON leads (phone_e164);
CREATE UNIQUE INDEX leads_external_key ON leads (external_source, external_id);

CREATE TABLE pipelines (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- The ordered stages as JSON: [{key, name, probability, forecast_category, exit_criteria}].
    stages TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX pipelines_name_idx ON pipelines (name, id);
CREATE INDEX pipelines_created_idx ON pipelines (created_at, id);

CREATE TABLE opportunities (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    primary_contact_id TEXT REFERENCES contacts (id),
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
    -- The key of a stage of the pipeline.
    stage TEXT NOT NULL,
    stage_entered_at TEXT NOT NULL,
    -- open, won or lost: follows the stage's forecast category.
    status TEXT NOT NULL,
    amount BIGINT NOT NULL DEFAULT 0,
    currency TEXT NOT NULL,
    close_date TEXT,
    owner_id TEXT REFERENCES users (id),
    partner_account_id TEXT REFERENCES accounts (id),
    next_step TEXT,
    -- JSON: competitor names; the team as [{user_id, role, split_percent}].
    competitors TEXT NOT NULL,
    team TEXT NOT NULL,
    close_reason TEXT,
    closed_at TEXT,
    lead_id TEXT REFERENCES leads (id),
    external_source TEXT,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX opportunities_created_idx ON opportunities (created_at, id);
CREATE INDEX opportunities_updated_idx ON opportunities (updated_at, id);
CREATE INDEX opportunities_close_idx ON opportunities (close_date);
CREATE INDEX opportunities_amount_idx ON opportunities (amount, id);
CREATE INDEX opportunities_name_idx ON opportunities (name, id);
CREATE INDEX opportunities_account_idx ON opportunities (account_id);
CREATE INDEX opportunities_owner_idx ON opportunities (owner_id);
CREATE INDEX opportunities_board_idx ON opportunities (pipeline_id, stage);
CREATE INDEX opportunities_status_idx ON opportunities (status);
CREATE UNIQUE INDEX opportunities_external_key ON opportunities (external_source, external_id);

-- Every stage an opportunity entered, with how long it stayed in the one it left.
CREATE TABLE opportunity_stage_history (
    id TEXT PRIMARY KEY NOT NULL,
    opportunity_id TEXT NOT NULL REFERENCES opportunities (id),
    from_stage TEXT,
    to_stage TEXT NOT NULL,
    entered_at TEXT NOT NULL,
    -- Seconds spent in `from_stage`; null for the first stage.
    seconds_in_from_stage BIGINT,
    actor_id TEXT
);
CREATE INDEX opportunity_stage_history_opp_idx ON opportunity_stage_history (opportunity_id, entered_at);
