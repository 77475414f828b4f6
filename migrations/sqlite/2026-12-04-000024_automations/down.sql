DROP TABLE automation_cursor;
DROP TABLE automation_steps;
DROP TABLE automation_runs;
DROP TABLE automations;
