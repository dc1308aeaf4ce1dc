-- 0001_init: medserve's initial schema (SPEC §10).
-- Times are INTEGER microseconds since the Unix epoch, UTC: they sort and
-- index as numbers and round-trip exactly the microsecond times the audit
-- hash covers.

CREATE TABLE queries (
    request_id        TEXT PRIMARY KEY,
    patient_pseudonym TEXT NOT NULL,          -- keyed hash (HMAC), never a clear identifier
    time              INTEGER NOT NULL,
    domain            TEXT NOT NULL DEFAULT '',
    urgency           TEXT NOT NULL DEFAULT '',
    acuity            INTEGER NOT NULL,
    findings          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(findings)),
    differential      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(differential)),
    confidence        REAL NOT NULL DEFAULT 0,
    query_hash        TEXT NOT NULL DEFAULT '', -- keyed hash
    response_ms       REAL NOT NULL DEFAULT 0,
    model_version     TEXT NOT NULL DEFAULT '',
    cache_hit         INTEGER NOT NULL DEFAULT 0,
    text_sealed       TEXT NOT NULL DEFAULT '', -- AES-GCM sealed free text, opaque here
    -- The leading (best) diagnosis, derived so it can be indexed with the
    -- confidence (the seed's diagnosis+confidence index) without a second
    -- copy the application could let drift. VIRTUAL: computed on read, only
    -- the index stores it.
    top_diagnosis     TEXT GENERATED ALWAYS AS (json_extract(differential, '$[0].icd10')) VIRTUAL
);

-- The seed's symptoms+patient index. Findings are a JSON array, and SQLite
-- cannot index inside one (PostgreSQL would use a GIN index), so the
-- present (non-negated) finding codes are copied into this child table when
-- a query is saved and indexed there. The row is derived data: it goes with
-- its query.
CREATE TABLE query_findings (
    request_id        TEXT NOT NULL REFERENCES queries(request_id) ON DELETE CASCADE,
    patient_pseudonym TEXT NOT NULL,
    code              TEXT NOT NULL,
    PRIMARY KEY (request_id, code)
) WITHOUT ROWID;

CREATE INDEX idx_queries_patient_time       ON queries(patient_pseudonym, time DESC);
CREATE INDEX idx_queries_domain_patient     ON queries(domain, patient_pseudonym);
CREATE INDEX idx_queries_urgency_time       ON queries(urgency, time DESC);
CREATE INDEX idx_queries_symptoms_patient   ON query_findings(code, patient_pseudonym);
CREATE INDEX idx_queries_diagnosis_confidence ON queries(top_diagnosis, confidence DESC);
CREATE INDEX idx_queries_hash_response      ON queries(query_hash, response_ms);

-- One row per request: a second feedback replaces the first (upsert).
CREATE TABLE feedback (
    request_id              TEXT PRIMARY KEY REFERENCES queries(request_id) ON DELETE CASCADE,
    true_acuity             INTEGER NOT NULL DEFAULT 0,
    confirmed_diagnosis     TEXT NOT NULL DEFAULT '',
    disposition             TEXT NOT NULL DEFAULT '',
    treatment_effectiveness REAL,             -- NULL when unknown
    comment                 TEXT NOT NULL DEFAULT '', -- sealed by the caller: free text
    time                    INTEGER NOT NULL
);

-- The audit chain. seq is the rowid, so rows are stored and read in chain
-- order; Append only inserts seq = head+1 (checked in an IMMEDIATE tx).
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    time       INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    role       TEXT NOT NULL DEFAULT '',
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL DEFAULT '',
    patient    TEXT NOT NULL DEFAULT '',  -- pseudonym; '' when no PHI was touched
    request_id TEXT NOT NULL DEFAULT '',
    outcome    TEXT NOT NULL,             -- ok, denied, error: the compliance status
    reason     TEXT NOT NULL DEFAULT '',
    prev       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE
);

