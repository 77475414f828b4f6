-- Custom fields: definitions per object, and their values in a narrow table with one
-- row per record and field, so values can be filtered with an index. The record's own
-- `custom` column keeps the same values as JSON for reading.

CREATE TABLE custom_field_defs (
    id TEXT PRIMARY KEY NOT NULL,
    object TEXT NOT NULL,
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    field_type TEXT NOT NULL,
    required BOOLEAN NOT NULL,
    is_unique BOOLEAN NOT NULL,
    min_value DOUBLE PRECISION,
    max_value DOUBLE PRECISION,
    options TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT,
    UNIQUE (object, key)
);

CREATE TABLE custom_values (
    object TEXT NOT NULL,
    record_id TEXT NOT NULL,
    key TEXT NOT NULL,
    text_value TEXT,
    number_value DOUBLE PRECISION,
    PRIMARY KEY (object, record_id, key)
);
CREATE INDEX custom_values_text_idx ON custom_values (object, key, text_value);
CREATE INDEX custom_values_number_idx ON custom_values (object, key, number_value);
