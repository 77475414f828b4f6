DROP TABLE loyalty_ledger;
DROP TABLE loyalty_members;
DROP TABLE loyalty_programs;
