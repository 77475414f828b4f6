DROP TABLE price_book_entries;
DROP TABLE price_books;
DROP TABLE product_components;
DROP TABLE products;
