DROP INDEX accounts_updated_idx;
DROP INDEX contacts_first_name_idx;
DROP INDEX contacts_updated_idx;
DROP INDEX activities_due_sort_idx;
DROP INDEX activities_updated_idx;
DROP INDEX invoices_amount_idx;
DROP INDEX invoices_number_idx;
DROP INDEX payments_amount_idx;
