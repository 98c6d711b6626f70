-- Notifications (docs/ARCHITECTURE.md, "Notifications"): an email to the person who started a
-- batch and a signed webhook call to each of the organization's endpoints, when the batch ends.
--
-- A transactional outbox: the transaction that finishes a job also writes the event and one
-- delivery row per email and per endpoint (the trigger below), so a process killed at any
-- moment neither loses a notice (the job's end and its deliveries commit together) nor doubles
-- one (one event per job: job_id is unique). Workers send what is due, outside any transaction.

-- How a member wants to hear about the batches they start, in each organization (no row:
-- 'always').
CREATE TABLE notification_preferences (
    organization_id  uuid NOT NULL,
    user_id          uuid NOT NULL,
    email            text NOT NULL CHECK (email IN ('always', 'failures', 'never')),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id),
    FOREIGN KEY (organization_id, user_id) REFERENCES memberships (organization_id, user_id) ON DELETE CASCADE
);

-- An organization's webhook endpoints. The signing secret is not stored: it is an HMAC of
-- the endpoint's id and secret_salt under a key derived from SECRET_KEY, so reading this
-- table does not give it away (rotating the secret draws a new salt).
CREATE TABLE webhook_endpoints (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url              text NOT NULL,
    events           text[] NOT NULL,
    description      text NOT NULL DEFAULT '',
    enabled          boolean NOT NULL DEFAULT true,
    secret_salt      bytea NOT NULL,
    -- Since when every attempt failed (NULL: the last one succeeded); a day of that disables it.
    failing_since    timestamptz,
    -- Why it is disabled: 'admin' (someone disabled it) or 'failing' (a day of failures).
    disabled_reason  text CHECK (disabled_reason IN ('admin', 'failing')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, organization_id),
    CHECK (enabled = (disabled_reason IS NULL))
);
CREATE INDEX webhook_endpoints_organization_idx ON webhook_endpoints (organization_id, created_at, id);

-- What happened, once: a job finished (job_id set, at most one event per job) or an endpoint
-- was disabled for failing (its admins are told). `data` is the body's data, fixed the first
-- time a delivery renders it, so every endpoint and every redelivery sends the same.
CREATE TABLE notification_events (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    type             text NOT NULL,
    job_id           uuid UNIQUE,
    data             jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, organization_id),
    FOREIGN KEY (job_id, organization_id) REFERENCES batch_job_queue (id, organization_id) ON DELETE CASCADE
);

-- One row per email (to a member) and per webhook call (to an endpoint) of an event. A worker
-- claims a due row by moving next_attempt_at past its send (a lease: a worker that dies
-- leaves the row due again), sends with no transaction open, then records the outcome.
CREATE TABLE notification_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL,
    event_id         uuid NOT NULL,
    channel          text NOT NULL CHECK (channel IN ('email', 'webhook')),
    user_id          uuid REFERENCES users (id) ON DELETE CASCADE,
    webhook_id       uuid,
    -- skipped: an email with no SMTP server configured, or to someone no longer a member.
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- The claim an attempt in flight holds: its outcome is recorded only while it still holds
    -- it (a redelivery meanwhile, or a claim after its lease lapsed, replaces it).
    claim_token      uuid,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (event_id, organization_id) REFERENCES notification_events (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (webhook_id, organization_id) REFERENCES webhook_endpoints (id, organization_id) ON DELETE CASCADE,
    CHECK ((channel = 'email') = (user_id IS NOT NULL)),
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL)),
    UNIQUE (event_id, user_id),
    UNIQUE (event_id, webhook_id)
);
-- What is due, across organizations (the sweep's question) and in one (a worker's claim), and
-- an endpoint's deliveries, newest first (the API's list).
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX notification_deliveries_organization_due_idx
    ON notification_deliveries (organization_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_deliveries_webhook_idx ON notification_deliveries (webhook_id, created_at DESC, id DESC)
    WHERE webhook_id IS NOT NULL;

DO $$
DECLARE
    owned text;
BEGIN
    FOREACH owned IN ARRAY ARRAY[
        'notification_preferences', 'webhook_endpoints', 'notification_events', 'notification_deliveries'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', owned);
        EXECUTE format(
            'CREATE POLICY organization_isolation ON %I '
            'USING (organization_id = (SELECT current_organization_id())) '
            'WITH CHECK (organization_id = (SELECT current_organization_id()))',
            owned
        );
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE ON notification_preferences TO invoicing_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints TO invoicing_app;
GRANT SELECT, INSERT, UPDATE ON notification_events TO invoicing_app;
GRANT SELECT, INSERT, UPDATE ON notification_deliveries TO invoicing_app;

-- The outbox rows of a job that has just finished, written by the statement that finished it,
-- whichever it is (a chunk's commit, a cancel, the sweep giving up): no path can forget them.
-- It runs as the caller, in the job's organization scope, so row-level security holds.
-- The email goes to whoever started the job, as their preference says ('failures': the job
-- failed or some order did); a call goes to every enabled endpoint subscribed to the event.
CREATE FUNCTION notify_job_finished() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    event_type text := 'batch_job.' || NEW.status;
    event_id uuid;
    preference text;
BEGIN
    INSERT INTO public.notification_events (organization_id, type, job_id)
    VALUES (NEW.organization_id, event_type, NEW.id)
    ON CONFLICT (job_id) DO NOTHING
    RETURNING id INTO event_id;
    IF event_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT p.email INTO preference FROM public.notification_preferences AS p
    WHERE p.organization_id = NEW.organization_id AND p.user_id = NEW.created_by;
    preference := coalesce(preference, 'always');
    IF preference = 'always' OR (preference = 'failures' AND (NEW.status = 'failed' OR NEW.failed_items > 0)) THEN
        INSERT INTO public.notification_deliveries (organization_id, event_id, channel, user_id)
        VALUES (NEW.organization_id, event_id, 'email', NEW.created_by);
    END IF;
    -- FOR KEY SHARE: an endpoint being deleted meanwhile is waited for and then skipped (its
    -- delivery's foreign key would otherwise fail, and the job's end with it).
    INSERT INTO public.notification_deliveries (organization_id, event_id, channel, webhook_id)
    SELECT NEW.organization_id, event_id, 'webhook', endpoint.id
    FROM public.webhook_endpoints AS endpoint
    WHERE endpoint.organization_id = NEW.organization_id AND endpoint.enabled
      AND event_type = ANY (endpoint.events)
    FOR KEY SHARE OF endpoint;
    RETURN NULL;
END
$$;
CREATE TRIGGER batch_job_finished_notices
    AFTER UPDATE OF status ON batch_job_queue
    FOR EACH ROW
    WHEN (OLD.status IN ('pending', 'processing') AND NEW.status IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION notify_job_finished();

-- The organizations with deliveries due, oldest due first: where the sweep sends a worker.
CREATE FUNCTION organizations_with_due_notifications(wanted integer)
RETURNS TABLE (organization_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT due.organization_id
    FROM (
        SELECT delivery.organization_id, min(delivery.next_attempt_at) AS first_due
        FROM public.notification_deliveries AS delivery
        WHERE delivery.status = 'pending' AND delivery.next_attempt_at <= now()
        GROUP BY delivery.organization_id
    ) AS due
    ORDER BY due.first_due
    LIMIT least(greatest(wanted, 1), 1000)
$$;
