-- 0002_recorder_cache_retention: what the recorder, the L3 cache, audit
-- search and retention need. Names match the PostgreSQL twin.

-- The clear patient identifier, sealed (AES-GCM) by the caller; '' when not kept.
ALTER TABLE queries ADD COLUMN patient_sealed TEXT NOT NULL DEFAULT '';

-- Retention deletes by age (DeleteQueriesBefore); without this index every
-- pass would scan the whole table.
CREATE INDEX idx_queries_time ON queries(time);

-- How far into each replica's spool the store holds: written in the same
-- transaction as the batch, so a crash never loses or doubles a batch.
CREATE TABLE spool_progress (
    source  TEXT PRIMARY KEY,
    through INTEGER NOT NULL
);

-- The L3 cache: opaque values sealed by the caller, under keyed-hash keys.
CREATE TABLE cache_entries (
    key        TEXT PRIMARY KEY,
    class      TEXT NOT NULL,
    value      BLOB NOT NULL,
    expires_at INTEGER NOT NULL            -- µs since the epoch, as every time here
);
CREATE INDEX idx_cache_entries_expires ON cache_entries(expires_at);

-- Audit search filters (AuditEvents); (patient, time) and (outcome, time) exist.
CREATE INDEX idx_audit_actor_time  ON audit_events(actor, time);
CREATE INDEX idx_audit_action_time ON audit_events(action, time);
CREATE INDEX idx_audit_request     ON audit_events(request_id);
