package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"medserve/internal/store"
)

// CreateAPIKey stores k; a duplicate id is an error. A zero CreatedAt is
// set to now. The role must be one of the four (the table checks it).
func (d *DB) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	// Truncated here, not rounded by the server, so the time read back is
	// the one SQLite would return for the same key.
	created := k.CreatedAt.UTC().Truncate(time.Microsecond)
	var revoked *time.Time
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC().Truncate(time.Microsecond)
		revoked = &t
	}
	// ON CONFLICT DO NOTHING turns a duplicate into "no row inserted", a
	// plain error rather than a constraint violation.
	tag, err := d.pool.Exec(ctx, `INSERT INTO api_keys
		(id, secret_hash, role, name, limits, created_at, revoked_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (id) DO NOTHING`,
		k.ID, k.SecretHash, k.Role, k.Name, k.Limits, created, revoked)
	if err != nil {
		return fmt.Errorf("postgres: create api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: create api key %q: id already exists", k.ID)
	}
	return nil
}

const apiKeyColumns = `id, secret_hash, role, name, limits, created_at, revoked_at`

func scanAPIKey(row pgx.Row) (store.APIKey, error) {
	var k store.APIKey
	var revoked *time.Time
	if err := row.Scan(&k.ID, &k.SecretHash, &k.Role, &k.Name, &k.Limits, &k.CreatedAt, &revoked); err != nil {
		return store.APIKey{}, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		t := revoked.UTC()
		k.RevokedAt = &t
	}
	return k, nil
}

// APIKey returns the key with the given id; ErrNotFound when there is none.
func (d *DB) APIKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanAPIKey(d.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.APIKey{}, fmt.Errorf("postgres: api key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("postgres: api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns every key, revoked ones included, oldest first.
func (d *DB) ListAPIKeys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.APIKey, error) {
		return scanAPIKey(row)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	if len(out) == 0 {
		return nil, nil // as sqlite: no keys is a nil slice
	}
	return out, nil
}

// RevokeAPIKey marks the key revoked at at; a key revoked already keeps
// its first revocation time. ErrNotFound when there is no such key.
func (d *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	tag, err := d.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`,
		at.UTC().Truncate(time.Microsecond), id)
	if err != nil {
		return fmt.Errorf("postgres: revoke api key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: revoke api key: %w", store.ErrNotFound)
	}
	return nil
}
