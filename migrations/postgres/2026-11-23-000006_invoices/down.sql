DROP TABLE payments;
DROP TABLE invoices;
