-- 0005_monitoring: live monitoring and alerts (SPEC §11). Names match the
-- SQLite twin. Shared by all replicas: alerts, incidents and modes are the
-- cluster's, and monitor_counts holds every replica's figures.

-- Drug-interaction alerts in the answer, and whether the clinician's
-- feedback confirmed a clinically relevant interaction (NULL: not
-- assessed): the interaction detection rate is computed from the two.
-- Constant defaults: catalogue-only changes (no rewrite). The
-- clinical_outcomes materialized view names its columns, so it is unaffected.
ALTER TABLE queries ADD COLUMN interaction_alerts integer NOT NULL DEFAULT 0;
ALTER TABLE feedback ADD COLUMN interaction_confirmed boolean;

-- Outcomes select feedback by the time it was given.
CREATE INDEX idx_feedback_time ON feedback(time);

-- Alerts as the alert engine keeps them. 0001 created the table but no
-- release wrote to it; rows there, if any, get a fingerprint of their own
-- so the unique index below can be built, and are otherwise kept.
ALTER TABLE alerts
    ADD COLUMN fingerprint text NOT NULL DEFAULT '',
    ADD COLUMN value       double precision NOT NULL DEFAULT 0,
    ADD COLUMN threshold   double precision NOT NULL DEFAULT 0,
    ADD COLUMN fired_at    timestamptz,                          -- NULL until firing
    ADD COLUMN updated_at  timestamptz,
    ADD COLUMN incident_id bigint REFERENCES incidents(id);      -- NULL: no incident
UPDATE alerts SET fingerprint = 'legacy:' || id,
                  updated_at = COALESCE(resolved_at, started_at),
                  fired_at = CASE WHEN state = 'firing' THEN started_at END;
ALTER TABLE alerts ALTER COLUMN updated_at SET NOT NULL;

-- At most one unresolved alert per fingerprint: re-evaluating a rule on
-- any replica can never open a second one (the insert fails instead, and
-- concurrent inserts wait for each other).
CREATE UNIQUE INDEX idx_alerts_one_unresolved ON alerts(fingerprint) WHERE state <> 'resolved';
-- Alerts lists newest first without a state filter.
CREATE INDEX idx_alerts_started ON alerts(started_at);

-- Incidents carry the rule that opened them and a JSON report.
ALTER TABLE incidents
    ADD COLUMN rule   text NOT NULL DEFAULT '',
    ADD COLUMN report jsonb NOT NULL DEFAULT '{}';
CREATE INDEX idx_incidents_opened ON incidents(opened_at);

-- Cluster-wide operating modes (oversight, compliance, caching).
CREATE TABLE modes (
    name       text PRIMARY KEY CHECK (name <> ''),
    enabled    boolean NOT NULL,
    reason     text NOT NULL DEFAULT '',
    actor      text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL
);

-- Each replica's figures per time bucket; a replica rewrites its current
-- bucket (the value is replaced), and totals sum over replicas and buckets.
CREATE TABLE monitor_counts (
    replica text NOT NULL,
    bucket  timestamptz NOT NULL,          -- the bucket's start
    version text NOT NULL DEFAULT '',      -- '' for figures not per model version
    domain  text NOT NULL DEFAULT '',      -- '' for figures not per domain
    name    text NOT NULL CHECK (name <> ''),
    value   double precision NOT NULL,
    PRIMARY KEY (replica, bucket, version, domain, name)
);
CREATE INDEX idx_monitor_counts_bucket ON monitor_counts(bucket);
