-- Fewer index entries per item: every one is written at submit (100,000 at once) and again
-- each time an item changes status. The (job_id, status, position) index duplicated the
-- partial "pending" index for the worker and served only listings by status, which walk the
-- primary key (job_id, position) just as well; failed items, which the operations page
-- groups by reason, keep a small index of their own.
DROP INDEX IF EXISTS batch_job_items_status_idx;
CREATE INDEX batch_job_items_failed_idx ON batch_job_items (job_id, position) WHERE status = 'failed';
