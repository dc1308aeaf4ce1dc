package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"medserve/internal/audit"
	"medserve/internal/store"
)

// Write stores a recorder batch in one transaction and returns its events as chained.
//
// The head is locked as Append locks it (the audit_head row, FOR UPDATE),
// so Write and Append on every replica serialise. The whole batch costs
// three round trips however large it is: BEGIN, the queries (one unnest
// statement), the lock and the head read go in one pipelined batch; the
// events (one unnest statement) and the progress in a second; then COMMIT.
// The queries are inserted before the lock is taken, so other appenders
// wait only for the events and the commit.
func (d *DB) Write(ctx context.Context, b store.Batch) ([]audit.Event, error) {
	for i, q := range b.Queries {
		if err := store.CheckQuery(q); err != nil {
			return nil, fmt.Errorf("postgres: write: query %d: %w", i, err)
		}
	}
	events, err := store.PrepareEvents(b.Events, time.Now())
	if err != nil {
		return nil, fmt.Errorf("postgres: write: %w", err)
	}
	if len(b.Queries) == 0 && len(events) == 0 && b.Source == "" {
		return events, nil
	}

	var first, second pgx.Batch
	first.BeginTx(pgx.TxOptions{})
	if len(b.Queries) > 0 {
		first.Queue(insertQueriesSQL(true), queryArrays(b.Queries)...)
	}
	var seq int64
	var hash string
	if len(events) > 0 {
		first.Queue(lockHeadSQL).QueryRow(scanLock)
		first.Queue(headSQL).QueryRow(func(row pgx.Row) (err error) {
			seq, hash, err = scanHead(row)
			return err
		})
	}
	br := d.pool.SendBatch(ctx, &first)
	tx := br.Tx()
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit a no-op; returns the connection
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("postgres: write: %w", err)
	}

	if len(events) > 0 {
		store.LinkEvents(events, seq, hash)
		second.Queue(insertEventsSQL, eventArrays(events)...)
	}
	if b.Source != "" {
		second.Queue(`INSERT INTO spool_progress (source, through) VALUES ($1, $2)
			ON CONFLICT (source) DO UPDATE SET through = excluded.through`, b.Source, b.Through)
	}
	if second.Len() > 0 {
		if err := tx.SendBatch(ctx, &second).Close(); err != nil {
			return nil, fmt.Errorf("postgres: write: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: write: commit: %w", err)
	}
	return events, nil
}

// insertEventsSQL inserts audit events given as parallel arrays (see eventArrays) in one statement.
const insertEventsSQL = `INSERT INTO audit_events
	(seq, time, actor, role, action, resource, patient, request_id, outcome, reason, prev, hash)
	SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
		$6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])`

// eventArrays returns the arguments of insertEventsSQL: one array per column.
func eventArrays(es []audit.Event) []any {
	n := len(es)
	text := func() []string { return make([]string, n) }
	seqs, times := make([]int64, n), make([]time.Time, n)
	actors, roles, actions, resources, patients := text(), text(), text(), text(), text()
	requests, outcomes, reasons, prevs, hashes := text(), text(), text(), text(), text()
	for i, e := range es {
		seqs[i], times[i], actors[i], roles[i], actions[i] = e.Seq, e.Time, e.Actor, e.Role, e.Action
		resources[i], patients[i], requests[i], outcomes[i] = e.Resource, e.Patient, e.RequestID, e.Outcome
		reasons[i], prevs[i], hashes[i] = e.Reason, e.Prev, e.Hash
	}
	return []any{seqs, times, actors, roles, actions, resources, patients, requests, outcomes,
		reasons, prevs, hashes}
}

// Progress is the Through of the last batch written for source; 0 when none.
func (d *DB) Progress(ctx context.Context, source string) (int64, error) {
	var through int64
	err := d.pool.QueryRow(ctx, `SELECT COALESCE(MAX(through), 0) FROM spool_progress WHERE source = $1`, source).Scan(&through)
	if err != nil {
		return 0, fmt.Errorf("postgres: progress %q: %w", source, err)
	}
	return through, nil
}