CREATE INDEX idx_audit_time ON audit_events(time);
-- PHI access: the seed flagged it with a boolean; here an event touched PHI
-- when it names a patient, so a partial index keeps only those rows.
CREATE INDEX idx_audit_phi_access_time ON audit_events(patient, time) WHERE patient <> '';
-- Compliance status: denied and error outcomes are what reviews look for.
CREATE INDEX idx_audit_compliance_status ON audit_events(outcome, time);

CREATE TABLE models (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    path       TEXT NOT NULL,             -- inside the shared model directory
    sha256     TEXT NOT NULL,
    stage      TEXT NOT NULL DEFAULT 'registered', -- registered, shadow, canary, production, archived
    metrics    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    created_at INTEGER NOT NULL,
    UNIQUE (name, version)
);
CREATE INDEX idx_models_stage ON models(stage);

CREATE TABLE promotions (
    id         INTEGER PRIMARY KEY,
    model_id   INTEGER NOT NULL REFERENCES models(id),
    from_stage TEXT NOT NULL,
    to_stage   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    time       INTEGER NOT NULL
);
CREATE INDEX idx_promotions_model_time ON promotions(model_id, time);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    rule        TEXT NOT NULL,
    severity    TEXT NOT NULL,            -- info, warning, critical
    state       TEXT NOT NULL,            -- pending, firing, resolved
    labels      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    summary     TEXT NOT NULL DEFAULT '',
    started_at  INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX idx_alerts_state_started ON alerts(state, started_at);

CREATE TABLE incidents (
    id        INTEGER PRIMARY KEY,
    alert_id  INTEGER REFERENCES alerts(id),
    title     TEXT NOT NULL,
    severity  TEXT NOT NULL,
    status    TEXT NOT NULL,              -- open, acknowledged, closed
    notes     TEXT NOT NULL DEFAULT '',
    opened_at INTEGER NOT NULL,
    closed_at INTEGER
);
CREATE INDEX idx_incidents_status_opened ON incidents(status, opened_at);

CREATE TABLE batch_jobs (
    id            TEXT PRIMARY KEY,
    status        TEXT NOT NULL,          -- queued, running, done, failed, cancelled
    submitted_by  TEXT NOT NULL,
    total         INTEGER NOT NULL DEFAULT 0,
    done          INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    input_sealed  TEXT NOT NULL DEFAULT '', -- queries hold free text: sealed
    result_sealed TEXT NOT NULL DEFAULT '',
    error         TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER
);
CREATE INDEX idx_batch_jobs_status_created ON batch_jobs(status, created_at);

-- The seed's two summary views. PostgreSQL keeps them as materialized views
-- refreshed on a schedule; SQLite has no materialized views, so here they
-- are plain views evaluated on read, which is cheap at embedded scale and
-- never stale. 'now' is evaluated per statement.

-- Patient summary over the last year (per pseudonym; the store merges
-- rotated pseudonyms itself, see PatientSummary).
CREATE VIEW patient_summary AS
SELECT patient_pseudonym,
       COUNT(*)                      AS queries,
       MAX(time)                     AS last_visit,
       MIN(acuity)                   AS most_urgent_acuity,
       AVG(confidence)               AS avg_confidence,
       GROUP_CONCAT(DISTINCT domain) AS domains
FROM queries
WHERE time >= CAST(strftime('%s', 'now', '-1 year') AS INTEGER) * 1000000
GROUP BY patient_pseudonym;

-- Clinical outcomes over six months, with each patient's previous treatment
-- effectiveness (LAG over that patient's earlier feedback).
CREATE VIEW clinical_outcomes AS
SELECT q.request_id,
       q.patient_pseudonym,
       q.time,
       q.domain,
       q.acuity,
       q.top_diagnosis,
       q.confidence,
       f.true_acuity,
       f.confirmed_diagnosis,
       f.disposition,
       f.treatment_effectiveness,
       LAG(f.treatment_effectiveness) OVER (
           PARTITION BY q.patient_pseudonym ORDER BY q.time, q.request_id
       ) AS previous_effectiveness
FROM queries q
JOIN feedback f ON f.request_id = q.request_id
WHERE q.time >= CAST(strftime('%s', 'now', '-6 months') AS INTEGER) * 1000000;
