-- Products become integrable: an ERP's catalogue keys them by its own ids.
ALTER TABLE products ADD COLUMN external_source TEXT;
ALTER TABLE products ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX products_external_key ON products (external_source, external_id);
