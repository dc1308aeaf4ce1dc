package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"medserve/internal/audit"
	"medserve/internal/store"
)

// deleteChunk bounds the rows one retention statement deletes. SQLite has
// one writer at a time, so a single DELETE of a year of queries would hold
// the write lock for seconds and make concurrent writers exceed their busy
// timeout; chunks let them in between.
const deleteChunk = 5000

// Write stores a recorder batch in one IMMEDIATE transaction and returns its
// events as chained.
//
// BEGIN IMMEDIATE takes the write lock before the head is read, as Append
// does, so Write and Append from any connection or process serialise and
// each sees the other's head. Inside, the inserts reuse prepared statements:
// a batch costs one fsync, not one per row.
func (d *DB) Write(ctx context.Context, b store.Batch) ([]audit.Event, error) {
	for i, q := range b.Queries {
		if err := store.CheckQuery(q); err != nil {
			return nil, fmt.Errorf("sqlite: write: query %d: %w", i, err)
		}
	}
	events, err := store.PrepareEvents(b.Events, time.Now())
	if err != nil {
		return nil, fmt.Errorf("sqlite: write: %w", err)
	}
	if len(b.Queries) == 0 && len(events) == 0 && b.Source == "" {
		return events, nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: write: %w", err)
	}
	defer tx.Rollback()

	if len(b.Queries) > 0 {
		w, err := newQueryWriter(ctx, tx, true)
		if err != nil {
			return nil, fmt.Errorf("sqlite: write: %w", err)
		}
		defer w.close()
		for _, q := range b.Queries {
			if err := w.write(ctx, q); err != nil {
				return nil, fmt.Errorf("sqlite: write: %w", err)
			}
		}
	}
	if len(events) > 0 {
		seq, hash, err := head(ctx, tx)
		if err != nil {
			return nil, err
		}
		store.LinkEvents(events, seq, hash)
		ins, err := tx.PrepareContext(ctx, insertEventSQL)
		if err != nil {
			return nil, fmt.Errorf("sqlite: write: %w", err)
		}
		defer ins.Close()
		for _, e := range events {
			if _, err := ins.ExecContext(ctx, eventArgs(e)...); err != nil {
				return nil, fmt.Errorf("sqlite: write: audit event %d: %w", e.Seq, err)
			}
		}
	}
	if b.Source != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO spool_progress (source, through) VALUES (?, ?)
			ON CONFLICT (source) DO UPDATE SET through = excluded.through`, b.Source, b.Through); err != nil {
			return nil, fmt.Errorf("sqlite: write: progress: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: write: %w", err)
	}
	return events, nil
}

// Progress is the Through of the last batch written for source; 0 when none.
func (d *DB) Progress(ctx context.Context, source string) (int64, error) {
	var through int64
	err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(through), 0) FROM spool_progress WHERE source = ?`, source).Scan(&through)
	if err != nil {
		return 0, fmt.Errorf("sqlite: progress %q: %w", source, err)
	}
	return through, nil
}

