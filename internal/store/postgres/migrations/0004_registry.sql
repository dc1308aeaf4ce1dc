-- 0004_registry: the model registry (SPEC §12). Names match the SQLite
-- twin. Shared by all replicas, so every replica serves the same
-- production, canary and shadow versions. The stages become candidate,
-- shadow, canary, production, retired (0001's 'registered' and 'archived'
-- are renamed), a canary carries its share of traffic, and a version
-- records whether its validation report passes the gate.

UPDATE models SET stage = CASE stage WHEN 'registered' THEN 'candidate' WHEN 'archived' THEN 'retired' ELSE stage END;
UPDATE promotions SET
    from_stage = CASE from_stage WHEN 'registered' THEN 'candidate' WHEN 'archived' THEN 'retired' ELSE from_stage END,
    to_stage   = CASE to_stage WHEN 'registered' THEN 'candidate' WHEN 'archived' THEN 'retired' ELSE to_stage END;

-- Constant defaults: the new columns are catalogue-only changes (no rewrite).
ALTER TABLE models
    ALTER COLUMN stage SET DEFAULT 'candidate',
    ADD COLUMN percent integer NOT NULL DEFAULT 0,    -- canary share of traffic; 0 in every other stage
    ADD COLUMN validated boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT models_name_check CHECK (name <> ''),
    ADD CONSTRAINT models_version_check CHECK (version <> ''),
    ADD CONSTRAINT models_sha256_check CHECK (sha256 <> ''),
    ADD CONSTRAINT models_stage_check
        CHECK (stage IN ('candidate', 'shadow', 'canary', 'production', 'retired')),
    ADD CONSTRAINT models_percent_check
        CHECK (percent BETWEEN 0 AND 100 AND (percent = 0 OR stage = 'canary'));

ALTER TABLE promotions
    ADD COLUMN percent integer NOT NULL DEFAULT 0,    -- the canary share set by this change
    ADD CONSTRAINT promotions_from_stage_check
        CHECK (from_stage IN ('candidate', 'shadow', 'canary', 'production', 'retired')),
    ADD CONSTRAINT promotions_to_stage_check
        CHECK (to_stage IN ('candidate', 'shadow', 'canary', 'production', 'retired')),
    ADD CONSTRAINT promotions_percent_check
        CHECK (percent BETWEEN 0 AND 100 AND (percent = 0 OR to_stage = 'canary'));

-- At most one version of a name in each live stage. SetStage keeps this
-- (it retires the version it displaces, under a per-name lock); the index
-- makes any other writer that tried to break it fail.
CREATE UNIQUE INDEX idx_models_one_per_stage ON models(name, stage)
    WHERE stage IN ('shadow', 'canary', 'production');
