-- Invoice lists are ordered by (created_at, number): a chunk's invoices share created_at, and
-- the number orders them within it.
DROP INDEX invoices_org_created_idx;
CREATE INDEX invoices_org_created_number_idx ON invoices (organization_id, created_at DESC, number DESC);
