-- Territories: a hierarchy with rules on where a customer is and what it is; accounts are
-- assigned to the deepest matching territory, with the history of every change.
CREATE TABLE territories (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    parent_id TEXT REFERENCES territories (id),
    owner_id TEXT REFERENCES users (id),
    -- JSON array of the user ids working the territory.
    member_ids TEXT NOT NULL,
    -- JSON: countries, regions, postcode range, industries, employee range.
    rules TEXT NOT NULL,
    -- Among equally deep matches, the lowest position wins (then id).
    position INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX territories_name_idx ON territories (name, id);
CREATE INDEX territories_created_idx ON territories (created_at, id);
CREATE INDEX territories_parent_idx ON territories (parent_id);

CREATE TABLE account_territories (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id),
    territory_id TEXT NOT NULL REFERENCES territories (id),
    assigned_at TEXT NOT NULL
);
CREATE INDEX account_territories_territory_idx ON account_territories (territory_id);

CREATE TABLE territory_assignments (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    -- Null when the account left every territory.
    territory_id TEXT,
    previous_territory_id TEXT,
    -- account_created, account_changed or realign.
    reason TEXT NOT NULL,
    assigned_at TEXT NOT NULL
);
CREATE INDEX territory_assignments_account_idx ON territory_assignments (account_id, assigned_at, id);
