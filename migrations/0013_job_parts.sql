-- A job's items are cut into parts (ranges of positions); a worker slot claims a part, not a
-- whole job, under a lease of its own (docs/ARCHITECTURE.md, "Parts"). Several workers can so
-- share one job, a worker that dies loses only its part to the sweep, and a slot chooses again
-- after each part, which is where another organization's small job or urgent work gets in.
-- The job row keeps the counters, the status, the cancel flag and the events' seq.
-- A part names its job and the job's organization together: the policy checks the part's
-- organization, and the key makes it the job's (no organization can write a part of, and so
-- hold up, another's job).
ALTER TABLE batch_job_queue ADD CONSTRAINT batch_job_queue_id_organization_key UNIQUE (id, organization_id);
CREATE TABLE batch_job_parts (
    job_id            uuid NOT NULL,
    first_position    integer NOT NULL,
    last_position     integer NOT NULL,
    organization_id   uuid NOT NULL,
    -- The lease, as the job row had it: held (an owner, renewed), handed back (no owner;
    -- runnable from lease_expires_at, NULL: at once) or expired with an owner (crashed).
    lease_owner       text,
    lease_expires_at  timestamptz,
    -- Items this claim's chunks have committed: a failed run progressed if it is above 0.
    processed_since_claim integer NOT NULL DEFAULT 0,
    -- Failed runs of this part in a row with no progress between them (MAX_JOB_ATTEMPTS).
    stalled_attempts  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, first_position),
    FOREIGN KEY (job_id, organization_id) REFERENCES batch_job_queue (id, organization_id) ON DELETE CASCADE,
    CHECK (first_position <= last_position)
);
-- The sweep's question: parts whose worker stopped renewing, per organization.
CREATE INDEX batch_job_parts_held_idx ON batch_job_parts (organization_id, lease_expires_at)
    WHERE lease_owner IS NOT NULL;
ALTER TABLE batch_job_parts ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON batch_job_parts
    USING (organization_id = (SELECT current_organization_id()))
    WITH CHECK (organization_id = (SELECT current_organization_id()));
GRANT SELECT, INSERT, UPDATE, DELETE ON batch_job_parts TO invoicing_app;

-- Jobs not finished get one part covering all their items, carrying the job's lease over, and
-- what its run in flight has done (so that a crash now is not taken for one without progress).
-- They keep running on one worker at a time; jobs submitted from now on are cut into parts.
INSERT INTO batch_job_parts (job_id, first_position, last_position, organization_id, lease_owner,
                             lease_expires_at, processed_since_claim, stalled_attempts)
SELECT id, 1, total_items, organization_id, lease_owner,
       CASE WHEN status = 'processing' THEN lease_expires_at END,
       CASE WHEN status = 'processing'
            THEN greatest(processed_items + cancelled_items - claimed_progress, 0) ELSE 0 END,
       stalled_attempts
FROM batch_job_queue
WHERE status IN ('pending', 'processing');

ALTER TABLE batch_job_queue
    DROP COLUMN lease_owner,
    DROP COLUMN lease_expires_at,
    DROP COLUMN stalled_attempts,
    DROP COLUMN claimed_progress;
CREATE INDEX batch_job_queue_runnable_idx ON batch_job_queue (organization_id, created_at)
    WHERE status IN ('pending', 'processing');

