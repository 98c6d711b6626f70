-- Row-level security: the second wall behind "every query carries the organization".
--
-- The server and the worker connect, then act as the role invoicing_app, which owns no
-- table, so these policies apply to it. Each transaction names its organization with
-- set_config('app.organization_id', ..., true); without one, every policy answers "no rows".
-- The few operations that span organizations (login, token and session lookup, the sweep,
-- claiming a job by id) and the bulk COPY of invoices (COPY FROM refuses tables with RLS)
-- step out with SET LOCAL ROLE NONE, explicitly, in invoicing/storage/database.py.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'invoicing_app') THEN
        CREATE ROLE invoicing_app NOLOGIN;
    END IF;
    -- The migrating user (the tables' owner) must be able to act as the role; a superuser can.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT invoicing_app TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO invoicing_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO invoicing_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO invoicing_app;
REVOKE ALL ON schema_migrations FROM invoicing_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO invoicing_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO invoicing_app;

CREATE FUNCTION current_organization_id() RETURNS uuid
LANGUAGE sql STABLE
AS $$ SELECT nullif(current_setting('app.organization_id', true), '')::uuid $$;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON organizations USING (id = current_organization_id());

-- Tables that carry the organization.
DO $$
DECLARE
    owned text;
BEGIN
    FOREACH owned IN ARRAY ARRAY[
        'memberships', 'api_tokens', 'sessions', 'customers', 'sales_orders', 'batch_job_queue',
        'invoice_number_counters', 'invoices', 'audit_log'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', owned);
        EXECUTE format(
            'CREATE POLICY organization_isolation ON %I '
            'USING (organization_id = current_organization_id()) '
            'WITH CHECK (organization_id = current_organization_id())',
            owned
        );
    END LOOP;
END
$$;

-- Tables that belong to a parent row: visible when the parent is, and the parent's own policy
-- (applied inside the subquery) is the organization check.
ALTER TABLE sales_order_lines ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON sales_order_lines
    USING (EXISTS (SELECT 1 FROM sales_orders o WHERE o.id = sales_order_id));

ALTER TABLE batch_job_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON batch_job_items
    USING (EXISTS (SELECT 1 FROM batch_job_queue j WHERE j.id = job_id));

ALTER TABLE invoice_lines ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON invoice_lines
    USING (EXISTS (SELECT 1 FROM invoices i WHERE i.id = invoice_id));

-- Users span organizations: one is visible to an organization it is a member of.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY organization_isolation ON users
    USING (EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = id));
