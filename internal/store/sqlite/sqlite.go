// Package sqlite is the embedded store: one SQLite file (modernc.org/sqlite,
// pure Go, no cgo) in WAL mode, the default for a single replica (SPEC §10).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"medserve/internal/audit"
	"medserve/internal/store"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// busyTimeoutMS is how long a connection waits for another's write lock
// before failing with SQLITE_BUSY. Writes are short (one row or a few), so
// 5 s only runs out when something is badly stuck.
const busyTimeoutMS = 5000

// rangePage bounds how many audit events Range holds in memory at once.
const rangePage = 1000

// DB is a store.Store backed by one SQLite file.
type DB struct {
	db *sql.DB

	jobsMu sync.Mutex
	jobs   map[string]bool // Singleton names running now
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the SQLite file at path and applies the
// pending migrations. Use <data-dir>/medserve.db.
//
// Connection settings, applied to every pooled connection by the driver
// because SQLite pragmas are per connection:
//   - journal_mode=WAL: readers never block the writer nor the reverse.
//   - synchronous=FULL: every commit is fsynced. With NORMAL, WAL mode stays
//     consistent but a power loss can drop the last commits; for the audit
//     chain that would lose events whose head may already be in a signed
//     checkpoint outside the database, which Verify would then report as
//     truncation. The chain shares the file (and the setting) with the rest,
//     and one fsync per write is affordable at embedded rates.
//   - busy_timeout: wait for the write lock instead of failing at once.
//   - foreign_keys=ON: SQLite leaves them off by default.
//   - cache_size and mmap_size: the pure-Go driver turns every page read
//     that misses SQLite's small default cache into a pread system call;
//     measured under `medserve bench`, those reads were most of the audit
//     flusher's time. A 32 MiB cache per connection and reads through a
//     memory map (up to 256 MiB of the file) keep hot index pages in
//     memory.
//   - _txlock=immediate: every transaction takes the write lock at BEGIN.
//     A deferred transaction that reads and then writes can fail with
//     SQLITE_BUSY at the upgrade, which busy_timeout cannot cure; the audit
//     Append reads the head and inserts, so it needs BEGIN IMMEDIATE. Reads
//     here run outside transactions and are unaffected.
func Open(ctx context.Context, path string) (*DB, error) {
	d, err := openFile(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := d.Migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openFile opens the file with the settings Open describes, without migrating.
func openFile(ctx context.Context, path string) (*DB, error) {
	// The driver splits its DSN at '?': such a path would silently open
	// another file.
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: unusable database path %q", path)
	}
	// Create the file ourselves, owner-only: it holds pseudonyms and sealed
	// PHI, and SQLite gives its -wal and -shm files the database's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "cache_size(-32768)")
	q.Add("_pragma", "mmap_size(268435456)")
	q.Set("_txlock", "immediate")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	d := &DB{db: sqldb}
	// Ping first so a bad path fails here with a clear error rather than in Migrate.
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func orEmptyArray(s string) string {
	if strings.TrimSpace(s) == "" {
		return "[]"
	}
	return s
}

// inList returns "?,?,…" for n bind parameters and their arguments.
func inList(vals []string) (string, []any) {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(vals)), ","), args
}

// SaveQuery stores q and indexes its present finding codes; a duplicate request id is an error.
func (d *DB) SaveQuery(ctx context.Context, q store.QueryRecord) error {
	if err := store.CheckQuery(q); err != nil {
		return fmt.Errorf("sqlite: save query: %w", err)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: save query: %w", err)
	}
	defer tx.Rollback()
	w, err := newQueryWriter(ctx, tx, false)
	if err != nil {
		return fmt.Errorf("sqlite: save query: %w", err)
	}
	defer w.close()
	if err := w.write(ctx, q); err != nil {
		return fmt.Errorf("sqlite: save query: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: save query: %w", err)
	}
	return nil
}

// queryWriter inserts query records and their finding codes with statements
// prepared once per transaction: SaveQuery writes one, Write hundreds.
type queryWriter struct {
	ins, findings *sql.Stmt
}

const insertQuerySQL = `INSERT INTO queries
	(request_id, patient_pseudonym, time, domain, urgency, acuity, findings, differential,
	 confidence, query_hash, response_ms, model_version, cache_hit, text_sealed, patient_sealed,
	 interaction_alerts)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

// insertFindingsSQL extracts the finding codes in SQL so the store needs no
// knowledge of the Go finding type, only of its "code" and "negated" keys.
// CASE guards json_extract against non-object elements, which it would
// reject as malformed.
const insertFindingsSQL = `INSERT INTO query_findings (request_id, patient_pseudonym, code)
	SELECT DISTINCT ?, ?, code FROM (
		SELECT CASE WHEN type = 'object' THEN json_extract(value, '$.code') END AS code,
		       CASE WHEN type = 'object' THEN json_extract(value, '$.negated') END AS negated
		FROM json_each(?))
	WHERE code IS NOT NULL AND code <> '' AND COALESCE(negated, 0) = 0`

// newQueryWriter prepares the inserts in tx. With skipDuplicates a request
// id already stored is skipped (a replayed recorder batch) instead of failing.
func newQueryWriter(ctx context.Context, tx *sql.Tx, skipDuplicates bool) (*queryWriter, error) {
	q := insertQuerySQL
	if skipDuplicates {
		q += ` ON CONFLICT (request_id) DO NOTHING`
	}
	ins, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	findings, err := tx.PrepareContext(ctx, insertFindingsSQL)
	if err != nil {
		ins.Close()
		return nil, err
	}
	return &queryWriter{ins: ins, findings: findings}, nil
}

func (w *queryWriter) close() {
	w.ins.Close()
	w.findings.Close()
}

// write inserts q and its present finding codes. A query skipped as a
// duplicate has its findings stored already, so they are skipped too.
func (w *queryWriter) write(ctx context.Context, q store.QueryRecord) error {
	findings := orEmptyArray(q.FindingsJSON)
	res, err := w.ins.ExecContext(ctx,
		q.RequestID, q.PatientPseudonym, micros(q.Time), q.Domain, q.Urgency, q.Acuity,
		findings, orEmptyArray(q.DifferentialJSON), q.Confidence, q.QueryHash,
		q.ResponseMS, q.ModelVersion, q.CacheHit, q.TextSealed, q.PatientSealed, q.InteractionAlerts)
	if err != nil {
		return fmt.Errorf("query %s: %w", q.RequestID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	if _, err := w.findings.ExecContext(ctx, q.RequestID, q.PatientPseudonym, findings); err != nil {
		return fmt.Errorf("query %s findings: %w", q.RequestID, err)
	}
	return nil
}

// PatientHistory returns the queries of any of the pseudonyms, newest first, at most limit (all when limit ≤ 0).
func (d *DB) PatientHistory(ctx context.Context, pseudonyms []string, limit int) ([]store.QueryRecord, error) {
	if len(pseudonyms) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	in, args := inList(pseudonyms)
	args = append(args, limit)
	rows, err := d.db.QueryContext(ctx, `SELECT request_id, patient_pseudonym, time, domain, urgency,
		acuity, findings, differential, confidence, query_hash, response_ms, model_version,
		cache_hit, text_sealed, patient_sealed, interaction_alerts
		FROM queries WHERE patient_pseudonym IN (`+in+`)
		ORDER BY time DESC, request_id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: patient history: %w", err)
	}
	defer rows.Close()
	var out []store.QueryRecord
	for rows.Next() {
		var q store.QueryRecord
		var t int64
		if err := rows.Scan(&q.RequestID, &q.PatientPseudonym, &t, &q.Domain, &q.Urgency,
			&q.Acuity, &q.FindingsJSON, &q.DifferentialJSON, &q.Confidence, &q.QueryHash,
			&q.ResponseMS, &q.ModelVersion, &q.CacheHit, &q.TextSealed, &q.PatientSealed,
			&q.InteractionAlerts); err != nil {
			return nil, fmt.Errorf("sqlite: patient history: %w", err)
		}
		q.Time = fromMicros(t)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: patient history: %w", err)
	}
	return out, nil
}

