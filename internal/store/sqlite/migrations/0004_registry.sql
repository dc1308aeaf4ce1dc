-- 0004_registry: the model registry (SPEC §12). Names match the PostgreSQL
-- twin. The stages become candidate, shadow, canary, production, retired
-- (0001's 'registered' and 'archived' are renamed), a canary carries its
-- share of traffic, and a version records whether its validation report
-- passes the gate.
--
-- SQLite cannot add a CHECK constraint to an existing table, so models and
-- promotions are rebuilt (the rename-copy-drop procedure). Both are
-- rebuilt, the child with its parent, because foreign_keys is ON and
-- cannot be switched off inside the migration's transaction: renaming
-- models repoints the old promotions' reference at the old models, and the
-- two old tables are dropped together, so no reference is left dangling.
-- Ids are copied, so promotions keep pointing at their versions.

ALTER TABLE promotions RENAME TO promotions_old;
ALTER TABLE models RENAME TO models_old;

CREATE TABLE models (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL CHECK (name <> ''),
    version    TEXT NOT NULL CHECK (version <> ''),
    path       TEXT NOT NULL,             -- inside the shared model directory
    sha256     TEXT NOT NULL CHECK (sha256 <> ''),  -- the manifest's: a changed file is another version
    stage      TEXT NOT NULL DEFAULT 'candidate'
               CONSTRAINT models_stage_check
               CHECK (stage IN ('candidate', 'shadow', 'canary', 'production', 'retired')),
    metrics    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    created_at INTEGER NOT NULL,
    percent    INTEGER NOT NULL DEFAULT 0,  -- canary share of traffic; 0 in every other stage
    validated  INTEGER NOT NULL DEFAULT 0 CHECK (validated IN (0, 1)),
    CONSTRAINT models_percent_check CHECK (percent BETWEEN 0 AND 100 AND (percent = 0 OR stage = 'canary')),
    UNIQUE (name, version)
);

INSERT INTO models (id, name, version, path, sha256, stage, metrics, created_at)
SELECT id, name, version, path, sha256,
       CASE stage WHEN 'registered' THEN 'candidate' WHEN 'archived' THEN 'retired' ELSE stage END,
       metrics, created_at
FROM models_old;

CREATE TABLE promotions (
    id         INTEGER PRIMARY KEY,
    model_id   INTEGER NOT NULL REFERENCES models(id),
    from_stage TEXT NOT NULL
               CONSTRAINT promotions_from_stage_check
               CHECK (from_stage IN ('candidate', 'shadow', 'canary', 'production', 'retired')),
    to_stage   TEXT NOT NULL
               CONSTRAINT promotions_to_stage_check
               CHECK (to_stage IN ('candidate', 'shadow', 'canary', 'production', 'retired')),
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    time       INTEGER NOT NULL,
    percent    INTEGER NOT NULL DEFAULT 0,  -- the canary share set by this change
    CONSTRAINT promotions_percent_check CHECK (percent BETWEEN 0 AND 100 AND (percent = 0 OR to_stage = 'canary'))
);

INSERT INTO promotions (id, model_id, from_stage, to_stage, actor, reason, time)
SELECT id, model_id,
       CASE from_stage WHEN 'registered' THEN 'candidate' WHEN 'archived' THEN 'retired' ELSE from_stage END,
       CASE to_stage WHEN 'registered' THEN 'candidate' WHEN 'archived' THEN 'retired' ELSE to_stage END,
       actor, reason, time
FROM promotions_old;

DROP TABLE promotions_old;
DROP TABLE models_old;

CREATE INDEX idx_models_stage ON models(stage);
-- At most one version of a name in each live stage. SetStage keeps this
-- (it retires the version it displaces); the index makes any other writer
-- that tried to break it fail.
CREATE UNIQUE INDEX idx_models_one_per_stage ON models(name, stage)
    WHERE stage IN ('shadow', 'canary', 'production');
CREATE INDEX idx_promotions_model_time ON promotions(model_id, time);
