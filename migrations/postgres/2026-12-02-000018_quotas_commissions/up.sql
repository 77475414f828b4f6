-- Quotas per user per period, and the commission plans statements are computed with.
CREATE TABLE quotas (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- 2027, 2027-Q1 or 2027-01.
    period TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX quotas_created_idx ON quotas (created_at, id);
CREATE INDEX quotas_user_period_idx ON quotas (user_id, period);
CREATE INDEX quotas_period_idx ON quotas (period, id);

CREATE TABLE commission_plans (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- JSON array of the user ids the plan pays.
    user_ids TEXT NOT NULL,
    -- JSON: rate tiers by attainment, per-family rates, the accelerator above quota.
    tiers TEXT NOT NULL,
    family_rates TEXT NOT NULL,
    accelerator TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX commission_plans_name_idx ON commission_plans (name, id);
CREATE INDEX commission_plans_created_idx ON commission_plans (created_at, id);
