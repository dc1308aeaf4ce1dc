package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"medserve/internal/store"
)

// migrationFS holds the versioned schema, compiled into the binary so a
// deployed medserve can always bring its database up to date.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the pg_advisory_xact_lock key every migration
// transaction takes first ("medserve" in ASCII). Replicas starting together
// all run Migrate; the lock makes them take turns, so each migration (and
// the creation of schema_migrations itself, which is not safe to race even
// with IF NOT EXISTS) runs exactly once.
const migrateLockKey int64 = 0x6d65647365727665

// migrations returns the embedded migrations ordered by version.
func migrations() ([]store.Migration, error) {
	ms, err := store.LoadMigrations(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return ms, nil
}

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, in version order, each in its own transaction together
// with its record; running it again is a no-op.
//
// Every transaction first takes the advisory lock migrateLockKey, so
// concurrent Migrate calls (several replicas starting at once) serialise and
// the later ones find the version already recorded. DDL is transactional in
// PostgreSQL, so a failing migration leaves no partial schema behind.
func (d *DB) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := d.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) apply(ctx context.Context, m store.Migration) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("postgres: migration %s: lock: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
			m.Version).Scan(&done); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
		if done {
			return nil
		}
		// The simple protocol runs a multi-statement script in one round
		// trip; the extended protocol accepts a single statement only.
		if _, err := tx.Conn().PgConn().Exec(ctx, m.SQL).ReadAll(); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
			m.Version, m.Name); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
		return nil
	})
}
