-- The handles in contacts' social profiles (network → profile URL), so an inbound social
-- message finds its contact by an index instead of reading every contact's profiles. Kept
-- by a listener on contact changes; the handle is the URL's last path segment, lower case,
-- without a leading @.
CREATE TABLE social_handles (
    network TEXT NOT NULL,
    handle TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    PRIMARY KEY (network, handle, contact_id)
);
CREATE INDEX social_handles_contact_idx ON social_handles (contact_id);

-- Messages a social network connector pushed in, once per network and external id.
CREATE TABLE social_messages (
    id TEXT PRIMARY KEY NOT NULL,
    network TEXT NOT NULL,
    external_id TEXT NOT NULL,
    author_handle TEXT NOT NULL,
    author_name TEXT,
    body TEXT NOT NULL,
    url TEXT,
    sent_at TEXT NOT NULL,
    contact_id TEXT REFERENCES contacts (id),
    -- profile (by the contact's social profiles) or hand (sent or set by a client)
    matched_by TEXT,
    campaign_id TEXT REFERENCES campaigns (id),
    activity_id TEXT REFERENCES activities (id),
    ticket_id TEXT REFERENCES tickets (id),
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE UNIQUE INDEX social_messages_external_idx ON social_messages (network, external_id);
CREATE INDEX social_messages_sent_idx ON social_messages (sent_at, id);
CREATE INDEX social_messages_network_idx ON social_messages (network, sent_at, id);
CREATE INDEX social_messages_contact_idx ON social_messages (contact_id, sent_at, id);
CREATE INDEX social_messages_campaign_idx ON social_messages (campaign_id, sent_at, id);

-- The handles of the profiles contacts already have: query string cut, trailing slashes
-- trimmed, the last path segment.
INSERT INTO social_handles (network, handle, contact_id)
SELECT DISTINCT network, handle, contact_id FROM (
    SELECT lower(j.key) AS network,
        lower(ltrim(regexp_replace(rtrim(split_part(j.value, '?', 1), '/'), '^.*/', ''), '@')) AS handle,
        c.id AS contact_id
    FROM contacts c, jsonb_each_text(c.social_profiles::jsonb) j
    WHERE c.archived_at IS NULL AND c.merged_into IS NULL
) h
WHERE handle <> ''
ON CONFLICT DO NOTHING;
