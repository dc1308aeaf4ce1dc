-- 0005_monitoring: live monitoring and alerts (SPEC §11). Names match the
-- PostgreSQL twin. Times are µs since the epoch, as every time here.

-- Drug-interaction alerts in the answer, and whether the clinician's
-- feedback confirmed a clinically relevant interaction (NULL: not
-- assessed): the interaction detection rate is computed from the two.
ALTER TABLE queries ADD COLUMN interaction_alerts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feedback ADD COLUMN interaction_confirmed INTEGER
    CHECK (interaction_confirmed IN (0, 1));

-- Outcomes select feedback by the time it was given.
CREATE INDEX idx_feedback_time ON feedback(time);

-- Alerts as the alert engine keeps them. 0001 created the table but no
-- release wrote to it; rows there, if any, get a fingerprint of their own
-- so the unique index below can be built, and are otherwise kept.
ALTER TABLE alerts ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN value       REAL NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN threshold   REAL NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN fired_at    INTEGER;                 -- NULL until firing
ALTER TABLE alerts ADD COLUMN updated_at  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN incident_id INTEGER REFERENCES incidents(id); -- NULL: no incident
UPDATE alerts SET fingerprint = 'legacy:' || id,
                  updated_at = COALESCE(resolved_at, started_at),
                  fired_at = CASE WHEN state = 'firing' THEN started_at END;

-- At most one unresolved alert per fingerprint: re-evaluating a rule on
-- any replica can never open a second one (the insert fails instead).
CREATE UNIQUE INDEX idx_alerts_one_unresolved ON alerts(fingerprint) WHERE state <> 'resolved';
-- Alerts lists newest first without a state filter.
CREATE INDEX idx_alerts_started ON alerts(started_at);

-- Incidents carry the rule that opened them and a JSON report.
ALTER TABLE incidents ADD COLUMN rule   TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN report TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(report));
CREATE INDEX idx_incidents_opened ON incidents(opened_at);

-- Cluster-wide operating modes (oversight, compliance, caching).
CREATE TABLE modes (
    name       TEXT PRIMARY KEY CHECK (name <> ''),
    enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    reason     TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);

-- Each replica's figures per time bucket; a replica rewrites its current
-- bucket (the value is replaced), and totals sum over replicas and buckets.
-- A rowid table (not WITHOUT ROWID) so retention can delete in chunks by
-- rowid, as it does for queries.
CREATE TABLE monitor_counts (
    replica TEXT NOT NULL,
    bucket  INTEGER NOT NULL,              -- the bucket's start
    version TEXT NOT NULL DEFAULT '',      -- '' for figures not per model version
    domain  TEXT NOT NULL DEFAULT '',      -- '' for figures not per domain
    name    TEXT NOT NULL CHECK (name <> ''),
    value   REAL NOT NULL,
    PRIMARY KEY (replica, bucket, version, domain, name)
);
CREATE INDEX idx_monitor_counts_bucket ON monitor_counts(bucket);
