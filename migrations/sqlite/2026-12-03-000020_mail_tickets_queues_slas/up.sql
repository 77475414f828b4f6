-- The platform's mail: every message the server sends, queued as a job and sent once.
CREATE TABLE mail_messages (
    id TEXT PRIMARY KEY NOT NULL,
    -- The RFC 5322 Message-ID (without angle brackets): fixed before the first attempt so a
    -- retry sends the same message and replies thread to it.
    message_id TEXT NOT NULL UNIQUE,
    to_address TEXT NOT NULL,
    from_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    in_reply_to TEXT,
    -- queued, sent (accepted by the SMTP server), outbox (kept here: no SMTP_URL) or failed.
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    -- What the mail is about: ticket, survey, sla_escalation, ...
    template TEXT NOT NULL,
    entity_type TEXT,
    entity_id TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX mail_messages_created_idx ON mail_messages (created_at, id);
CREATE INDEX mail_messages_entity_idx ON mail_messages (entity_type, entity_id);
CREATE INDEX mail_messages_to_idx ON mail_messages (to_address, created_at);

-- Overrides of the built-in templates, by key; merge fields are checked on write.
CREATE TABLE mail_templates (
    id TEXT PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE UNIQUE INDEX mail_templates_key_idx ON mail_templates (key) WHERE archived_at IS NULL;
CREATE INDEX mail_templates_created_idx ON mail_templates (created_at, id);

-- Named counters (ticket numbers): one row each, bumped under its row lock.
CREATE TABLE counters (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('ticket_number', 1000);

CREATE TABLE business_calendars (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- IANA zone the hours are in: Europe/Oslo.
    time_zone TEXT NOT NULL,
    -- JSON array of {day: mon..sun, start: "09:00", end: "17:00"}.
    weekly_hours TEXT NOT NULL,
    -- JSON array of ISO dates without business hours.
    holidays TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX business_calendars_name_idx ON business_calendars (name, id);
CREATE INDEX business_calendars_created_idx ON business_calendars (created_at, id);

CREATE TABLE sla_policies (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    calendar_id TEXT NOT NULL REFERENCES business_calendars (id),
    -- The customer tier it covers; null covers every tier not named by another policy.
    customer_tier TEXT,
    -- JSON: {priority: {first_response_minutes, next_response_minutes, resolution_minutes}}.
    targets TEXT NOT NULL,
    -- Minutes before a due time that count as an upcoming breach.
    warn_before_minutes INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX sla_policies_name_idx ON sla_policies (name, id);
CREATE INDEX sla_policies_created_idx ON sla_policies (created_at, id);

CREATE TABLE queues (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    -- round_robin, least_loaded or pull.
    assignment TEXT NOT NULL,
    -- JSON array of {user_id, skills: [..]}.
    members TEXT NOT NULL,
    manager_id TEXT REFERENCES users (id),
    -- Round-robin cursor: the member assigned last.
    last_assigned_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX queues_name_idx ON queues (name, id);
CREATE INDEX queues_created_idx ON queues (created_at, id);

CREATE TABLE routing_rules (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- Lowest first; the first matching rule routes the ticket.
    position INTEGER NOT NULL,
    -- JSON: categories, product_ids, customer_tiers, languages, channels (each optional).
    conditions TEXT NOT NULL,
    queue_id TEXT NOT NULL REFERENCES queues (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX routing_rules_position_idx ON routing_rules (position, id);
CREATE INDEX routing_rules_created_idx ON routing_rules (created_at, id);

CREATE TABLE tickets (
    id TEXT PRIMARY KEY NOT NULL,
    number BIGINT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    description TEXT,
    channel TEXT NOT NULL,
    contact_id TEXT REFERENCES contacts (id),
    account_id TEXT REFERENCES accounts (id),
    product_id TEXT REFERENCES products (id),
    order_id TEXT REFERENCES orders (id),
    category TEXT,
    language TEXT,
    -- low, normal, high, urgent; priority_rank 1..4 orders the queue.
    priority TEXT NOT NULL,
    priority_rank INTEGER NOT NULL,
    status TEXT NOT NULL,
    queue_id TEXT REFERENCES queues (id),
    assignee_id TEXT REFERENCES users (id),
    -- JSON array of strings.
    tags TEXT NOT NULL,
    -- The solved ticket this one follows up.
    follow_up_of TEXT REFERENCES tickets (id),
    sla_policy_id TEXT REFERENCES sla_policies (id),
    first_response_due_at TEXT,
    next_response_due_at TEXT,
    resolution_due_at TEXT,
    first_responded_at TEXT,
    -- Set while pending customer: the SLA clock stops.
    sla_paused_at TEXT,
    -- JSON clock state: business minutes spent paused, and the breaches and warnings
    -- already escalated (so the task acts once each).
    sla_state TEXT NOT NULL,
    solved_at TEXT,
    external_source TEXT,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX tickets_created_idx ON tickets (created_at, id);
CREATE INDEX tickets_updated_idx ON tickets (updated_at, id);
CREATE UNIQUE INDEX tickets_external_key ON tickets (external_source, external_id);
-- The queue pull: the oldest, highest-priority unassigned ticket of a queue.
CREATE INDEX tickets_queue_pull_idx ON tickets (queue_id, assignee_id, priority_rank, created_at);
CREATE INDEX tickets_assignee_idx ON tickets (assignee_id, status, created_at);
CREATE INDEX tickets_contact_idx ON tickets (contact_id, created_at);
CREATE INDEX tickets_account_idx ON tickets (account_id, created_at);
CREATE INDEX tickets_status_idx ON tickets (status, created_at);
CREATE INDEX tickets_resolution_due_idx ON tickets (resolution_due_at);

CREATE TABLE ticket_messages (
    id TEXT PRIMARY KEY NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    -- public (mailed to the contact), internal (agents only) or inbound (from the customer).
    kind TEXT NOT NULL,
    author_id TEXT REFERENCES users (id),
    from_address TEXT,
    body TEXT NOT NULL,
    -- Message-ID of the mail it came in as or went out as: threading reads it.
    message_id TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX ticket_messages_ticket_idx ON ticket_messages (ticket_id, created_at, id);
CREATE INDEX ticket_messages_message_id_idx ON ticket_messages (message_id);

-- Mail gateways allowed to post inbound mail, each with its own key (kept as a hash).
CREATE TABLE mail_gateways (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    -- The first characters of the key, to tell keys apart.
    key_prefix TEXT NOT NULL,
    -- Where a new ticket lands when no routing rule matches.
    default_queue_id TEXT REFERENCES queues (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX mail_gateways_name_idx ON mail_gateways (name, id);
CREATE INDEX mail_gateways_created_idx ON mail_gateways (created_at, id);
