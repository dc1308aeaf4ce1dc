-- 0003_api_keys: API keys (SPEC §8). Names match the PostgreSQL twin.
-- Only a hash of each key's secret is kept; the secret is shown once, when
-- the key is created. Times are µs since the epoch, as every time here.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY CHECK (id <> ''),
    secret_hash TEXT NOT NULL CHECK (secret_hash <> ''),  -- hex SHA-256 of a 256-bit random secret
    role        TEXT NOT NULL CHECK (role IN ('clinician', 'service', 'auditor', 'admin')),
    name        TEXT NOT NULL DEFAULT '',
    limits      TEXT NOT NULL DEFAULT '',                 -- per-key rate-limit overrides; '' = defaults
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER                                   -- NULL while the key is valid
);
