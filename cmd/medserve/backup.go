package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"medserve/internal/audit"
	"medserve/internal/store/postgres"
	"medserve/internal/store/sqlite"
)

func storeFlags(fset *flag.FlagSet, e env) (dataDir, dbURL *string) {
	dataDir = fset.String("data-dir", envOr(e.getenv, "MEDSERVE_DATA_DIR", "./medserve-data"), "state directory, as given to serve (env MEDSERVE_DATA_DIR)")
	dbURL = fset.String("database-url", e.getenv("MEDSERVE_DATABASE_URL"), "PostgreSQL URL, as given to serve; empty = the embedded SQLite file (env MEDSERVE_DATABASE_URL)")
	return dataDir, dbURL
}

// cmdBackup writes a consistent copy of the store while the server runs:
// SQLite's VACUUM INTO, or pg_dump's custom format for PostgreSQL. The PHI
// and audit keys are not in it; back them up separately (they are what
// makes the copy readable and verifiable).
func cmdBackup(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("backup", flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	out := fset.String("out", "", "backup file to write (must not exist)")
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintln(e.stderr, "backup: --out is required")
		return errUsage
	}
	db, where, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	seq, head, err := db.Head(ctx)
	if err != nil {
		return err
	}
	if err := db.Backup(ctx, *out); err != nil {
		return fmt.Errorf("backup %s: %w", where, err)
	}
	// A backup holds what the store holds (pseudonyms, sealed PHI): owner only.
	if err := os.Chmod(*out, 0o600); err != nil {
		return fmt.Errorf("backup %s: %w", *out, err)
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s (audit chain at event %d, head %s)\n", where, *out, seq, head)
	return nil
}

// cmdRestore loads a backup into the store (the server must be stopped),
// then verifies the restored audit chain: a backup that does not verify is
// reported, and the command fails.
func cmdRestore(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("restore", flag.ContinueOnError)
	dataDir, dbURL := storeFlags(fset, e)
	in := fset.String("in", "", "backup file to restore")
	force := fset.Bool("force", false, "SQLite: replace an existing database file")
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if *in == "" {
		fmt.Fprintln(e.stderr, "restore: --in is required")
		return errUsage
	}
	if *dbURL != "" {
		if err := postgres.Restore(ctx, *dbURL, *in); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	} else if err := sqlite.Restore(ctx, *in, filepath.Join(*dataDir, "medserve.db"), *force); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db, where, err := openStore(ctx, *dbURL, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := audit.Verify(ctx, db, nil, nil)
	if err != nil {
		return err
	}
	if !rep.OK {
		printAuditReport(e, where, rep, nil)
		return errors.Join(errChainBroken, errors.New("the restored audit chain does not verify"))
	}
	fmt.Fprintf(e.stdout, "restored %s into %s; audit chain verifies (%d events, head %s)\n", *in, where, rep.Events, rep.Head)
	fmt.Fprintln(e.stdout, "checkpoints signed after this backup was taken now report the events it lacks as truncated: run `medserve audit verify` to see how far back the restore went")
	return nil
}
