// Package postgres is the shared store for several replicas: PostgreSQL via
// a pgx connection pool (SPEC §10). It behaves like the sqlite store; the
// schema is the same with PostgreSQL types, and the two summary views are
// materialized (see RefreshViews).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"medserve/internal/audit"
	"medserve/internal/store"
)

// rangePage bounds how many audit events Range holds in memory at once.
const rangePage = 1000

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// DB is a store.Store backed by a PostgreSQL database.
type DB struct {
	pool *pgxpool.Pool
	url  string // for pg_dump (Backup); may hold a password, so never printed
}

var _ store.Store = (*DB)(nil)

// Open connects to the database at url (a postgres:// URL or key=value DSN) and applies the pending migrations.
//
// Migrating here, as the sqlite store does, means a replica never serves
// against an older schema; concurrent Opens are safe (see Migrate).
func Open(ctx context.Context, url string) (*DB, error) {
	d, err := connect(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := d.Migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// connect opens the pool and checks that the server answers, without migrating.
func connect(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The error text can echo the URL, password included.
		return nil, errors.New("postgres: invalid database URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// The pool connects lazily; ping so a wrong host or credentials fail
	// here with a clear error rather than in the first request.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	return &DB{pool: pool, url: url}, nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// RefreshViews recomputes the materialized views patient_summary and clinical_outcomes.
//
// CONCURRENTLY lets readers keep using the old contents during the refresh
// (it needs the views' unique indexes). Each view is refreshed in its own
// statement so neither waits for the other's lock.
func (d *DB) RefreshViews(ctx context.Context) error {
	for _, v := range []string{"patient_summary", "clinical_outcomes"} {
		if _, err := d.pool.Exec(ctx, `REFRESH MATERIALIZED VIEW CONCURRENTLY `+v); err != nil {
			return fmt.Errorf("postgres: refresh %s: %w", v, err)
		}
	}
	return nil
}

func orEmptyArray(s string) string {
	if strings.TrimSpace(s) == "" {
		return "[]"
	}
	return s
}

// SaveQuery stores q and indexes its present finding codes; a duplicate request id is an error.
//
// FindingsJSON and DifferentialJSON are kept as jsonb, so they are read back
// as equivalent JSON, not byte for byte (jsonb normalises spacing and key
// order; array order, which ranks the differential, is kept).
func (d *DB) SaveQuery(ctx context.Context, q store.QueryRecord) error {
	if err := store.CheckQuery(q); err != nil {
		return fmt.Errorf("postgres: save query: %w", err)
	}
	// One statement inserts the query and its findings, so it is atomic
	// without an explicit transaction.
	if _, err := d.pool.Exec(ctx, insertQueriesSQL(false), queryArrays([]store.QueryRecord{q})...); err != nil {
		return fmt.Errorf("postgres: save query: %w", err)
	}
	return nil
}

// insertQueriesSQL inserts the queries given as parallel arrays (see
// queryArrays) and indexes the present finding codes of those it inserted;
// with skipDuplicates a request id already stored is skipped (a replayed
// recorder batch) instead of failing. One statement serves one query
// (SaveQuery) or a whole batch (Write) in a single round trip.
//
// The finding codes are extracted in SQL, as in sqlite, so the store knows
// only the "code" and "negated" keys, not the Go finding type. Non-array
// documents and non-object elements contribute nothing instead of failing;
// a finding counts as present unless negated is true or a non-zero number
// (sqlite's truthiness).
func insertQueriesSQL(skipDuplicates bool) string {
	conflict := ""
	if skipDuplicates {
		conflict = "ON CONFLICT (request_id) DO NOTHING"
	}
	return `WITH q AS (
		INSERT INTO queries (request_id, patient_pseudonym, time, domain, urgency, acuity, findings,
			differential, confidence, query_hash, response_ms, model_version, cache_hit, text_sealed,
			patient_sealed, interaction_alerts)
		SELECT id, patient, t, domain, urgency, acuity, findings::jsonb, differential::jsonb,
			confidence, qhash, ms, model, hit, sealed, psealed, ialerts
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::int[],
			$7::text[], $8::text[], $9::float8[], $10::text[], $11::float8[], $12::text[],
			$13::bool[], $14::text[], $15::text[], $16::int[])
			AS u(id, patient, t, domain, urgency, acuity, findings, differential, confidence, qhash,
			     ms, model, hit, sealed, psealed, ialerts)
		` + conflict + `
		RETURNING request_id, patient_pseudonym, findings)
	INSERT INTO query_findings (request_id, patient_pseudonym, code)
	SELECT DISTINCT q.request_id, q.patient_pseudonym, e ->> 'code'
	FROM q, jsonb_array_elements(CASE WHEN jsonb_typeof(q.findings) = 'array' THEN q.findings ELSE '[]'::jsonb END) AS e
	WHERE jsonb_typeof(e) = 'object'
	  AND COALESCE(e ->> 'code', '') <> ''
	  AND COALESCE(e -> 'negated', 'null'::jsonb) IN ('null'::jsonb, 'false'::jsonb, '0'::jsonb)`
}

// queryArrays returns the arguments of insertQueriesSQL: one array per column.
func queryArrays(qs []store.QueryRecord) []any {
	n := len(qs)
	text := func() []string { return make([]string, n) }
	ids, patients, domains, urgencies, findings, diffs := text(), text(), text(), text(), text(), text()
	hashes, models, sealed, psealed := text(), text(), text(), text()
	times := make([]time.Time, n)
	acuities, ialerts := make([]int32, n), make([]int32, n)
	confidences, ms := make([]float64, n), make([]float64, n)
	hits := make([]bool, n)
	for i, q := range qs {
		ids[i], patients[i], times[i] = q.RequestID, q.PatientPseudonym, q.Time
		domains[i], urgencies[i], acuities[i] = q.Domain, q.Urgency, int32(q.Acuity)
		findings[i], diffs[i] = orEmptyArray(q.FindingsJSON), orEmptyArray(q.DifferentialJSON)
		confidences[i], hashes[i], ms[i], models[i] = q.Confidence, q.QueryHash, q.ResponseMS, q.ModelVersion
		hits[i], sealed[i], psealed[i] = q.CacheHit, q.TextSealed, q.PatientSealed
		ialerts[i] = int32(q.InteractionAlerts)
	}
	return []any{ids, patients, times, domains, urgencies, acuities, findings, diffs,
		confidences, hashes, ms, models, hits, sealed, psealed, ialerts}
}

const queryColumns = `request_id, patient_pseudonym, time, domain, urgency, acuity, findings::text,
	differential::text, confidence, query_hash, response_ms, model_version, cache_hit, text_sealed,
	patient_sealed, interaction_alerts`

// PatientHistory returns the queries of any of the pseudonyms, newest first, at most limit (all when limit ≤ 0).
func (d *DB) PatientHistory(ctx context.Context, pseudonyms []string, limit int) ([]store.QueryRecord, error) {
	if len(pseudonyms) == 0 {
		return nil, nil
	}
	var lim *int64 // LIMIT NULL is no limit
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	rows, err := d.pool.Query(ctx, `SELECT `+queryColumns+`
		FROM queries WHERE patient_pseudonym = ANY($1)
		ORDER BY time DESC, request_id DESC LIMIT $2`, pseudonyms, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: patient history: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.QueryRecord, error) {
		var q store.QueryRecord
		err := row.Scan(&q.RequestID, &q.PatientPseudonym, &q.Time, &q.Domain, &q.Urgency,
			&q.Acuity, &q.FindingsJSON, &q.DifferentialJSON, &q.Confidence, &q.QueryHash,
			&q.ResponseMS, &q.ModelVersion, &q.CacheHit, &q.TextSealed, &q.PatientSealed,
			&q.InteractionAlerts)
		q.Time = q.Time.UTC()
		return q, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: patient history: %w", err)
	}
	if len(out) == 0 {
		return nil, nil // as sqlite: no history is a nil slice
	}
	return out, nil
}

// SaveFeedback stores f, replacing an earlier feedback for the same request; ErrNotFound when the request is unknown.
func (d *DB) SaveFeedback(ctx context.Context, f store.Feedback) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		// Checked explicitly (the foreign key would also refuse) to return a
		// typed error instead of a driver-specific constraint message. FOR
		// KEY SHARE keeps the query from being deleted before the insert.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM queries WHERE request_id = $1 FOR KEY SHARE`, f.RequestID).Scan(&one)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("postgres: feedback for request %q: %w", f.RequestID, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("postgres: save feedback: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO feedback
			(request_id, true_acuity, confirmed_diagnosis, disposition, treatment_effectiveness,
			 interaction_confirmed, comment, time)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
			ON CONFLICT (request_id) DO UPDATE SET
				true_acuity = excluded.true_acuity,
				confirmed_diagnosis = excluded.confirmed_diagnosis,
				disposition = excluded.disposition,
				treatment_effectiveness = excluded.treatment_effectiveness,
				interaction_confirmed = excluded.interaction_confirmed,
				comment = excluded.comment,
				time = excluded.time`,
			f.RequestID, f.TrueAcuity, f.ConfirmedDiagnosis, f.Disposition,
			f.TreatmentEffectiveness, f.InteractionConfirmed, f.Comment, f.Time)
		if err != nil {
			return fmt.Errorf("postgres: save feedback: %w", err)
		}
		return nil
	})
}

// PatientSummary returns the last year's summary over all the pseudonyms together.
//
// It applies the patient_summary view's definition to the union of the
// pseudonyms rather than reading the view, whose rows are per pseudonym and
// may be up to a refresh interval stale. The window uses the database's
// now(), like the view, so all replicas share one clock.
func (d *DB) PatientSummary(ctx context.Context, pseudonyms []string) (store.Summary, error) {
	var s store.Summary
	if len(pseudonyms) == 0 {
		return s, nil
	}
	var last *time.Time // NULL when nothing matched
	var acuity *int32
	err := d.pool.QueryRow(ctx, `SELECT COUNT(*), MAX(time), MIN(acuity),
			COALESCE(array_agg(DISTINCT domain ORDER BY domain) FILTER (WHERE domain <> ''), '{}')
		FROM queries WHERE patient_pseudonym = ANY($1) AND time >= now() - interval '1 year'`,
		pseudonyms).Scan(&s.Queries, &last, &acuity, &s.Domains)
	if err != nil {
		return store.Summary{}, fmt.Errorf("postgres: patient summary: %w", err)
	}
	if last != nil {
		s.LastVisit = last.UTC()
	}
	if acuity != nil {
		s.MostUrgentAcuity = int(*acuity)
	}
	if len(s.Domains) == 0 {
		s.Domains = nil // as sqlite
	}
	sort.Strings(s.Domains) // ORDER BY sorts by collation; callers expect byte order
	return s, nil
}

// Head returns the last audit event's seq and hash, or 0 and audit.Genesis when the chain is empty.
func (d *DB) Head(ctx context.Context) (int64, string, error) {
	return head(ctx, d.pool)
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const headSQL = `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`

func head(ctx context.Context, q queryRower) (int64, string, error) {
	return scanHead(q.QueryRow(ctx, headSQL))
}

func scanHead(row pgx.Row) (int64, string, error) {
	var seq int64
	var hash string
	err := row.Scan(&seq, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, audit.Genesis, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("postgres: audit head: %w", err)
	}
	return seq, hash, nil
}

// lockHeadSQL locks the appenders' mutex row (see Append). The head must be
// read by a later statement: under READ COMMITTED only a statement that
// starts after the lock is granted sees the previous holder's commit.
const lockHeadSQL = `SELECT id FROM audit_head FOR UPDATE`

func scanLock(row pgx.Row) error {
	var locked bool
	if err := row.Scan(&locked); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return errors.New("audit_head row missing: appends cannot be serialised")
		}
		return err
	}
	return nil
}

// Append stores e if it extends the head (e.Seq == head+1, e.Prev == head hash), else returns audit.ErrConflict.
//
// Locking: the transaction first locks the single audit_head row FOR UPDATE,
// so appenders on every replica run one at a time; under READ COMMITTED the
// head read that follows sees the previous holder's committed event. A row
// lock rather than an advisory lock keeps the mutex inside the schema (no
// key to collide with other applications sharing the database). The primary
// key on seq is a backstop: a duplicate from a writer that skipped the lock
// is also reported as ErrConflict.
func (d *DB) Append(ctx context.Context, e audit.Event) error {
	// timestamptz keeps microseconds; a finer time would be stored differently
	// from what was hashed and Verify would later call the event altered.
	if !e.Time.Equal(e.Time.Truncate(time.Microsecond)) {
		return errors.New("postgres: audit event time finer than a microsecond")
	}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if err := scanLock(tx.QueryRow(ctx, lockHeadSQL)); err != nil {
			return err
		}
		seq, hash, err := head(ctx, tx)
		if err != nil {
			return err
		}
		if e.Seq != seq+1 || e.Prev != hash {
			return audit.ErrConflict
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_events
			(seq, time, actor, role, action, resource, patient, request_id, outcome, reason, prev, hash)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
			e.Seq, e.Time, e.Actor, e.Role, e.Action, e.Resource, e.Patient,
			e.RequestID, e.Outcome, e.Reason, e.Prev, e.Hash)
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, audit.ErrConflict):
		return audit.ErrConflict
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		return audit.ErrConflict
	default:
		return fmt.Errorf("postgres: audit append: %w", err)
	}
}

// Range calls fn for each event with from ≤ seq ≤ to, in seq order.
//
// Events are read in pages and each page's rows are closed before fn runs,
// so a walk over a long chain neither holds it all in memory nor pins a
// pooled connection while fn runs, and fn may call back into the store.
func (d *DB) Range(ctx context.Context, from, to int64, fn func(audit.Event) error) error {
	return store.RangePages(ctx, from, to, rangePage, d.rangePage, fn)
}

func (d *DB) rangePage(ctx context.Context, from, to int64) ([]audit.Event, error) {
	page, err := d.events(ctx, `seq >= $1 AND seq <= $2`, []any{from, to}, rangePage)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit range: %w", err)
	}
	return page, nil
}

// events returns at most limit events matching where (with args $1…$n), in seq order.
func (d *DB) events(ctx context.Context, where string, args []any, limit int) ([]audit.Event, error) {
	args = append(args, limit)
	rows, err := d.pool.Query(ctx, `SELECT seq, time, actor, role, action, resource, patient,
		request_id, outcome, reason, prev, hash
		FROM audit_events WHERE `+where+` ORDER BY seq LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (audit.Event, error) {
		var e audit.Event
		err := row.Scan(&e.Seq, &e.Time, &e.Actor, &e.Role, &e.Action, &e.Resource, &e.Patient,
			&e.RequestID, &e.Outcome, &e.Reason, &e.Prev, &e.Hash)
		e.Time = e.Time.UTC()
		return e, err
	})
}
