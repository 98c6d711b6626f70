-- Priorities and fairness between organizations (docs/ARCHITECTURE.md, "Which job runs next").

ALTER TABLE batch_job_queue
    ADD COLUMN priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('urgent', 'normal', 'low'));

-- When each organization last had a job claimed: among jobs of one priority, the organization
-- served least recently goes first. One row per organization, written by its own claims.
CREATE TABLE organization_turns (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    last_claimed_at timestamptz NOT NULL
);
ALTER TABLE organization_turns ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON organization_turns
    USING (organization_id = (SELECT current_organization_id()))
    WITH CHECK (organization_id = (SELECT current_organization_id()));
GRANT SELECT, INSERT, UPDATE ON organization_turns TO invoicing_app;

-- A job's priority class now: urgent 0, normal 1, low 2 less one for every `aging` seconds it
-- has waited, down to 0 (low work climbs to the urgent class; urgent and normal do not age).
CREATE FUNCTION priority_class(priority text, created_at timestamptz, aging double precision)
RETURNS double precision
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE priority
        WHEN 'urgent' THEN 0
        WHEN 'normal' THEN 1
        ELSE greatest(2 - floor(extract(epoch FROM now() - created_at) / greatest(aging, 1)), 0)
    END
$$;

-- The runnable jobs a free worker should take, best first, across organizations (a worker
-- knows no organization before it chooses). It locks nothing: the worker claims the first it
-- can in that job's organization scope, where the claim checks again that the job is runnable.
CREATE FUNCTION next_runnable_jobs(aging double precision, wanted integer)
RETURNS TABLE (job_id uuid, organization_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT job.id, job.organization_id
    FROM public.batch_job_queue AS job
    LEFT JOIN public.organization_turns AS turn ON turn.organization_id = job.organization_id
    WHERE job.status = 'pending'
       OR (job.status = 'processing' AND job.lease_owner IS NULL AND job.lease_expires_at <= now())
    ORDER BY public.priority_class(job.priority, job.created_at, aging),
             turn.last_claimed_at NULLS FIRST,
             job.created_at,
             job.id
    LIMIT least(greatest(wanted, 1), 16)
$$;
REVOKE ALL ON FUNCTION next_runnable_jobs(double precision, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION next_runnable_jobs(double precision, integer) TO invoicing_app;

-- Whether a running job should give its worker slot to waiting work, asked after each chunk:
-- 'priority' when a runnable job of a higher class waits, 'turn' when one of the same class
-- waits whose organization was served less recently than this job's (another organization's
-- small job need not wait for a long job to end), NULL otherwise. Locks nothing.
CREATE FUNCTION better_work_waiting(p_job_id uuid, aging double precision)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH mine AS (
        SELECT job.organization_id, turn.last_claimed_at AS turn,
               public.priority_class(job.priority, job.created_at, aging) AS class
        FROM public.batch_job_queue AS job
        LEFT JOIN public.organization_turns AS turn ON turn.organization_id = job.organization_id
        WHERE job.id = p_job_id
    ), waiting AS (
        SELECT job.organization_id, turn.last_claimed_at AS turn,
               public.priority_class(job.priority, job.created_at, aging) AS class
        FROM public.batch_job_queue AS job
        LEFT JOIN public.organization_turns AS turn ON turn.organization_id = job.organization_id
        WHERE job.id <> p_job_id
          AND (job.status = 'pending'
               OR (job.status = 'processing' AND job.lease_owner IS NULL AND job.lease_expires_at <= now()))
    )
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM waiting, mine WHERE waiting.class < mine.class) THEN 'priority'
        WHEN EXISTS (
            SELECT 1 FROM waiting, mine
            WHERE waiting.class = mine.class AND waiting.organization_id <> mine.organization_id
              AND (waiting.turn IS NULL OR waiting.turn < mine.turn)
        ) THEN 'turn'
    END
$$;
REVOKE ALL ON FUNCTION better_work_waiting(uuid, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION better_work_waiting(uuid, double precision) TO invoicing_app;
