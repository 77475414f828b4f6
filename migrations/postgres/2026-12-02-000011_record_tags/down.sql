DROP TABLE record_tags;
