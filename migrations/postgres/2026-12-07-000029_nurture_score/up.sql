-- A lead model's nurturing score: a lead cooling below it while new or working goes to
-- nurturing, where the lead recycle policy's nurturing rule finishes the job.
ALTER TABLE scoring_models ADD COLUMN nurture_below INTEGER;
