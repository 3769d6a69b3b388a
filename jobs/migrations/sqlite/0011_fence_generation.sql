-- The fence: a token that only ever grows. Every claim moves `generation`
-- on by one, and so do an admin's retry and a redrive (which reset
-- `attempts`); heartbeats, progress, commits and domain writes are checked
-- against the generation the worker claimed. See postgres/0012.
ALTER TABLE jobs ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET generation = attempts WHERE attempts <> 0;
