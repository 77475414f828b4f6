-- Quote revisions: every revision of one proposal shares `family_id` (the first revision's
-- id) and has its own `revision` number; `supersedes_id` is the revision it replaced.
ALTER TABLE quotes ADD COLUMN family_id TEXT NOT NULL DEFAULT '';
ALTER TABLE quotes ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE quotes ADD COLUMN supersedes_id TEXT REFERENCES quotes (id);
UPDATE quotes SET family_id = id;
-- Two revisions racing to be number n: one wins, the other is a 409.
CREATE UNIQUE INDEX quotes_family_revision_key ON quotes (family_id, revision);

-- Opportunity line items: products priced from a price book, stored with their computed
-- amounts; when there are any, the deal's amount is their net total.
ALTER TABLE opportunities ADD COLUMN lines TEXT NOT NULL DEFAULT '[]';
ALTER TABLE opportunities ADD COLUMN price_book_id TEXT REFERENCES price_books (id);

-- The lead list by status, newest first; an opportunity board's column by amount.
CREATE INDEX leads_status_created_idx ON leads (status, created_at, id);
DROP INDEX opportunities_board_idx;
CREATE INDEX opportunities_board_idx ON opportunities (pipeline_id, stage, amount, id);

-- Order lines as rows: the queryable purchase history (who bought which product, how many,
-- for how much, when) behind recommendations, segments and analytics. `orders.lines` stays
-- the document as sold; these rows are rewritten from it in the same transaction.
CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no INTEGER NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    quantity BIGINT NOT NULL,
    -- Net of discounts, before tax, in minor units of `currency`.
    net BIGINT NOT NULL,
    currency TEXT NOT NULL,
    ordered_on TEXT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_account_idx ON order_lines (account_id, product_id);
CREATE INDEX order_lines_product_idx ON order_lines (product_id, account_id);
INSERT INTO order_lines
SELECT o.id, CAST(j.key AS INTEGER), o.account_id, json_extract(j.value, '$.product_id'),
       json_extract(j.value, '$.quantity'), json_extract(j.value, '$.net'), o.currency, o.ordered_on
FROM orders o, json_each(o.lines) j;

-- A lead's emails and phones, kept as a contact's are; `leads.email` and `leads.phone` stay
-- the primary ones (what rules, filters and the recycle policy read).
CREATE TABLE lead_emails (
    lead_id TEXT NOT NULL REFERENCES leads (id),
    email TEXT NOT NULL,
    label TEXT,
    is_primary BOOLEAN NOT NULL,
    PRIMARY KEY (lead_id, email)
);
CREATE INDEX lead_emails_email_idx ON lead_emails (email);
CREATE TABLE lead_phones (
    lead_id TEXT NOT NULL REFERENCES leads (id),
    number TEXT NOT NULL,
    -- The number in E.164; a number that doesn't parse is kept as written.
    e164 TEXT NOT NULL,
    label TEXT,
    is_primary BOOLEAN NOT NULL,
    PRIMARY KEY (lead_id, e164)
);
CREATE INDEX lead_phones_e164_idx ON lead_phones (e164);
INSERT INTO lead_emails SELECT id, email, NULL, TRUE FROM leads WHERE email IS NOT NULL;
INSERT INTO lead_phones SELECT id, phone, COALESCE(phone_e164, phone), NULL, TRUE FROM leads
WHERE phone IS NOT NULL;

-- Leads take custom fields, as accounts and contacts do (values also in custom_values).
ALTER TABLE leads ADD COLUMN custom TEXT NOT NULL DEFAULT '{}';
