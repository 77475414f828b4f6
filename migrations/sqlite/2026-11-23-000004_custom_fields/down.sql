DROP TABLE custom_values;
DROP TABLE custom_field_defs;
