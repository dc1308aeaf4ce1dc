-- 0003_api_keys: API keys (SPEC §8). Names match the SQLite twin. Shared
-- by all replicas (SPEC §12), so a key created or revoked on one replica
-- holds on every other.
-- Only a hash of each key's secret is kept; the secret is shown once, when
-- the key is created.
CREATE TABLE api_keys (
    id          text PRIMARY KEY CHECK (id <> ''),
    secret_hash text NOT NULL CHECK (secret_hash <> ''),  -- hex SHA-256 of a 256-bit random secret
    role        text NOT NULL CHECK (role IN ('clinician', 'service', 'auditor', 'admin')),
    name        text NOT NULL DEFAULT '',
    limits      text NOT NULL DEFAULT '',                 -- per-key rate-limit overrides; '' = defaults
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz                               -- NULL while the key is valid
);
