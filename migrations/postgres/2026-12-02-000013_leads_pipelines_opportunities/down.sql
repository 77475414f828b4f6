DROP TABLE opportunity_stage_history;
DROP TABLE opportunities;
DROP TABLE pipelines;
DROP TABLE leads;