// SaveFeedback stores f, replacing an earlier feedback for the same request; ErrNotFound when the request is unknown.
func (d *DB) SaveFeedback(ctx context.Context, f store.Feedback) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: save feedback: %w", err)
	}
	defer tx.Rollback()
	// Checked explicitly (the foreign key would also refuse) to return a
	// typed error instead of a driver-specific constraint message.
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM queries WHERE request_id = ?`, f.RequestID).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: feedback for request %q: %w", f.RequestID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: save feedback: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO feedback
		(request_id, true_acuity, confirmed_diagnosis, disposition, treatment_effectiveness,
		 interaction_confirmed, comment, time)
		VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT (request_id) DO UPDATE SET
			true_acuity = excluded.true_acuity,
			confirmed_diagnosis = excluded.confirmed_diagnosis,
			disposition = excluded.disposition,
			treatment_effectiveness = excluded.treatment_effectiveness,
			interaction_confirmed = excluded.interaction_confirmed,
			comment = excluded.comment,
			time = excluded.time`,
		f.RequestID, f.TrueAcuity, f.ConfirmedDiagnosis, f.Disposition,
		f.TreatmentEffectiveness, f.InteractionConfirmed, f.Comment, micros(f.Time))
	if err != nil {
		return fmt.Errorf("sqlite: save feedback: %w", err)
	}
	return tx.Commit()
}

