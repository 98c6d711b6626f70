-- Audit entries are shown and paged by an id that reveals nothing across organizations: the
-- bigserial stays inside (it orders the log), the API shows a random UUID.
ALTER TABLE audit_log ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX audit_log_public_id_idx ON audit_log (public_id);