// AuditEvents returns the events matching every non-zero field of f, in seq
// order, at most store.AuditLimit(f.Limit).
func (d *DB) AuditEvents(ctx context.Context, f store.AuditFilter) ([]audit.Event, error) {
	where := []string{"seq > ?"}
	args := []any{f.AfterSeq}
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.RequestID != "" {
		add("request_id = ?", f.RequestID)
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if len(f.Patients) > 0 {
		// patient <> '' repeats the PHI index's predicate word for word,
		// which is what lets SQLite use that partial index; an event naming
		// no patient names none of the pseudonyms anyway.
		in, a := inList(f.Patients)
		add("patient IN ("+in+") AND patient <> ''", a...)
	}
	if !f.From.IsZero() {
		add("time >= ?", micros(store.CeilMicro(f.From)))
	}
	if !f.To.IsZero() {
		add("time < ?", micros(store.CeilMicro(f.To)))
	}
	events, err := d.events(ctx, strings.Join(where, " AND "), args, store.AuditLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit events: %w", err)
	}
	return events, nil
}

// DeleteQueriesBefore deletes the queries older than t, with their findings
// and feedback (ON DELETE CASCADE), in chunks of deleteChunk, and returns
// how many queries went. Audit events are never touched.
//
// Each chunk is its own transaction, so an error or cancellation part way
// leaves the older part deleted and the rest for the next pass.
func (d *DB) DeleteQueriesBefore(ctx context.Context, t time.Time) (int64, error) {
	return d.deleteQueriesBefore(ctx, t, deleteChunk)
}

func (d *DB) deleteQueriesBefore(ctx context.Context, t time.Time, chunk int64) (int64, error) {
	return d.deleteBefore(ctx, "queries", "time", t, chunk)
}

// deleteBefore deletes the rows of table whose column is before t, chunk
// rows per statement so that other writers get the lock in between, and
// returns how many it deleted. table and column are constants of ours.
func (d *DB) deleteBefore(ctx context.Context, table, column string, t time.Time, chunk int64) (int64, error) {
	cutoff := micros(store.CeilMicro(t))
	q := `DELETE FROM ` + table + ` WHERE rowid IN (SELECT rowid FROM ` + table + ` WHERE ` + column + ` < ? LIMIT ?)`
	var total int64
	for {
		res, err := d.db.ExecContext(ctx, q, cutoff, chunk)
		if err != nil {
			return total, fmt.Errorf("sqlite: delete %s: %w", table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sqlite: delete %s: %w", table, err)
		}
		total += n
		if n < chunk {
			return total, nil
		}
	}
}

// CacheGet returns the value under key unless it has expired by now (an expired entry is a miss).
func (d *DB) CacheGet(ctx context.Context, key string, now time.Time) ([]byte, bool, error) {
	var val []byte
	err := d.db.QueryRowContext(ctx, `SELECT value FROM cache_entries WHERE key = ? AND expires_at > ?`,
		key, micros(now)).Scan(&val)
	switch {
	case err == nil:
		return val, true, nil
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("sqlite: cache get: %w", err)
	}
}

// CachePut stores val under key until expires, replacing an earlier value.
func (d *DB) CachePut(ctx context.Context, key, class string, val []byte, expires time.Time) error {
	if val == nil {
		val = []byte{} // the column is NOT NULL; an empty value is still a value
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO cache_entries (key, class, value, expires_at) VALUES (?,?,?,?)
		ON CONFLICT (key) DO UPDATE SET class = excluded.class, value = excluded.value, expires_at = excluded.expires_at`,
		key, class, val, micros(expires))
	if err != nil {
		return fmt.Errorf("sqlite: cache put: %w", err)
	}
	return nil
}

// CacheSweep deletes the entries expired by now and returns how many.
func (d *DB) CacheSweep(ctx context.Context, now time.Time) (int64, error) {
	res, err := d.db.ExecContext(ctx, `DELETE FROM cache_entries WHERE expires_at <= ?`, micros(now))
	if err != nil {
		return 0, fmt.Errorf("sqlite: cache sweep: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: cache sweep: %w", err)
	}
	return n, nil
}

// RefreshViews does nothing: SQLite's summary views are plain views, never stale.
func (d *DB) RefreshViews(ctx context.Context) error { return nil }

// Singleton runs fn unless a job called name is already running on this DB,
// and reports whether it ran.
//
// One process owns a SQLite file, so exclusion within this handle is what
// the contract asks; a busy name returns at once (try-lock), because a
// scheduled job that is still running needs no second run queued behind it.
func (d *DB) Singleton(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	d.jobsMu.Lock()
	if d.jobs[name] {
		d.jobsMu.Unlock()
		return false, nil
	}
	if d.jobs == nil {
		d.jobs = make(map[string]bool)
	}
	d.jobs[name] = true
	d.jobsMu.Unlock()
	defer func() {
		d.jobsMu.Lock()
		delete(d.jobs, name)
		d.jobsMu.Unlock()
	}()
	return true, fn(ctx)
}
