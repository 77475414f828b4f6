-- Quotes priced from a price book, and the orders accepted quotes (or an ERP) create. The
-- lines are stored as JSON with every computed amount, in minor units of `currency`.

CREATE TABLE quotes (
    id TEXT PRIMARY KEY NOT NULL,
    opportunity_id TEXT NOT NULL REFERENCES opportunities (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    price_book_id TEXT NOT NULL REFERENCES price_books (id),
    currency TEXT NOT NULL,
    -- draft, sent, accepted, rejected or expired.
    status TEXT NOT NULL,
    valid_until TEXT,
    lines TEXT NOT NULL,
    subtotal BIGINT NOT NULL,
    discount_total BIGINT NOT NULL,
    tax_total BIGINT NOT NULL,
    total BIGINT NOT NULL,
    notes TEXT,
    order_id TEXT,
    sent_at TEXT,
    decided_at TEXT,
    external_source TEXT,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX quotes_created_idx ON quotes (created_at, id);
CREATE INDEX quotes_total_idx ON quotes (total, id);
CREATE INDEX quotes_opportunity_idx ON quotes (opportunity_id);
CREATE INDEX quotes_account_idx ON quotes (account_id);
CREATE INDEX quotes_status_idx ON quotes (status);
CREATE UNIQUE INDEX quotes_external_key ON quotes (external_source, external_id);

CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    opportunity_id TEXT REFERENCES opportunities (id),
    quote_id TEXT REFERENCES quotes (id),
    currency TEXT NOT NULL,
    ordered_on TEXT NOT NULL,
    -- open, fulfilled or cancelled.
    status TEXT NOT NULL,
    lines TEXT NOT NULL,
    subtotal BIGINT NOT NULL,
    discount_total BIGINT NOT NULL,
    tax_total BIGINT NOT NULL,
    total BIGINT NOT NULL,
    notes TEXT,
    external_source TEXT,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX orders_ordered_idx ON orders (ordered_on, id);
CREATE INDEX orders_created_idx ON orders (created_at, id);
CREATE INDEX orders_total_idx ON orders (total, id);
CREATE INDEX orders_account_idx ON orders (account_id);
CREATE INDEX orders_opportunity_idx ON orders (opportunity_id);
CREATE INDEX orders_status_idx ON orders (status);
CREATE UNIQUE INDEX orders_quote_key ON orders (quote_id);
CREATE UNIQUE INDEX orders_external_key ON orders (external_source, external_id);
