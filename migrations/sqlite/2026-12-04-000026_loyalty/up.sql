-- Loyalty programmes: members earn points by the programme's rules on their account's
-- orders (or by hand), climb tiers on lifetime points, and redeem rewards.
CREATE TABLE loyalty_programs (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    -- Orders in this currency earn points.
    currency TEXT NOT NULL,
    -- JSON: [{points, per_amount, product_family?}]
    earn_rules TEXT NOT NULL,
    -- JSON: [{name, min_points, multiplier_percent}]
    tiers TEXT NOT NULL,
    -- JSON: [{code, name, points}]
    rewards TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);

CREATE TABLE loyalty_members (
    id TEXT PRIMARY KEY NOT NULL,
    program_id TEXT NOT NULL REFERENCES loyalty_programs (id),
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    -- The account whose orders earn this member points.
    account_id TEXT REFERENCES accounts (id),
    -- The database refuses a negative balance whatever the code does.
    balance BIGINT NOT NULL CHECK (balance >= 0),
    lifetime_points BIGINT NOT NULL,
    tier TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE UNIQUE INDEX loyalty_members_contact_idx ON loyalty_members (program_id, contact_id);
-- One earning member per account and programme, so an order is never awarded twice.
CREATE UNIQUE INDEX loyalty_members_account_idx ON loyalty_members (account_id, program_id)
    WHERE account_id IS NOT NULL;
CREATE INDEX loyalty_members_contact_only_idx ON loyalty_members (contact_id);
CREATE INDEX loyalty_members_program_idx ON loyalty_members (program_id, created_at, id);
-- The documented sorts and the tier filter.
CREATE INDEX loyalty_members_created_idx ON loyalty_members (created_at, id);
CREATE INDEX loyalty_members_balance_idx ON loyalty_members (balance, id);
CREATE INDEX loyalty_members_lifetime_idx ON loyalty_members (lifetime_points, id);
CREATE INDEX loyalty_members_tier_idx ON loyalty_members (tier, created_at, id);

-- Every change of a balance. `source_key` names what caused it (`order:<id>`, a client's
-- key); unique per member, so a retried award or a replayed order never counts twice.
CREATE TABLE loyalty_ledger (
    id TEXT PRIMARY KEY NOT NULL,
    member_id TEXT NOT NULL REFERENCES loyalty_members (id),
    -- earn, redeem, adjust or reversal
    kind TEXT NOT NULL,
    points BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    source_key TEXT NOT NULL,
    order_id TEXT REFERENCES orders (id),
    reward_code TEXT,
    reason TEXT,
    actor_id TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX loyalty_ledger_once_idx ON loyalty_ledger (member_id, source_key);
CREATE INDEX loyalty_ledger_member_idx ON loyalty_ledger (member_id, created_at, id);
CREATE INDEX loyalty_ledger_order_idx ON loyalty_ledger (order_id);
