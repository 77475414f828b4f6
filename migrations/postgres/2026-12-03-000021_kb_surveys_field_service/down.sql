DELETE FROM counters WHERE name = 'work_order_number';
DROP TABLE warranty_claims;
DROP TABLE work_orders;
DROP TABLE surveys;
DROP TABLE ticket_articles;
DROP TABLE kb_votes;
DROP TABLE kb_article_versions;
DROP TABLE kb_articles;
