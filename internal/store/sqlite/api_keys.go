package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"medserve/internal/store"
)

// CreateAPIKey stores k; a duplicate id is an error. A zero CreatedAt is
// set to now. The role must be one of the four (the table checks it).
func (d *DB) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	var revoked *int64
	if k.RevokedAt != nil {
		v := micros(*k.RevokedAt)
		revoked = &v
	}
	// ON CONFLICT DO NOTHING turns a duplicate into "no row inserted", a
	// plain error rather than a driver-specific constraint message.
	res, err := d.db.ExecContext(ctx, `INSERT INTO api_keys
		(id, secret_hash, role, name, limits, created_at, revoked_at)
		VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO NOTHING`,
		k.ID, k.SecretHash, k.Role, k.Name, k.Limits, micros(k.CreatedAt), revoked)
	if err != nil {
		return fmt.Errorf("sqlite: create api key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: create api key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: create api key %q: id already exists", k.ID)
	}
	return nil
}

const apiKeyColumns = `id, secret_hash, role, name, limits, created_at, revoked_at`

func scanAPIKey(scan func(dest ...any) error) (store.APIKey, error) {
	var k store.APIKey
	var created int64
	var revoked sql.NullInt64
	if err := scan(&k.ID, &k.SecretHash, &k.Role, &k.Name, &k.Limits, &created, &revoked); err != nil {
		return store.APIKey{}, err
	}
	k.CreatedAt = fromMicros(created)
	if revoked.Valid {
		t := fromMicros(revoked.Int64)
		k.RevokedAt = &t
	}
	return k, nil
}

// APIKey returns the key with the given id; ErrNotFound when there is none.
func (d *DB) APIKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanAPIKey(d.db.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return store.APIKey{}, fmt.Errorf("sqlite: api key: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("sqlite: api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns every key, revoked ones included, oldest first.
func (d *DB) ListAPIKeys(ctx context.Context) ([]store.APIKey, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list api keys: %w", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list api keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks the key revoked at at; a key revoked already keeps
// its first revocation time. ErrNotFound when there is no such key.
func (d *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := d.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`,
		micros(at), id)
	if err != nil {
		return fmt.Errorf("sqlite: revoke api key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: revoke api key: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: revoke api key: %w", store.ErrNotFound)
	}
	return nil
}
