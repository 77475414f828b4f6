-- The product catalogue: products (single items or bundles of other products) and price
-- books with prices per currency in minor units.

CREATE TABLE products (
    id TEXT PRIMARY KEY NOT NULL,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    family TEXT,
    active BOOLEAN NOT NULL,
    unit TEXT NOT NULL,
    warranty_months INTEGER,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX products_name_idx ON products (name, id);

CREATE TABLE product_components (
    bundle_id TEXT NOT NULL REFERENCES products (id),
    component_id TEXT NOT NULL REFERENCES products (id),
    quantity INTEGER NOT NULL,
    PRIMARY KEY (bundle_id, component_id)
);
CREATE INDEX product_components_component_idx ON product_components (component_id);

CREATE TABLE price_books (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    is_default BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);

CREATE TABLE price_book_entries (
    price_book_id TEXT NOT NULL REFERENCES price_books (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    currency TEXT NOT NULL,
    unit_price BIGINT NOT NULL,
    PRIMARY KEY (price_book_id, product_id, currency)
);
CREATE INDEX price_book_entries_product_idx ON price_book_entries (product_id);
