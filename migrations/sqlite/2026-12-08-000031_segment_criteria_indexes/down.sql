DROP INDEX products_family_idx;
