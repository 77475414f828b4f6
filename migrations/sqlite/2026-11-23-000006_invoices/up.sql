-- Accounting records pushed in from an ERP or billing system: invoices and the payments
-- received against them. Money is in minor units of `currency` (cents for USD); dates
-- are `YYYY-MM-DD`, so text order is date order on both databases.

CREATE TABLE invoices (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    -- The order this invoice bills, when orders land (no foreign key until then).
    order_id TEXT,
    number TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_total BIGINT NOT NULL,
    -- Sum of the live payments applied to this invoice; kept up to date by every
    -- payment write, in the same transaction.
    amount_paid BIGINT NOT NULL DEFAULT 0,
    issued_on TEXT NOT NULL,
    due_on TEXT NOT NULL,
    -- open, paid or void. Overdue is derived when read: open and due_on before today.
    status TEXT NOT NULL,
    notes TEXT,
    external_source TEXT,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX invoices_account_idx ON invoices (account_id);
CREATE INDEX invoices_due_idx ON invoices (due_on, id);
CREATE INDEX invoices_issued_idx ON invoices (issued_on, id);
CREATE UNIQUE INDEX invoices_external_key ON invoices (external_source, external_id);

CREATE TABLE payments (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    -- The invoice it pays; null for a payment not applied to any invoice yet.
    invoice_id TEXT REFERENCES invoices (id),
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    received_on TEXT NOT NULL,
    -- bank_transfer, card, cash, check or other.
    method TEXT NOT NULL,
    reference TEXT,
    external_source TEXT,
    external_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX payments_account_idx ON payments (account_id);
CREATE INDEX payments_invoice_idx ON payments (invoice_id);
CREATE INDEX payments_received_idx ON payments (received_on, id);
CREATE UNIQUE INDEX payments_external_key ON payments (external_source, external_id);
