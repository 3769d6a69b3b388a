-- The fence: a token that only ever grows.
--
-- Every claim of a job moves `generation` on by one, and so do an admin's
-- retry and a redrive, which reset `attempts` to 0 for a fresh budget. A
-- worker's heartbeat, progress, commit and domain writes are checked
-- against the generation it claimed, so a worker cut off from the database
-- on some attempt can never commit after an admin retried its job, however
-- many attempts the new run has made. On SQS, a message names the
-- generation the job was queued at, so a message from before a retry is
-- stale too.
--
-- Existing jobs start at their attempt count, so a message or worker of the
-- previous version, which fenced on `attempts`, still matches until the
-- next claim.
ALTER TABLE jobs ADD COLUMN generation integer NOT NULL DEFAULT 0;
UPDATE jobs SET generation = attempts WHERE attempts <> 0;
