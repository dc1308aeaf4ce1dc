package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"medserve/internal/store"
	"medserve/internal/store/postgres"
	"medserve/internal/store/sqlite"
)

// openStore opens the configured store: PostgreSQL when a database URL is
// given, else the embedded SQLite file in the data directory. Opening runs
// the pending migrations (under an advisory lock in PostgreSQL).
func openStore(ctx context.Context, databaseURL, dataDir string) (store.Store, string, error) {
	if databaseURL != "" {
		db, err := postgres.Open(ctx, databaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL: %w", err)
		}
		return db, "postgresql", nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dataDir, "medserve.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, "", fmt.Errorf("open SQLite %s: %w", path, err)
	}
	return db, "sqlite " + path, nil
}

func cmdMigrate(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("migrate", flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	db, where, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	// Open already migrated; running it again shows the command is
	// idempotent and catches a migration another replica was applying.
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	fmt.Fprintf(e.stdout, "migrated %s\n", where)
	return nil
}
