-- Segment criteria: `families_bought` finds the ids of the products of the families it names
-- (once per statement), then the contact's order lines by account and product.
CREATE INDEX products_family_idx ON products (family, id);
