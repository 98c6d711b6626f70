-- Least privilege: the server and the workers log in as a role that owns nothing and cannot
-- leave row-level security (no RESET ROLE into the owner, no COPY past the policies). The
-- few questions that span organizations are these functions, owned by the tables' owner
-- (SECURITY DEFINER): each answers one narrow question about the row its argument names, so
-- that code running as the application role never reads a table across organizations.
-- invoicing_app may call them; nobody else may (EXECUTE is revoked from PUBLIC).
--
-- Each names our tables with their schema and searches only pg_catalog (pg_temp last): neither
-- a caller's temporary table nor a function it managed to create elsewhere (an overload of a
-- built-in, say) can stand in for ours and run as the owner.

-- Who may log in with this email: the password hash and every membership.
CREATE FUNCTION login_candidate(p_email text)
RETURNS TABLE (id uuid, email text, password_hash text, organization_ids uuid[], names text[], roles text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, u.email, u.password_hash,
           coalesce(array_agg(m.organization_id ORDER BY o.name, o.id) FILTER (WHERE m.user_id IS NOT NULL), '{}'),
           coalesce(array_agg(o.name ORDER BY o.name, o.id) FILTER (WHERE m.user_id IS NOT NULL), '{}'),
           coalesce(array_agg(m.role ORDER BY o.name, o.id) FILTER (WHERE m.user_id IS NOT NULL), '{}')
    FROM public.users u
    LEFT JOIN public.memberships m ON m.user_id = u.id
    LEFT JOIN public.organizations o ON o.id = m.organization_id
    WHERE u.email = p_email
    GROUP BY u.id
$$;

-- The principal of a live session (and "seen now"); nothing for an expired or ended one.
CREATE FUNCTION principal_by_session(p_token_hash bytea)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, email text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE public.sessions s SET last_seen_at = now()
    FROM public.memberships m, public.users u
    WHERE s.token_hash = p_token_hash AND s.expires_at > now()
      AND m.organization_id = s.organization_id AND m.user_id = s.user_id AND u.id = s.user_id
    RETURNING s.user_id, s.organization_id, m.role, u.email
$$;

CREATE FUNCTION end_session(p_token_hash bytea)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM public.sessions WHERE token_hash = p_token_hash $$;

-- Only to an organization the user belongs to: otherwise nothing changes.
CREATE FUNCTION switch_session_organization(p_token_hash bytea, p_organization_id uuid)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH switched AS (
        UPDATE public.sessions s SET organization_id = p_organization_id
        WHERE s.token_hash = p_token_hash AND s.expires_at > now()
          AND EXISTS (
              SELECT 1 FROM public.memberships m WHERE m.user_id = s.user_id AND m.organization_id = s.organization_id
          )
          AND EXISTS (
              SELECT 1 FROM public.memberships m WHERE m.user_id = s.user_id AND m.organization_id = p_organization_id
          )
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM switched)
$$;

-- The organizations a user belongs to, for choosing one.
CREATE FUNCTION user_memberships(p_user_id uuid)
RETURNS TABLE (organization_id uuid, name text, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.organization_id, o.name, m.role
    FROM public.memberships m JOIN public.organizations o ON o.id = m.organization_id
    WHERE m.user_id = p_user_id
    ORDER BY o.name, o.id
$$;

-- The principal of an API token that is not revoked and whose user is still a member. "Last
-- used" is written at most every 5 minutes: no write on every request.
CREATE FUNCTION principal_by_token(p_token_hash bytea)
RETURNS TABLE (user_id uuid, organization_id uuid, role text, email text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    token record;
BEGIN
    SELECT t.id, t.user_id, t.organization_id, m.role, u.email, t.last_used_at INTO token
    FROM public.api_tokens t
    JOIN public.memberships m ON m.organization_id = t.organization_id AND m.user_id = t.user_id
    JOIN public.users u ON u.id = t.user_id
    WHERE t.token_hash = p_token_hash AND t.revoked_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF token.last_used_at IS NULL OR token.last_used_at < now() - interval '5 minutes' THEN
        UPDATE public.api_tokens SET last_used_at = now() WHERE id = token.id;
    END IF;
    RETURN QUERY SELECT token.user_id, token.organization_id, token.role, token.email;
END
$$;

-- Read-only (an open socket asks every few seconds): does the credential still let this user
-- act in this organization (not revoked, not ended or expired, still a member, not moved)?
CREATE FUNCTION credential_allows(p_token_hash bytea, p_is_session boolean, p_user_id uuid, p_organization_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_is_session THEN EXISTS (
        SELECT 1 FROM public.sessions s
        JOIN public.memberships m ON m.organization_id = s.organization_id AND m.user_id = s.user_id
        WHERE s.token_hash = p_token_hash AND s.expires_at > now()
          AND s.user_id = p_user_id AND s.organization_id = p_organization_id
    ) ELSE EXISTS (
        SELECT 1 FROM public.api_tokens t
        JOIN public.memberships m ON m.organization_id = t.organization_id AND m.user_id = t.user_id
        WHERE t.token_hash = p_token_hash AND t.revoked_at IS NULL
          AND t.user_id = p_user_id AND t.organization_id = p_organization_id
    ) END
$$;

-- A worker knows a job by the id in its queue message: which organization to act in.
CREATE FUNCTION batch_job_organization(p_job_id uuid)
RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT organization_id FROM public.batch_job_queue WHERE id = p_job_id $$;

-- What the sweep visits, one organization at a time: those with a job not finished.
CREATE FUNCTION organizations_with_active_jobs()
RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT organization_id FROM public.batch_job_queue WHERE status IN ('pending', 'processing')
$$;

-- A chunk's invoices are copied into these session-local tables (PostgreSQL refuses COPY FROM
-- into tables under row-level security), then moved into public.invoices and
-- public.invoice_lines by an INSERT the policies check. Made by the owner when a connection
-- of the application's pool opens, so that the application role can fill and empty them but
-- not alter them (no trigger of a caller's can run on another organization's rows); emptied at
-- every commit, so they never grow (autovacuum does not visit temporary tables).
CREATE FUNCTION create_staging_tables()
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE TEMPORARY TABLE invoices_staging ON COMMIT DELETE ROWS
        AS SELECT * FROM public.invoices WITH NO DATA;
    CREATE TEMPORARY TABLE invoice_lines_staging ON COMMIT DELETE ROWS
        AS SELECT * FROM public.invoice_lines WITH NO DATA;
    GRANT SELECT, INSERT, DELETE ON pg_temp.invoices_staging, pg_temp.invoice_lines_staging TO invoicing_app;
END
$$;

DO $$
DECLARE
    signature text;
BEGIN
    FOREACH signature IN ARRAY ARRAY[
        'login_candidate(text)',
        'principal_by_session(bytea)', 'end_session(bytea)',
        'switch_session_organization(bytea, uuid)', 'user_memberships(uuid)',
        'principal_by_token(bytea)', 'credential_allows(bytea, boolean, uuid, uuid)',
        'batch_job_organization(uuid)', 'organizations_with_active_jobs()', 'create_staging_tables()'
    ] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', signature);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO invoicing_app', signature);
    END LOOP;
END
$$;

-- Sealed organization scopes. A transaction names its organization in app.organization_id,
-- which any SQL on the connection could set; so it must also carry app.organization_ticket,
-- an HMAC-SHA256 of the organization id under a key that the processes derive from
-- SECRET_KEY and that only the owner can read here (stored by `invoicing migrate` as HMAC's
-- inner and outer padded keys). Without the right ticket, no organization is in scope and
-- every policy answers "no rows". With no key stored (migrate ran without SECRET_KEY), scopes
-- are not sealed and the processes warn.
CREATE TABLE organization_scope_keys (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    inner_key  bytea NOT NULL,
    outer_key  bytea NOT NULL
);
REVOKE ALL ON organization_scope_keys FROM PUBLIC, invoicing_app;
-- And no policy: should a grant ever slip through, no row shows to anyone but the owner.
ALTER TABLE organization_scope_keys ENABLE ROW LEVEL SECURITY;

CREATE OR REPLACE FUNCTION current_organization_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    named uuid := nullif(current_setting('app.organization_id', true), '')::uuid;
    sealed record;
BEGIN
    IF named IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT inner_key, outer_key INTO sealed FROM public.organization_scope_keys;
    IF NOT FOUND THEN
        RETURN named;
    END IF;
    -- Loud, not empty: a process whose SECRET_KEY is not the sealing one (a key changed under
    -- it) must fail, not find every organization empty; and no statement runs on a forged name.
    IF current_setting('app.organization_ticket', true) IS DISTINCT FROM
       encode(sha256(sealed.outer_key || sha256(sealed.inner_key || uuid_send(named))), 'hex') THEN
        RAISE EXCEPTION 'the organization in scope has no valid ticket'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The process''s SECRET_KEY must be the one `invoicing migrate` sealed scopes with.';
    END IF;
    RETURN named;
END
$$;

-- Whether the processes' key is the stored one: they send the ticket of the nil uuid.
CREATE FUNCTION organization_scope_check(p_ticket text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sealed record;
BEGIN
    SELECT inner_key, outer_key INTO sealed FROM public.organization_scope_keys;
    IF NOT FOUND THEN
        RETURN 'unsealed';
    END IF;
    RETURN CASE
        WHEN p_ticket = encode(sha256(sealed.outer_key || sha256(sealed.inner_key
                               || uuid_send('00000000-0000-0000-0000-000000000000'))), 'hex')
        THEN 'sealed' ELSE 'mismatch' END;
END
$$;
REVOKE ALL ON FUNCTION organization_scope_check(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION organization_scope_check(text) TO invoicing_app;

-- Every policy asks once per statement (an InitPlan), not once per row: the check reads the
-- key and hashes, and a function that runs as its owner is never inlined.
DO $$
DECLARE
    owned text;
BEGIN
    FOREACH owned IN ARRAY ARRAY[
        'memberships', 'api_tokens', 'sessions', 'customers', 'sales_orders', 'batch_job_queue',
        'invoice_number_counters', 'invoices', 'audit_log', 'sales_order_lines', 'batch_job_items',
        'invoice_lines'
    ] LOOP
        EXECUTE format('DROP POLICY organization_isolation ON %I', owned);
        EXECUTE format(
            'CREATE POLICY organization_isolation ON %I '
            'USING (organization_id = (SELECT current_organization_id())) '
            'WITH CHECK (organization_id = (SELECT current_organization_id()))',
            owned
        );
    END LOOP;
END
$$;
DROP POLICY organization_isolation ON organizations;
CREATE POLICY organization_isolation ON organizations USING (id = (SELECT current_organization_id()));

-- The application never writes accounts (users and memberships are the owner's: seeding and
-- tools), and touches sessions only by creating one at login (its token hashed with a key the
-- database never sees) and through the functions above: SQL on its connection can neither make
-- itself a member elsewhere, nor give a user a password, nor move or read a session.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON users, memberships FROM invoicing_app;
REVOKE SELECT, UPDATE, DELETE, TRUNCATE ON sessions FROM invoicing_app;

-- Functions made by later migrations are no one's to call until granted.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO invoicing_app;
