
CREATE TABLE kb_articles (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    category TEXT,
    language TEXT NOT NULL,
    -- draft or published; only published articles are searched and suggested.
    status TEXT NOT NULL,
    -- Content version: bumped by every change of title or body (kb_article_versions).
    revision INTEGER NOT NULL,
    helpful_votes INTEGER NOT NULL DEFAULT 0,
    unhelpful_votes INTEGER NOT NULL DEFAULT 0,
    published_at TEXT,
    author_id TEXT REFERENCES users (id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX kb_articles_created_idx ON kb_articles (created_at, id);
CREATE INDEX kb_articles_updated_idx ON kb_articles (updated_at, id);
CREATE INDEX kb_articles_title_idx ON kb_articles (title, id);
CREATE INDEX kb_articles_status_idx ON kb_articles (status, language);

CREATE TABLE kb_article_versions (
    article_id TEXT NOT NULL REFERENCES kb_articles (id),
    revision INTEGER NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    author_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (article_id, revision)
);

-- One vote per user per article; changing one's mind replaces the vote.
CREATE TABLE kb_votes (
    article_id TEXT NOT NULL REFERENCES kb_articles (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    helpful BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (article_id, user_id)
);

CREATE TABLE ticket_articles (
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    article_id TEXT NOT NULL REFERENCES kb_articles (id),
    linked_by TEXT,
    linked_at TEXT NOT NULL,
    PRIMARY KEY (ticket_id, article_id)
);
CREATE INDEX ticket_articles_article_idx ON ticket_articles (article_id);

-- Satisfaction surveys: one per solved ticket, answered once through a signed link.
CREATE TABLE surveys (
    id TEXT PRIMARY KEY NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    contact_id TEXT,
    agent_id TEXT,
    queue_id TEXT,
    -- Digest of the link's token; the token itself is only in the mail.
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    rating INTEGER,
    -- 0-10: how likely to recommend us (NPS), optional.
    nps INTEGER,
    comment TEXT,
    answered_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX surveys_ticket_idx ON surveys (ticket_id);
CREATE INDEX surveys_answered_idx ON surveys (answered_at);

CREATE TABLE work_orders (
    id TEXT PRIMARY KEY NOT NULL,
    number BIGINT NOT NULL UNIQUE,
    ticket_id TEXT REFERENCES tickets (id),
    account_id TEXT REFERENCES accounts (id),
    contact_id TEXT REFERENCES contacts (id),
    -- repair, replacement or installation.
    kind TEXT NOT NULL,
    -- JSON address where the work is done.
    site_address TEXT,
    technician_id TEXT REFERENCES users (id),
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    -- scheduled, en_route, in_progress, completed or cancelled.
    status TEXT NOT NULL,
    -- JSON array of {product_id, quantity}.
    parts TEXT NOT NULL,
    notes TEXT,
    completed_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX work_orders_created_idx ON work_orders (created_at, id);
CREATE INDEX work_orders_technician_idx ON work_orders (technician_id, window_start);
CREATE INDEX work_orders_window_idx ON work_orders (window_start, id);
CREATE INDEX work_orders_ticket_idx ON work_orders (ticket_id);

CREATE TABLE warranty_claims (
    id TEXT PRIMARY KEY NOT NULL,
    order_id TEXT NOT NULL REFERENCES orders (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    ticket_id TEXT REFERENCES tickets (id),
    account_id TEXT,
    description TEXT,
    -- approved or rejected, decided when filed from the order date and warranty months.
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    warranty_until TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX warranty_claims_created_idx ON warranty_claims (created_at, id);
CREATE INDEX warranty_claims_order_idx ON warranty_claims (order_id);

INSERT INTO counters (name, value) VALUES ('work_order_number', 5000);


-- Full-text search over published articles: SQLite FTS5, kept by the application.
CREATE VIRTUAL TABLE kb_search USING fts5(article_id UNINDEXED, title, body, tokenize = 'unicode61 remove_diacritics 2');
