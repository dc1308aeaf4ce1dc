package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"medserve/internal/store"
)

// Backup writes a consistent copy of the database to path while it keeps
// serving; an existing path is never overwritten (store.ErrExists).
//
// VACUUM INTO copies from one read snapshot, so in WAL mode writers go on
// during the copy and the copy holds exactly the commits before it began,
// compacted. It is built under a temporary name beside path and published
// only when complete and fsynced, so a crash leaves no half backup under
// the final name.
func (d *DB) Backup(ctx context.Context, path string) error {
	dst, err := filepath.Abs(path) // absolute: never read as a "file:" URI
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("sqlite: backup: %s: %w", dst, store.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	tmp, err := store.TempPath(dst, ".*.tmp") // VACUUM INTO accepts an empty file
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if _, err := d.db.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sqlite: backup to %s: %w", dst, err)
	}
	if err := store.Publish(tmp, dst); err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	return nil
}

// Restore installs the backup at backupPath as the database at dbPath.
//
// The backup is copied beside dbPath first, and the copy (what will be
// served) must pass PRAGMA integrity_check and carry a schema this binary
// knows, so a truncated or foreign file is refused before anything is
// replaced. An existing dbPath is refused unless overwrite is set; then its
// -wal and -shm files are removed before the copy is renamed over it, as a
// stale WAL would otherwise be replayed onto the restored file and corrupt
// it. No process may have dbPath open while it runs: stop medserve first.
func Restore(ctx context.Context, backupPath, dbPath string, overwrite bool) error {
	if dbPath == "" || strings.ContainsAny(dbPath, "?#") {
		return fmt.Errorf("sqlite: restore: unusable database path %q", dbPath)
	}
	dst, err := filepath.Abs(dbPath)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil && !overwrite {
		return fmt.Errorf("sqlite: restore: %s: %w (overwrite not requested)", dst, store.ErrExists)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	tmp, err := store.TempPath(dst, ".restore-*")
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	installed := false
	defer func() {
		if !installed {
			removeDB(tmp)
		}
	}()
	if err := copyFile(backupPath, tmp); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := checkBackup(ctx, tmp); err != nil {
		return fmt.Errorf("sqlite: restore: %s: %w", backupPath, err)
	}
	removeSidecars(tmp)
	if err := store.SyncFile(tmp); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if !overwrite {
		// Publish links without replacing, so a dbPath created meanwhile is kept.
		if err := store.Publish(tmp, dst); err != nil {
			return fmt.Errorf("sqlite: restore: %w", err)
		}
		installed = true
		return nil
	}
	for _, side := range []string{dst + "-wal", dst + "-shm"} {
		if err := os.Remove(side); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sqlite: restore: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	installed = true
	if err := store.SyncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	return nil
}

// checkBackup opens the SQLite file at path and checks that it is intact
// and a medserve database no newer than this binary.
func checkBackup(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("not a readable SQLite database: %w", err)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return err
		}
		problems = append(problems, line)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) != 1 || problems[0] != "ok" {
		return fmt.Errorf("integrity check failed: %s", strings.Join(problems, "; "))
	}
	var version sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("not a medserve database (schema_migrations): %w", err)
	}
	if !version.Valid {
		return errors.New("not a medserve database: no migration recorded")
	}
	ms, err := migrations()
	if err != nil {
		return err
	}
	if latest := ms[len(ms)-1].Version; int(version.Int64) > latest {
		return fmt.Errorf("schema version %d is newer than this binary's %d", version.Int64, latest)
	}
	return nil
}

// copyFile copies src over the existing file dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// removeSidecars removes the -wal and -shm files SQLite may leave beside path.
func removeSidecars(path string) {
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
}

func removeDB(path string) {
	os.Remove(path)
	removeSidecars(path)
}
