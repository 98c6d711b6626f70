-- The order list asks two things of every order: has it an invoice, and is it in a job that
-- is still running. Both are answered from an index, whatever the statistics say, so a page
-- never walks the organization's invoices (under row-level security a nested loop over them
-- cost seconds per page).

-- The order's invoice, kept by the database itself: whoever writes an invoice (a batch
-- chunk's COPY, the single-order endpoint, a seed) marks its order in the same statement.
ALTER TABLE sales_orders ADD COLUMN invoice_id uuid;
UPDATE sales_orders o SET invoice_id = i.id FROM invoices i WHERE i.sales_order_id = o.id;

CREATE FUNCTION mark_orders_invoiced() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- The ANY keeps this a loop of primary-key lookups (a chunk's few hundred orders), never
    -- a scan of the table, whatever the planner believes about the transition table.
    UPDATE sales_orders o SET invoice_id = added.id
    FROM added
    WHERE o.id = ANY (ARRAY(SELECT sales_order_id FROM added)) AND o.id = added.sales_order_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER invoices_mark_orders AFTER INSERT ON invoices
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION mark_orders_invoiced();

-- The month-end list (confirmed, not invoiced, by number) and its count read only this.
CREATE INDEX sales_orders_to_invoice_idx ON sales_orders (organization_id, number, id)
    WHERE status = 'confirmed' AND invoice_id IS NULL;

-- "Is this order in a running job?": an order's pending item (only running jobs have any:
-- a job that ends cancels or fails what it did not process).
CREATE INDEX batch_job_items_pending_order_idx ON batch_job_items (order_id) WHERE status = 'pending';
