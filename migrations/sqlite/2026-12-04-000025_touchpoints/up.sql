-- Touchpoints: the moments a contact or lead met the company (a form submission, a
-- campaign response, an email click, a meeting, a social message), the journey and the
-- campaign attribution of opportunities read them.
CREATE TABLE touchpoints (
    id TEXT PRIMARY KEY NOT NULL,
    -- contact or lead
    subject_type TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    -- form_submission, campaign_response, email_click, meeting or social_message
    kind TEXT NOT NULL,
    -- The campaign it counts for in attribution, when it has one.
    campaign_id TEXT REFERENCES campaigns (id),
    -- What recorded it: a form submission, a campaign member (`<campaign>:<contact>`), an
    -- activity or a social message.
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- Recording is idempotent: one touchpoint per source and subject.
CREATE UNIQUE INDEX touchpoints_once_idx ON touchpoints (kind, source_id, subject_id);
CREATE INDEX touchpoints_subject_idx ON touchpoints (subject_id, occurred_at, id);
CREATE INDEX touchpoints_campaign_idx ON touchpoints (campaign_id, occurred_at);

-- What happened before touchpoints were recorded: submissions, responses, clicks, meetings.
INSERT INTO touchpoints
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
        || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
    CASE WHEN fs.contact_id IS NOT NULL THEN 'contact' ELSE 'lead' END,
    COALESCE(fs.contact_id, fs.lead_id), 'form_submission', f.campaign_id,
    'form_submission', fs.id, 'Submitted ' || f.name, fs.created_at, fs.created_at
FROM form_submissions fs JOIN forms f ON f.id = fs.form_id
WHERE COALESCE(fs.contact_id, fs.lead_id) IS NOT NULL;
INSERT INTO touchpoints
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
        || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
    'contact', cm.contact_id, 'campaign_response', cm.campaign_id, 'campaign_member',
    cm.campaign_id || ':' || cm.contact_id, 'Responded to ' || k.name, cm.responded_at, cm.responded_at
FROM campaign_members cm JOIN campaigns k ON k.id = cm.campaign_id
WHERE cm.responded_at IS NOT NULL;
INSERT INTO touchpoints
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
        || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
    'contact', cm.contact_id, 'email_click', cm.campaign_id, 'campaign_member',
    cm.campaign_id || ':' || cm.contact_id, 'Clicked a link in ' || k.name, cm.clicked_at, cm.clicked_at
FROM campaign_members cm JOIN campaigns k ON k.id = cm.campaign_id
WHERE cm.clicked_at IS NOT NULL;
INSERT INTO touchpoints
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
        || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
    l.entity_type, l.entity_id, 'meeting', NULL, 'activity', a.id, 'Meeting: ' || a.subject,
    COALESCE(a.starts_at, a.created_at), a.created_at
FROM activities a JOIN activity_links l ON l.activity_id = a.id
WHERE a.kind = 'meeting' AND a.archived_at IS NULL AND l.entity_type IN ('contact', 'lead');

-- A contact's journey includes the leads converted into it and the contacts merged into it.
CREATE INDEX leads_converted_contact_idx ON leads (converted_contact_id);
CREATE INDEX contacts_merged_into_idx ON contacts (merged_into);
