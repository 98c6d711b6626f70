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

-- The runnable jobs a free worker should take, best first, across organizations (a worker
-- knows no organization before it chooses). It locks nothing: the worker claims the first it
-- can in that job's organization scope, where the claim checks again that the job is runnable.
-- Urgent is class 0, normal 1, low 2 less one for every `aging` seconds it has waited, down to
-- 0: low work climbs to the urgent class and is never starved; urgent and normal do not age.
CREATE FUNCTION next_runnable_jobs(aging double precision, wanted integer)
RETURNS TABLE (job_id uuid, organization_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT job.id, job.organization_id
    FROM public.batch_job_queue AS job
    LEFT JOIN public.organization_turns AS turn ON turn.organization_id = job.organization_id
    WHERE job.status = 'pending'
       OR (job.status = 'processing' AND job.lease_owner IS NULL AND job.lease_expires_at <= now())
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
REVOKE ALL ON FUNCTION next_runnable_jobs(double precision, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION next_runnable_jobs(double precision, integer) TO invoicing_app;

-- A worker no longer asks which organization the job its message names belongs to: it takes
-- the next runnable job instead, so this question of 0011 has no caller left.
DROP FUNCTION batch_job_organization(uuid);
