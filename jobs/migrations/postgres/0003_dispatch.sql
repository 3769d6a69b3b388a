-- The dispatch outbox of the SQS queue. When jobs live on SQS, a job becomes
-- `queued` (insert, retry, reap, admin retry or redrive) in the same
-- transaction that writes its dispatch row here, and a dispatcher sends the
-- rows to SQS in batches of ten and deletes what went out. So a queued job
-- always has a message, sent or about to be, even if a process dies in
-- between; and no message exists whose job row did not commit. Unused (and
-- empty) on the embedded queue.
CREATE TABLE dispatch (
    id          bigserial   PRIMARY KEY,
    job_id      uuid        NOT NULL,
    lane        text        NOT NULL,
    tenant_id   text        NOT NULL,
    -- jobs.attempts when the row was written: the message's generation. A
    -- message older than its job's attempts is stale and is dropped.
    attempt     integer     NOT NULL,
    -- To the lane's dead-letter queue: the job went dead.
    dead_letter boolean     NOT NULL DEFAULT false,
    -- The job's run_at. Rows are sent at most 15 minutes early (the longest
    -- SQS delay), so a far-future job waits here, not in the queue.
    send_at     timestamptz NOT NULL,
    traceparent text,
    -- Set while a dispatcher is sending the row.
    lease_until timestamptz
);
CREATE INDEX dispatch_due ON dispatch (send_at);

-- How this database's jobs are queued: `embedded` or `sqs`. Recorded by the
-- first process (or set by `longhaul migrate`), and checked by every other,
-- so that a process started with the wrong LONGHAUL_QUEUE refuses to start
-- instead of writing jobs that no worker will ever see.
CREATE TABLE queue_settings (
    id         boolean     PRIMARY KEY DEFAULT true CHECK (id),
    queue      text        NOT NULL CHECK (queue IN ('embedded', 'sqs')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
