-- Child rows carry their organization too, so their row-level security policy is a column
-- comparison instead of a per-row lookup of the parent (which cost the worker's chunk and the
-- 100,000-item submit a large share of their time). The writers set it from the parent's.

ALTER TABLE sales_order_lines ADD COLUMN organization_id uuid;
UPDATE sales_order_lines l SET organization_id = o.organization_id FROM sales_orders o WHERE o.id = l.sales_order_id;
ALTER TABLE sales_order_lines ALTER COLUMN organization_id SET NOT NULL;

ALTER TABLE batch_job_items ADD COLUMN organization_id uuid;
UPDATE batch_job_items i SET organization_id = j.organization_id FROM batch_job_queue j WHERE j.id = i.job_id;
ALTER TABLE batch_job_items ALTER COLUMN organization_id SET NOT NULL;

ALTER TABLE invoice_lines ADD COLUMN organization_id uuid;
UPDATE invoice_lines l SET organization_id = i.organization_id FROM invoices i WHERE i.id = l.invoice_id;
ALTER TABLE invoice_lines ALTER COLUMN organization_id SET NOT NULL;

DO $$
DECLARE
    child text;
BEGIN
    FOREACH child IN ARRAY ARRAY['sales_order_lines', 'batch_job_items', 'invoice_lines'] LOOP
        EXECUTE format('DROP POLICY organization_isolation ON %I', child);
        EXECUTE format(
            'CREATE POLICY organization_isolation ON %I '
            'USING (organization_id = current_organization_id()) '
            'WITH CHECK (organization_id = current_organization_id())',
            child
        );
    END LOOP;
END
$$;
