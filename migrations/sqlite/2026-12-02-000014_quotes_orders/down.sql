DROP TABLE orders;
DROP TABLE quotes;