// AuditEvents returns the events matching every non-zero field of f, in seq
// order, at most store.AuditLimit(f.Limit).
func (d *DB) AuditEvents(ctx context.Context, f store.AuditFilter) ([]audit.Event, error) {
	where := []string{"seq > $1"}
	args := []any{f.AfterSeq}
	add := func(cond string, v any) { // cond has one %d for v's placeholder number
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.RequestID != "" {
		add("request_id = $%d", f.RequestID)
	}
	if f.Outcome != "" {
		add("outcome = $%d", f.Outcome)
	}
	if len(f.Patients) > 0 {
		// patient <> '' repeats the PHI index's predicate so the planner
		// can use that partial index; an event naming no patient names none
		// of the pseudonyms anyway.
		add("patient = ANY($%d) AND patient <> ''", f.Patients)
	}
	if !f.From.IsZero() {
		add("time >= $%d", store.CeilMicro(f.From))
	}
	if !f.To.IsZero() {
		add("time < $%d", store.CeilMicro(f.To))
	}
	events, err := d.events(ctx, strings.Join(where, " AND "), args, store.AuditLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: audit events: %w", err)
	}
	return events, nil
}

// DeleteQueriesBefore deletes the queries older than t, with their findings
// and feedback (ON DELETE CASCADE), and returns how many queries went.
// Audit events are never touched.
//
// One statement: PostgreSQL locks only the rows it deletes, so unlike
// SQLite's single writer a large delete does not hold up other writers.
func (d *DB) DeleteQueriesBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := d.pool.Exec(ctx, `DELETE FROM queries WHERE time < $1`, store.CeilMicro(t))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete queries: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CacheGet returns the value under key unless it has expired by now (an expired entry is a miss).
func (d *DB) CacheGet(ctx context.Context, key string, now time.Time) ([]byte, bool, error) {
	var val []byte
	err := d.pool.QueryRow(ctx, `SELECT value FROM cache_entries WHERE key = $1 AND expires_at > $2`, key, now).Scan(&val)
	switch {
	case err == nil:
		return val, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("postgres: cache get: %w", err)
	}
}

// CachePut stores val under key until expires, replacing an earlier value.
func (d *DB) CachePut(ctx context.Context, key, class string, val []byte, expires time.Time) error {
	if val == nil {
		val = []byte{} // the column is NOT NULL; an empty value is still a value
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO cache_entries (key, class, value, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET class = excluded.class, value = excluded.value, expires_at = excluded.expires_at`,
		key, class, val, expires)
	if err != nil {
		return fmt.Errorf("postgres: cache put: %w", err)
	}
	return nil
}

// CacheSweep deletes the entries expired by now and returns how many.
func (d *DB) CacheSweep(ctx context.Context, now time.Time) (int64, error) {
	tag, err := d.pool.Exec(ctx, `DELETE FROM cache_entries WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("postgres: cache sweep: %w", err)
	}
	return tag.RowsAffected(), nil
}

// singletonKey maps a job name to its advisory lock key: the first 8 bytes
// of a SHA-256 under a medserve-specific prefix, so names never need a
// registry and are unlikely to collide with another application's keys.
func singletonKey(name string) int64 {
	sum := sha256.Sum256([]byte("medserve singleton " + name))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// Singleton runs fn if no session (on any replica) holds the job's advisory
// lock, and reports whether it ran; a held lock is not an error.
//
// The lock is a session lock on one dedicated pool connection, held for
// fn's whole duration (a transaction-scoped lock would keep a transaction
// open while fn runs its own). If unlocking fails the connection is closed
// rather than returned to the pool, because a pooled connection still
// holding the lock would block the job everywhere until it was recycled;
// closing the session always releases it.
func (d *DB) Singleton(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	key := singletonKey(name)
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: singleton %s: %w", name, err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		return false, fmt.Errorf("postgres: singleton %s: %w", name, err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		// Unlock even when ctx is done: fn may have ended because of it.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var released bool
		if err := conn.QueryRow(uctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&released); err != nil || !released {
			conn.Conn().Close(uctx) // Release then destroys it
		}
	}()
	return true, fn(ctx)
}