// PatientSummary returns the last year's summary over all the pseudonyms together.
//
// It applies the patient_summary view's definition to the union of the
// pseudonyms rather than reading the view, whose rows are per pseudonym and
// whose domain lists could not be merged without re-splitting strings.
func (d *DB) PatientSummary(ctx context.Context, pseudonyms []string) (store.Summary, error) {
	var s store.Summary
	if len(pseudonyms) == 0 {
		return s, nil
	}
	in, args := inList(pseudonyms)
	since := micros(time.Now().AddDate(-1, 0, 0))
	args = append(args, since)
	rows, err := d.db.QueryContext(ctx, `SELECT domain, COUNT(*), MAX(time), MIN(acuity)
		FROM queries WHERE patient_pseudonym IN (`+in+`) AND time >= ?
		GROUP BY domain`, args...)
	if err != nil {
		return s, fmt.Errorf("sqlite: patient summary: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var domain string
		var n, last int64
		var acuity int
		if err := rows.Scan(&domain, &n, &last, &acuity); err != nil {
			return s, fmt.Errorf("sqlite: patient summary: %w", err)
		}
		s.Queries += int(n)
		if t := fromMicros(last); t.After(s.LastVisit) {
			s.LastVisit = t
		}
		if s.MostUrgentAcuity == 0 || acuity < s.MostUrgentAcuity {
			s.MostUrgentAcuity = acuity
		}
		if domain != "" {
			s.Domains = append(s.Domains, domain)
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("sqlite: patient summary: %w", err)
	}
	sort.Strings(s.Domains)
	return s, nil
}

// Head returns the last audit event's seq and hash, or 0 and audit.Genesis when the chain is empty.
func (d *DB) Head(ctx context.Context) (int64, string, error) {
	return head(ctx, d.db)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func head(ctx context.Context, q queryRower) (int64, string, error) {
	var seq int64
	var hash string
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, audit.Genesis, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("sqlite: audit head: %w", err)
	}
	return seq, hash, nil
}

// Append stores e if it extends the head (e.Seq == head+1, e.Prev == head hash), else returns audit.ErrConflict.
//
// The head is read and the row inserted in one IMMEDIATE transaction, so no
// other connection or process can append in between.
func (d *DB) Append(ctx context.Context, e audit.Event) error {
	// The column keeps microseconds; a finer time would be stored differently
	// from what was hashed and Verify would later call the event altered.
	if !e.Time.Equal(e.Time.Truncate(time.Microsecond)) {
		return errors.New("sqlite: audit event time finer than a microsecond")
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	defer tx.Rollback()
	seq, hash, err := head(ctx, tx)
	if err != nil {
		return err
	}
	if e.Seq != seq+1 || e.Prev != hash {
		return audit.ErrConflict
	}
	if _, err := tx.ExecContext(ctx, insertEventSQL, eventArgs(e)...); err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: audit append: %w", err)
	}
	return nil
}

const insertEventSQL = `INSERT INTO audit_events
	(seq, time, actor, role, action, resource, patient, request_id, outcome, reason, prev, hash)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`

func eventArgs(e audit.Event) []any {
	return []any{e.Seq, micros(e.Time), e.Actor, e.Role, e.Action, e.Resource, e.Patient,
		e.RequestID, e.Outcome, e.Reason, e.Prev, e.Hash}
}

// Range calls fn for each event with from ≤ seq ≤ to, in seq order.
//
// Events are read in pages and each page's rows are closed before fn runs,
// so a walk over a long chain neither holds it all in memory nor keeps a
// read snapshot open (which would stop WAL checkpoints), and fn may call
// back into the store.
func (d *DB) Range(ctx context.Context, from, to int64, fn func(audit.Event) error) error {
	return store.RangePages(ctx, from, to, rangePage, d.rangePage, fn)
}

func (d *DB) rangePage(ctx context.Context, from, to int64) ([]audit.Event, error) {
	page, err := d.events(ctx, `seq >= ? AND seq <= ?`, []any{from, to}, rangePage)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit range: %w", err)
	}
	return page, nil
}

// events returns at most limit events matching where (with args), in seq order.
func (d *DB) events(ctx context.Context, where string, args []any, limit int) ([]audit.Event, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, time, actor, role, action, resource, patient,
		request_id, outcome, reason, prev, hash
		FROM audit_events WHERE `+where+` ORDER BY seq LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := make([]audit.Event, 0, min(limit, 64))
	for rows.Next() {
		var e audit.Event
		var t int64
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Role, &e.Action, &e.Resource, &e.Patient,
			&e.RequestID, &e.Outcome, &e.Reason, &e.Prev, &e.Hash); err != nil {
			return nil, err
		}
		e.Time = fromMicros(t)
		page = append(page, e)
	}
	return page, rows.Err()
}
