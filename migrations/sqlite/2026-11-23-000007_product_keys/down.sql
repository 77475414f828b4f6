DROP INDEX products_external_key;
ALTER TABLE products DROP COLUMN external_id;
ALTER TABLE products DROP COLUMN external_source;
