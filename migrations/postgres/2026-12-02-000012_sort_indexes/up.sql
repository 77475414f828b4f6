-- Every documented sort has an index its query reads in order (found by the query plan
-- test, tests/tests/api/plans.rs): the field, then the id that breaks ties.
CREATE INDEX accounts_updated_idx ON accounts (updated_at, id);
CREATE INDEX contacts_first_name_idx ON contacts (first_name, id);
CREATE INDEX contacts_updated_idx ON contacts (updated_at, id);
CREATE INDEX activities_due_sort_idx ON activities (due_sort, id);
CREATE INDEX activities_updated_idx ON activities (updated_at, id);
CREATE INDEX invoices_amount_idx ON invoices (amount_total, id);
CREATE INDEX invoices_number_idx ON invoices (number, id);
CREATE INDEX payments_amount_idx ON payments (amount, id);
