ALTER TABLE scoring_models DROP COLUMN nurture_below;
