-- Tags as indexed rows, so `tag=` filters are an index search instead of a LIKE over the
-- JSON text of every record. The JSON column stays what records show; both are written in
-- the same transaction.
CREATE TABLE record_tags (
    entity_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (entity_type, tag, record_id)
);
CREATE INDEX record_tags_record_idx ON record_tags (entity_type, record_id);
INSERT INTO record_tags (entity_type, record_id, tag)
    SELECT 'account', a.id, t FROM accounts a, json_array_elements_text(a.tags::json) t
    ON CONFLICT DO NOTHING;
INSERT INTO record_tags (entity_type, record_id, tag)
    SELECT 'contact', c.id, t FROM contacts c, json_array_elements_text(c.tags::json) t
    ON CONFLICT DO NOTHING;
