-- A retry is a new job over the orders of a finished job that got no invoice. It points back
-- at the job it retries; the unique index makes a double-clicked retry create one job only.
ALTER TABLE batch_job_queue
    ADD COLUMN retry_of uuid REFERENCES batch_job_queue (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX batch_job_queue_retry_of_idx ON batch_job_queue (retry_of) WHERE retry_of IS NOT NULL;

-- The operations page pages through the audit log newest first.
CREATE INDEX audit_log_org_id_idx ON audit_log (organization_id, id DESC);
