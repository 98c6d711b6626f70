-- What ends a job is repeated failure at the same place, not the number of times it was
-- claimed. `attempts` keeps counting claims (operators' queries read it); these say how a
-- job is failing right now.
ALTER TABLE batch_job_queue
    -- Runs in a row that ended in failure (a crash, an error) with no item processed between
    -- them; back to 1 when a failing run had made progress. The job fails at MAX_JOB_ATTEMPTS.
    ADD COLUMN stalled_attempts integer NOT NULL DEFAULT 0,
    -- processed_items + cancelled_items when the job was last claimed: a run progressed if
    -- they grew past it.
    ADD COLUMN claimed_progress integer NOT NULL DEFAULT 0,
    -- Why the last run failed (a stable code and a message safe to show); the job's `errors`
    -- gets them if the job ends failed.
    ADD COLUMN last_error_code text,
    ADD COLUMN last_error_message text;
