-- Tags as indexed rows; see the PostgreSQL migration.
CREATE TABLE record_tags (
    entity_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (entity_type, tag, record_id)
);
CREATE INDEX record_tags_record_idx ON record_tags (entity_type, record_id);
INSERT OR IGNORE INTO record_tags (entity_type, record_id, tag)
    SELECT 'account', a.id, j.value FROM accounts a, json_each(a.tags) j;
INSERT OR IGNORE INTO record_tags (entity_type, record_id, tag)
    SELECT 'contact', c.id, j.value FROM contacts c, json_each(c.tags) j;
