-- Text messages the server writes (campaigns on the sms channel). Like mail: written in the
-- transaction of what caused it, carried out by an `sms.send` job through the configured
-- provider (log-only by default), never sent twice.
CREATE TABLE sms_messages (
    id TEXT PRIMARY KEY NOT NULL,
    -- E.164
    to_number TEXT NOT NULL,
    body TEXT NOT NULL,
    -- queued, sent (the provider took it), logged (the log-only provider) or failed
    status TEXT NOT NULL,
    provider TEXT,
    provider_message_id TEXT,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    entity_type TEXT,
    entity_id TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX sms_messages_entity_idx ON sms_messages (entity_type, entity_id);
-- Erasure finds the texts sent to a person's numbers.
CREATE INDEX sms_messages_to_idx ON sms_messages (to_number);
-- Numbers that replied STOP (E.164): never texted again, whoever holds them, until they
-- reply START.
CREATE TABLE sms_opt_outs (
    e164 TEXT PRIMARY KEY NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);
