DROP TABLE commission_plans;
DROP TABLE quotas;
