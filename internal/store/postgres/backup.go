package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"medserve/internal/store"
)

// Backup writes the whole database to path with pg_dump's custom format
// while it keeps serving; an existing path is never overwritten
// (store.ErrExists). Load it with Restore.
//
// pg_dump reads everything from one repeatable-read snapshot, so the copy
// is consistent, audit chain included, without stopping writers. It writes
// under a temporary name beside path, published only once complete and
// fsynced, so a crash leaves no half backup under the final name.
func (d *DB) Backup(ctx context.Context, path string) error {
	dst, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("postgres: backup: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("postgres: backup: %s: %w", dst, store.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("postgres: backup: %w", err)
	}
	tmp, err := store.TempPath(dst, ".*.tmp")
	if err != nil {
		return fmt.Errorf("postgres: backup: %w", err)
	}
	conn := toolConnection(d.url)
	if err := runTool(ctx, "pg_dump", conn, "--format=custom", "--file="+tmp, "--dbname="+conn.dsn); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("postgres: backup: %w", err)
	}
	if err := store.Publish(tmp, dst); err != nil {
		return fmt.Errorf("postgres: backup: %w", err)
	}
	return nil
}

// Restore loads a Backup file into the database at url with pg_restore.
//
// --clean --if-exists replaces the objects the backup holds, so it serves
// an empty database as well as one to roll back; --single-transaction makes
// the restore all or nothing; --no-owner lets another role own the result.
// Stop the replicas first: the restore waits for their locks.
func Restore(ctx context.Context, url, backupPath string) error {
	if _, err := os.Stat(backupPath); err != nil {
		return fmt.Errorf("postgres: restore: %w", err)
	}
	conn := toolConnection(url)
	if err := runTool(ctx, "pg_restore", conn, "--clean", "--if-exists", "--no-owner",
		"--single-transaction", "--dbname="+conn.dsn, backupPath); err != nil {
		return fmt.Errorf("postgres: restore %s: %w", backupPath, err)
	}
	return nil
}

// toolConn is how a libpq tool reaches the database.
type toolConn struct {
	dsn     string   // for --dbname, without the password when it could be taken out
	env     []string // PGPASSWORD, when it was
	secrets []string // never to appear in an error message
}

// toolConnection prepares url for pg_dump and pg_restore. In a postgres://
// URL the password moves to PGPASSWORD, because command-line arguments are
// visible to every local user (ps); the pool_* and other pgx-only
// parameters, which libpq rejects, are dropped. A key=value DSN is passed
// as given (prefer a URL or a password file there).
func toolConnection(raw string) toolConn {
	c := toolConn{dsn: raw, secrets: []string{raw}}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return c
	}
	if pw, ok := u.User.Password(); ok {
		c.env = append(c.env, "PGPASSWORD="+pw)
		c.secrets = append(c.secrets, pw)
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") || pgxOnly(k) {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	c.dsn = u.String()
	return c
}

// pgxOnly reports a connection parameter pgx understands and libpq does not.
func pgxOnly(param string) bool {
	switch param {
	case "statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode", "min_read_buffer_size":
		return true
	}
	return false
}

// maxToolOutput bounds how much of a tool's output an error carries.
const maxToolOutput = 4096

// runTool runs the PostgreSQL client program name with args and returns an
// error carrying its output, with the connection's secrets blanked out.
func runTool(ctx context.Context, name string, conn toolConn, args ...string) error {
	bin, err := findTool(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), conn.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > maxToolOutput {
			msg = "…" + msg[len(msg)-maxToolOutput:]
		}
		for _, s := range conn.secrets {
			if s != "" {
				msg = strings.ReplaceAll(msg, s, "[redacted]")
			}
		}
		if msg == "" {
			return fmt.Errorf("%s: %w", name, err)
		}
		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return nil
}

// findTool returns the path of a PostgreSQL client program: from PATH, else
// the newest version under /usr/lib/postgresql/*/bin (Debian and Ubuntu
// install the binaries there and put only some on PATH).
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	found, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql", "*", "bin", name))
	if len(found) == 0 {
		return "", fmt.Errorf("%s not found on PATH nor under /usr/lib/postgresql/*/bin: install the PostgreSQL client", name)
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	return found[0], nil
}
