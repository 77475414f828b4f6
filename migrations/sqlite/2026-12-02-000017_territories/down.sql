DROP TABLE territory_assignments;
DROP TABLE account_territories;
DROP TABLE territories;
