-- Marketing, part one: segments, static lists, campaigns and their members, the
-- suppression list, and the List-Unsubscribe header of marketing mail.

-- A dynamic segment: criteria in the documented JSON language, compiled to SQL when read.
CREATE TABLE segments (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    criteria TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX segments_name_idx ON segments (name, id);
CREATE INDEX segments_created_idx ON segments (created_at, id);

CREATE TABLE marketing_lists (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX marketing_lists_name_idx ON marketing_lists (name, id);
CREATE INDEX marketing_lists_created_idx ON marketing_lists (created_at, id);

CREATE TABLE list_members (
    list_id TEXT NOT NULL REFERENCES marketing_lists (id),
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    added_at TEXT NOT NULL,
    PRIMARY KEY (list_id, contact_id)
);
CREATE INDEX list_members_contact_idx ON list_members (contact_id);

CREATE TABLE campaigns (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_id TEXT REFERENCES campaigns (id),
    currency TEXT NOT NULL,
    budget BIGINT NOT NULL DEFAULT 0,
    actual_cost BIGINT NOT NULL DEFAULT 0,
    starts_on TEXT,
    ends_on TEXT,
    -- The mail it sends: a subject and a text body with merge fields.
    subject TEXT,
    body_text TEXT,
    -- Set when a send starts; members are mailed by the campaign.send job.
    send_started_at TEXT,
    owner_id TEXT REFERENCES users (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX campaigns_name_idx ON campaigns (name, id);
CREATE INDEX campaigns_created_idx ON campaigns (created_at, id);
CREATE INDEX campaigns_starts_idx ON campaigns (starts_on, id);
CREATE INDEX campaigns_status_idx ON campaigns (status, id);
CREATE INDEX campaigns_channel_idx ON campaigns (channel, id);
CREATE INDEX campaigns_parent_idx ON campaigns (parent_id);

-- One row per contact per campaign: the primary key is what keeps a campaign's mail from
-- reaching a contact twice. `mail_id` is written in the transaction that queues the mail.
CREATE TABLE campaign_members (
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    status TEXT NOT NULL,
    -- Why a member was not mailed: no_email, no_consent, suppressed.
    skip_reason TEXT,
    mail_id TEXT,
    -- Digest of the member's link token (unsubscribe, open pixel); the token is only mailed.
    token_hash TEXT,
    lead_id TEXT,
    opportunity_id TEXT,
    added_at TEXT NOT NULL,
    sent_at TEXT,
    opened_at TEXT,
    clicked_at TEXT,
    responded_at TEXT,
    unsubscribed_at TEXT,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE INDEX campaign_members_status_idx ON campaign_members (campaign_id, status);
CREATE INDEX campaign_members_contact_idx ON campaign_members (contact_id);

-- Addresses that never get marketing mail again (unsubscribed, bounced, complained, or
-- added by hand), kept by the lower-cased address.
CREATE TABLE suppressions (
    email TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    campaign_id TEXT,
    created_at TEXT NOT NULL
);

-- Web forms: fields mapped to lead fields, posted without login to
-- /forms/{public_key}/submissions; submissions run as the form's owner.
CREATE TABLE forms (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL,
    consent_text TEXT,
    allowed_origins TEXT NOT NULL,
    campaign_id TEXT REFERENCES campaigns (id),
    owner_id TEXT NOT NULL REFERENCES users (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX forms_name_idx ON forms (name, id);
CREATE INDEX forms_created_idx ON forms (created_at, id);

CREATE TABLE form_submissions (
    id TEXT PRIMARY KEY NOT NULL,
    form_id TEXT NOT NULL REFERENCES forms (id),
    data TEXT NOT NULL,
    lead_id TEXT,
    contact_id TEXT,
    -- The consent text the submitter agreed to, as shown then; null without consent.
    consent_text TEXT,
    origin TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX form_submissions_form_idx ON form_submissions (form_id, created_at);

ALTER TABLE mail_messages ADD COLUMN list_unsubscribe TEXT;
CREATE INDEX leads_campaign_idx ON leads (campaign_id);
