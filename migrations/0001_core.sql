-- Core schema: accounts, customers, sales orders, invoices and batch jobs.
-- Forward-only; applied once by `invoicing migrate` under an advisory lock.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email          text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320),
    name           text NOT NULL DEFAULT '',
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (email)
);

CREATE TABLE memberships (
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Only a SHA-256 of the token is stored: a leaked table cannot be replayed.
CREATE TABLE api_tokens (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL,
    user_id          uuid NOT NULL,
    name             text NOT NULL DEFAULT '',
    token_hash       bytea NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    FOREIGN KEY (organization_id, user_id) REFERENCES memberships (organization_id, user_id) ON DELETE CASCADE
);

CREATE TABLE customers (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    billing_name         text,
    billing_address      text,
    billing_email        text,
    payment_terms_days   integer NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 3650),
    currency             char(3) NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_org_idx ON customers (organization_id);

CREATE TABLE sales_orders (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    number           text NOT NULL,
    customer_id      uuid NOT NULL REFERENCES customers (id),
    status           text NOT NULL CHECK (status IN ('draft', 'confirmed', 'cancelled')),
    currency         char(3) NOT NULL,
    order_date       date NOT NULL DEFAULT current_date,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, number)
);
CREATE INDEX sales_orders_org_status_number_idx ON sales_orders (organization_id, status, number, id);

-- Lines are stored as entered; validation happens when invoicing, so a bad line becomes a
-- clear `invalid_line` failure instead of an order that cannot be saved.
CREATE TABLE sales_order_lines (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sales_order_id    uuid NOT NULL REFERENCES sales_orders (id) ON DELETE CASCADE,
    position          integer NOT NULL,
    description       text NOT NULL DEFAULT '',
    quantity          numeric(18, 4) NOT NULL,
    unit_price        numeric(18, 4) NOT NULL,
    discount_percent  numeric(7, 4) NOT NULL DEFAULT 0,
    tax_rate_percent  numeric(7, 4) NOT NULL DEFAULT 0,
    UNIQUE (sales_order_id, position)
);

CREATE TABLE batch_job_queue (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    job_type            text NOT NULL DEFAULT 'bulk_invoice_generation',
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    total_items         integer NOT NULL CHECK (total_items > 0),
    processed_items     integer NOT NULL DEFAULT 0,
    successful_items    integer NOT NULL DEFAULT 0,
    failed_items        integer NOT NULL DEFAULT 0,
    cancelled_items     integer NOT NULL DEFAULT 0,
    -- The request's context (user, source); order ids live in batch_job_items, one row each.
    payload             jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Job-level errors and the first failed items (the full list is in batch_job_items).
    errors              jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_by          uuid NOT NULL REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    cancel_requested    boolean NOT NULL DEFAULT false,
    cancel_requested_at timestamptz,
    cancelled_by        uuid REFERENCES users (id),
    -- Lease: the worker that owns the job renews it with every chunk; an expired lease on a
    -- processing job means its worker died and the sweep may hand the job to another.
    lease_owner         text,
    lease_expires_at    timestamptz,
    attempts            integer NOT NULL DEFAULT 0,
    -- Bumped on each re-enqueue so the arq job id changes and arq's dedupe cannot swallow it.
    enqueue_generation  integer NOT NULL DEFAULT 0,
    -- Grows by one with every committed change a watcher should see (progress events' seq).
    progress_seq        bigint NOT NULL DEFAULT 0,
    CHECK (processed_items = successful_items + failed_items),
    CHECK (processed_items + cancelled_items <= total_items)
);
CREATE INDEX batch_job_queue_org_created_idx ON batch_job_queue (organization_id, created_at DESC, id DESC);
CREATE INDEX batch_job_queue_active_idx ON batch_job_queue (status, lease_expires_at)
    WHERE status IN ('pending', 'processing');

CREATE TABLE batch_job_items (
    job_id         uuid NOT NULL REFERENCES batch_job_queue (id) ON DELETE CASCADE,
    position       integer NOT NULL,
    order_id       uuid NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    invoice_id     uuid,
    error_code     text,
    error_message  text,
    processed_at   timestamptz,
    PRIMARY KEY (job_id, position),
    UNIQUE (job_id, order_id)
);
-- The worker reads the next chunk of pending items in order; the API lists failed ones.
CREATE INDEX batch_job_items_pending_idx ON batch_job_items (job_id, position) WHERE status = 'pending';
CREATE INDEX batch_job_items_status_idx ON batch_job_items (job_id, status, position);

-- One row per organization and year; the chunk transaction takes its row lock to allocate a
-- block of numbers, so numbers are gapless (a rollback returns them) and never shared.
CREATE TABLE invoice_number_counters (
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    year             integer NOT NULL,
    last_number      integer NOT NULL,
    PRIMARY KEY (organization_id, year)
);

CREATE TABLE invoices (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    number           text NOT NULL,
    year             integer NOT NULL,
    sequence         integer NOT NULL CHECK (sequence > 0),
    -- Exactly once: the database refuses a second invoice for the same order.
    sales_order_id   uuid NOT NULL UNIQUE REFERENCES sales_orders (id),
    customer_id      uuid NOT NULL REFERENCES customers (id),
    billing_name     text NOT NULL,
    billing_address  text NOT NULL,
    billing_email    text NOT NULL,
    issue_date       date NOT NULL,
    due_date         date NOT NULL,
    currency         char(3) NOT NULL,
    subtotal         numeric(18, 4) NOT NULL,
    tax_total        numeric(18, 4) NOT NULL,
    total            numeric(18, 4) NOT NULL,
    -- [{"rate": "20.00", "base": "100.00", "tax": "20.00"}]: tax is computed once per rate.
    tax_breakdown    jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_by       uuid NOT NULL REFERENCES users (id),
    batch_job_id     uuid REFERENCES batch_job_queue (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, number),
    UNIQUE (organization_id, year, sequence)
);
CREATE INDEX invoices_org_created_idx ON invoices (organization_id, created_at DESC, id DESC);
CREATE INDEX invoices_job_idx ON invoices (batch_job_id, number) WHERE batch_job_id IS NOT NULL;

CREATE TABLE invoice_lines (
    invoice_id        uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    position          integer NOT NULL,
    description       text NOT NULL,
    quantity          numeric(18, 4) NOT NULL,
    unit_price        numeric(18, 4) NOT NULL,
    discount_percent  numeric(7, 4) NOT NULL,
    tax_rate_percent  numeric(7, 4) NOT NULL,
    net_amount        numeric(18, 4) NOT NULL,
    PRIMARY KEY (invoice_id, position)
);

-- Who created, cancelled or resumed which job, and when.
CREATE TABLE audit_log (
    id               bigserial PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          uuid REFERENCES users (id),
    action           text NOT NULL,
    job_id           uuid,
    detail           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org_created_idx ON audit_log (organization_id, created_at DESC);
