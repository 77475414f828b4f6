-- Customers: accounts, contacts, households, activities, products, custom fields,
-- plus the shared timeline and search index that every domain writes to.

CREATE TABLE timeline_entries (
    id TEXT PRIMARY KEY NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    actor_id TEXT,
    data TEXT NOT NULL
);
CREATE INDEX timeline_entity_idx ON timeline_entries (entity_type, entity_id, occurred_at, id);
CREATE INDEX timeline_source_idx ON timeline_entries (source_type, source_id);

CREATE TABLE search_terms (
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    term TEXT NOT NULL,
    PRIMARY KEY (entity_type, term, entity_id)
);
CREATE INDEX search_terms_entity_idx ON search_terms (entity_type, entity_id);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    domain TEXT,
    industry TEXT,
    employee_count BIGINT,
    annual_revenue BIGINT,
    currency TEXT,
    billing_address TEXT,
    shipping_address TEXT,
    phone TEXT,
    website TEXT,
    owner_id TEXT REFERENCES users (id),
    tags TEXT NOT NULL DEFAULT '[]',
    parent_id TEXT REFERENCES accounts (id),
    custom TEXT NOT NULL DEFAULT '{}',
    external_source TEXT,
    external_id TEXT,
    merged_into TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX accounts_parent_idx ON accounts (parent_id);
CREATE INDEX accounts_owner_idx ON accounts (owner_id);
CREATE INDEX accounts_created_idx ON accounts (created_at, id);
CREATE INDEX accounts_name_idx ON accounts (name, id);
CREATE UNIQUE INDEX accounts_external_key ON accounts (external_source, external_id);

CREATE TABLE households (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    address TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    job_title TEXT,
    lifecycle_stage TEXT NOT NULL,
    owner_id TEXT REFERENCES users (id),
    household_id TEXT REFERENCES households (id),
    tags TEXT NOT NULL DEFAULT '[]',
    preferred_language TEXT,
    social_profiles TEXT NOT NULL DEFAULT '{}',
    custom TEXT NOT NULL DEFAULT '{}',
    external_source TEXT,
    external_id TEXT,
    merged_into TEXT,
    erased_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX contacts_owner_idx ON contacts (owner_id);
CREATE INDEX contacts_household_idx ON contacts (household_id);
CREATE INDEX contacts_created_idx ON contacts (created_at, id);
CREATE INDEX contacts_last_name_idx ON contacts (last_name, id);
CREATE UNIQUE INDEX contacts_external_key ON contacts (external_source, external_id);

CREATE TABLE contact_emails (
    id TEXT PRIMARY KEY NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    email TEXT NOT NULL,
    label TEXT,
    is_primary BOOLEAN NOT NULL
);
CREATE INDEX contact_emails_contact_idx ON contact_emails (contact_id);
CREATE INDEX contact_emails_email_idx ON contact_emails (email);

CREATE TABLE contact_phones (
    id TEXT PRIMARY KEY NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    number TEXT NOT NULL,
    e164 TEXT NOT NULL,
    label TEXT,
    is_primary BOOLEAN NOT NULL
);
CREATE INDEX contact_phones_contact_idx ON contact_phones (contact_id);
CREATE INDEX contact_phones_e164_idx ON contact_phones (e164);

CREATE TABLE contact_accounts (
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    role TEXT NOT NULL,
    PRIMARY KEY (contact_id, account_id)
);
CREATE INDEX contact_accounts_account_idx ON contact_accounts (account_id);

CREATE TABLE contact_consents (
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (contact_id, channel)
);

CREATE TABLE activities (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    direction TEXT,
    channel TEXT,
    subject TEXT NOT NULL,
    body TEXT,
    starts_at TEXT,
    ends_at TEXT,
    due_at TEXT,
    -- due_at, or the far future when there is none, so to-do lists sort with a keyset
    due_sort TEXT NOT NULL,
    status TEXT NOT NULL,
    completed_at TEXT,
    assignee_id TEXT REFERENCES users (id),
    owner_id TEXT REFERENCES users (id),
    outcome TEXT,
    next_step TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX activities_todo_idx ON activities (assignee_id, status, due_sort, id);
CREATE INDEX activities_created_idx ON activities (created_at, id);

CREATE TABLE activity_links (
    activity_id TEXT NOT NULL REFERENCES activities (id),
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    PRIMARY KEY (activity_id, entity_type, entity_id)
);
CREATE INDEX activity_links_entity_idx ON activity_links (entity_type, entity_id);