-- The runnable jobs a free slot should take a part of, best first, across organizations. A job
-- is runnable while it is not finished, no cancel was asked, a part of it is free (never
-- claimed, or handed back and due), and fewer than max_workers parts of it are held (0: no
-- limit). Order as in 0012: priority class (low ages), the organization served least recently,
-- the oldest job. Locks nothing: the slot claims in the job's organization scope.
CREATE FUNCTION next_runnable_jobs(aging double precision, wanted integer, max_workers integer)
RETURNS TABLE (job_id uuid, organization_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT job.id, job.organization_id
    FROM public.batch_job_queue AS job
    LEFT JOIN public.organization_turns AS turn ON turn.organization_id = job.organization_id
    WHERE job.status IN ('pending', 'processing')
      AND NOT job.cancel_requested
      AND EXISTS (SELECT 1 FROM public.batch_job_parts AS part
                  WHERE part.job_id = job.id AND part.lease_owner IS NULL
                    AND (part.lease_expires_at IS NULL OR part.lease_expires_at <= now()))
      AND (max_workers <= 0
           OR (SELECT count(*) FROM public.batch_job_parts AS held
               WHERE held.job_id = job.id AND held.lease_owner IS NOT NULL
                 AND held.lease_expires_at > now()) < max_workers)
    ORDER BY (CASE job.priority
                  WHEN 'urgent' THEN 0
                  WHEN 'normal' THEN 1
                  ELSE greatest(2 - floor(extract(epoch FROM now() - job.created_at) / greatest(aging, 1)), 0)
              END),
             turn.last_claimed_at NULLS FIRST,
             job.created_at,
             job.id
    LIMIT least(greatest(wanted, 1), 16)
$$;
REVOKE ALL ON FUNCTION next_runnable_jobs(double precision, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION next_runnable_jobs(double precision, integer, integer) TO invoicing_app;
DROP FUNCTION next_runnable_jobs(double precision, integer);

-- The waiting job a slot running a part of p_job_id should hand its slot over to, if any:
-- among the best runnable jobs (next_runnable_jobs' order), the first that is not p_job_id
-- and either comes before it by priority both as set and as aged (aging orders the queue, it
-- takes no slot away; an aged low job is not displaced by the normal work it now precedes),
-- or has the same priority and class and belongs to another organization that holds no part
-- at all while p_job_id's holds two or more. Looked for only while some job has not started at
-- all (a cheap test first: new work is what a hand-over is for; other waiting work gets slots
-- as parts end). p_job_id must be of the caller's organization; ids only come out.
CREATE FUNCTION work_to_take_over(p_job_id uuid, aging double precision, max_workers integer)
RETURNS TABLE (job_id uuid, organization_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH mine AS (
        SELECT job.id, job.organization_id,
               CASE job.priority WHEN 'urgent' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END AS rank,
               CASE job.priority
                   WHEN 'urgent' THEN 0
                   WHEN 'normal' THEN 1
                   ELSE greatest(2 - floor(extract(epoch FROM now() - job.created_at) / greatest(aging, 1)), 0)
               END AS class,
               (SELECT count(*) FROM public.batch_job_parts AS held
                WHERE held.organization_id = job.organization_id AND held.lease_owner IS NOT NULL
                  AND held.lease_expires_at > now()) AS organization_parts
        FROM public.batch_job_queue AS job
        WHERE job.id = p_job_id AND job.organization_id = (SELECT public.current_organization_id())
          AND EXISTS (SELECT 1 FROM public.batch_job_queue AS fresh WHERE fresh.status = 'pending')
    ), waiting AS (
        SELECT job.id, job.organization_id, ordinal,
               CASE job.priority WHEN 'urgent' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END AS rank,
               CASE job.priority
                   WHEN 'urgent' THEN 0
                   WHEN 'normal' THEN 1
                   ELSE greatest(2 - floor(extract(epoch FROM now() - job.created_at) / greatest(aging, 1)), 0)
               END AS class
        FROM mine
        CROSS JOIN LATERAL public.next_runnable_jobs(aging, 16, max_workers) WITH ORDINALITY
             AS candidate(job_id, organization_id, ordinal)
        JOIN public.batch_job_queue AS job ON job.id = candidate.job_id
    )
    SELECT waiting.id, waiting.organization_id
    FROM waiting CROSS JOIN mine
    WHERE waiting.id <> mine.id
      AND ((waiting.rank < mine.rank AND waiting.class < mine.class)
           OR (waiting.rank = mine.rank AND waiting.class = mine.class
               AND waiting.organization_id <> mine.organization_id
               AND mine.organization_parts >= 2
               AND NOT EXISTS (SELECT 1 FROM public.batch_job_parts AS held
                               WHERE held.organization_id = waiting.organization_id
                                 AND held.lease_owner IS NOT NULL
                                 AND held.lease_expires_at > now())))
    ORDER BY waiting.ordinal
    LIMIT 1
$$;
REVOKE ALL ON FUNCTION work_to_take_over(uuid, double precision, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION work_to_take_over(uuid, double precision, integer) TO invoicing_app;

-- The sweep also visits organizations whose finished jobs left parts behind (a worker that
-- died holding a part of a job another part finished), to delete them.
CREATE OR REPLACE FUNCTION organizations_with_active_jobs()
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT organization_id FROM public.batch_job_queue WHERE status IN ('pending', 'processing')
    UNION
    SELECT organization_id FROM public.batch_job_parts
$$;
