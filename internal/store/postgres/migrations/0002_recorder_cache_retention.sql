-- 0002_recorder_cache_retention: what the recorder, the L3 cache, audit
-- search and retention need. Names match the SQLite twin.

-- The clear patient identifier, sealed (AES-GCM) by the caller; '' when not
-- kept. A constant default makes this a catalogue-only change (no rewrite).
ALTER TABLE queries ADD COLUMN patient_sealed text NOT NULL DEFAULT '';

-- Retention deletes by age (DeleteQueriesBefore).
CREATE INDEX idx_queries_time ON queries(time);

-- How far into each replica's spool the store holds: written in the same
-- transaction as the batch, so a crash never loses or doubles a batch.
CREATE TABLE spool_progress (
    source  text PRIMARY KEY,
    through bigint NOT NULL
);

-- The L3 cache: opaque values sealed by the caller, under keyed-hash keys.
-- UNLOGGED: a cache can be rebuilt, so it skips the WAL (much cheaper
-- writes); the price is that a crash empties it and standbys do not see it.
CREATE UNLOGGED TABLE cache_entries (
    key        text PRIMARY KEY,
    class      text NOT NULL,
    value      bytea NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX idx_cache_entries_expires ON cache_entries(expires_at);

-- Audit search filters (AuditEvents); (patient, time) and (outcome, time) exist.
CREATE INDEX idx_audit_actor_time  ON audit_events(actor, time);
CREATE INDEX idx_audit_action_time ON audit_events(action, time);
CREATE INDEX idx_audit_request     ON audit_events(request_id);
