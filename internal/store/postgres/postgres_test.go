package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"medserve/internal/audit"
	"medserve/internal/store"
)

const defaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// freshDatabase creates an empty database for one test and returns its URL;
// it is dropped when the test ends. Without a reachable server the test is
// skipped, except in CI, where a missing server must not pass silently.
func freshDatabase(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("MEDSERVE_TEST_POSTGRES_URL")
	if admin == "" {
		admin = defaultTestURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err == nil {
		err = conn.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL not reachable (CI=true requires it): %v", err)
		}
		t.Skipf("PostgreSQL not reachable (set CI=true to require it): %v", err)
	}
	defer conn.Close(context.Background())

	var b [8]byte
	rand.Read(b[:])
	name := "medserve_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	var version int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		drop := `DROP DATABASE IF EXISTS ` + name
		if version >= 130000 { // FORCE ends sessions a failed test left open
			drop += ` WITH (FORCE)`
		}
		if _, err := c.Exec(ctx, drop); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("MEDSERVE_TEST_POSTGRES_URL must be a URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	dbURL := freshDatabase(t)
	db, err := Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dbURL
}

func rec(id, patient string, at time.Time, acuity int, domain string) store.QueryRecord {
	return store.QueryRecord{
		RequestID: id, PatientPseudonym: patient, Time: at, Domain: domain,
		Urgency: "medium", Acuity: acuity,
		FindingsJSON:     `[{"code":"C0008031","negated":false},{"code":"C0013404","negated":true},{"code":"C0008031"}]`,
		DifferentialJSON: `[{"condition":"ACS","icd10":"I21.9","probability":0.7}]`,
		Confidence:       0.7, QueryHash: "qh-" + id, ResponseMS: 12.5, ModelVersion: "m1",
		CacheHit: true, TextSealed: "sealed:" + id,
	}
}

// sameJSON reports whether a and b are equal JSON documents: jsonb keeps
// values, not the spelling.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("%q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func countMigrations(t *testing.T, db *DB) {
	t.Helper()
	var n int
	if err := db.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || n == 0 {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestMigrateTwice(t *testing.T) {
	db, _ := openTemp(t) // Open already migrated once
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
	}
	countMigrations(t, db)
}

// TestMigrateConcurrent starts four "replicas" on a fresh database at once.
func TestMigrateConcurrent(t *testing.T) {
	dbURL := freshDatabase(t)
	ctx := context.Background()
	const replicas = 4
	dbs := make([]*DB, replicas)
	for i := range dbs {
		d, err := connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		dbs[i] = d
	}
	start := make(chan struct{})
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, d := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = d.Migrate(ctx)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	countMigrations(t, dbs[0])
	var heads int
	if err := dbs[0].pool.QueryRow(ctx, `SELECT COUNT(*) FROM audit_head`).Scan(&heads); err != nil || heads != 1 {
		t.Fatalf("audit_head rows = %d, %v; want 1", heads, err)
	}
}

func TestSchemaObjects(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	exists := func(q, name string) bool {
		t.Helper()
		var ok bool
		if err := db.pool.QueryRow(ctx, q, name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, name := range []string{"queries", "query_findings", "audit_events", "audit_head", "feedback", "models",
		"promotions", "alerts", "incidents", "batch_jobs", "schema_migrations", "spool_progress", "cache_entries", "api_keys",
		"modes", "monitor_counts"} {
		if !exists(`SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1)`, name) {
			t.Errorf("table %s missing", name)
		}
	}
	for _, name := range []string{"idx_queries_patient_time", "idx_queries_domain_patient", "idx_queries_urgency_time",
		"idx_queries_symptoms_patient", "idx_queries_diagnosis_confidence", "idx_queries_hash_response",
		"idx_audit_time", "idx_audit_phi_access_time", "idx_audit_compliance_status",
		"idx_patient_summary_pseudonym", "idx_clinical_outcomes_request",
		"idx_queries_time", "idx_cache_entries_expires", "idx_audit_actor_time", "idx_audit_action_time",
		"idx_audit_request", "idx_models_stage", "idx_models_one_per_stage", "idx_promotions_model_time",
		"idx_feedback_time", "idx_alerts_one_unresolved", "idx_alerts_started", "idx_incidents_opened",
		"idx_monitor_counts_bucket"} {
		if !exists(`SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1)`, name) {
			t.Errorf("index %s missing", name)
		}
	}
	for _, name := range []string{"patient_summary", "clinical_outcomes"} {
		if !exists(`SELECT EXISTS (SELECT 1 FROM pg_matviews WHERE schemaname = current_schema() AND matviewname = $1)`, name) {
			t.Errorf("materialized view %s missing", name)
		}
	}
	// The views must at least run, and be refreshable concurrently (which
	// fails without a unique index).
	if err := db.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"patient_summary", "clinical_outcomes"} {
		rows, err := db.pool.Query(ctx, `SELECT * FROM `+v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
}

func TestHistoryOrderLimitAndRotation(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	// p-old and p-new are the same patient under two keys; p-other is someone else.
	for i := 0; i < 5; i++ {
		patient := "p-old"
		if i >= 3 {
			patient = "p-new"
		}
		if err := db.SaveQuery(ctx, rec(fmt.Sprintf("r%d", i), patient, base.Add(time.Duration(i)*time.Minute), 3, "cardio")); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SaveQuery(ctx, rec("x", "p-other", base.Add(time.Hour), 1, "neuro")); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveQuery(ctx, rec("r0", "p-old", base, 3, "cardio")); err == nil {
		t.Fatal("duplicate request id accepted")
	}
	if err := db.SaveQuery(ctx, store.QueryRecord{RequestID: "bad", PatientPseudonym: "p", Time: base, FindingsJSON: "{nope"}); err == nil {
		t.Fatal("invalid findings JSON accepted")
	}

	h, err := db.PatientHistory(ctx, []string{"p-old", "p-new"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, q := range h {
		ids = append(ids, q.RequestID)
	}
	if want := []string{"r4", "r3", "r2", "r1", "r0"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("history = %v, want %v", ids, want)
	}
	want := rec("r4", "p-new", base.Add(4*time.Minute), 3, "cardio")
	got := h[0]
	if !sameJSON(t, got.FindingsJSON, want.FindingsJSON) || !sameJSON(t, got.DifferentialJSON, want.DifferentialJSON) {
		t.Fatalf("JSON round trip: %s %s", got.FindingsJSON, got.DifferentialJSON)
	}
	got.FindingsJSON, got.DifferentialJSON = want.FindingsJSON, want.DifferentialJSON
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	h, err = db.PatientHistory(ctx, []string{"p-old"}, 2)
	if err != nil || len(h) != 2 || h[0].RequestID != "r2" || h[1].RequestID != "r1" {
		t.Fatalf("limited history = %+v, %v", h, err)
	}
	if h, err := db.PatientHistory(ctx, nil, 10); err != nil || len(h) != 0 {
		t.Fatalf("no pseudonyms: %v, %v", h, err)
	}
	if h, err := db.PatientHistory(ctx, []string{"nobody"}, 0); err != nil || len(h) != 0 {
		t.Fatalf("unknown pseudonym: %v, %v", h, err)
	}

	// Present findings only, deduplicated, indexed by code and patient.
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM query_findings WHERE request_id = 'r0'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("query_findings for r0 = %d, %v; want 1", n, err)
	}
	// On a handful of rows the planner rightly prefers a sequential scan;
	// disabling it (on one connection) shows the index is usable.
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `EXPLAIN SELECT DISTINCT patient_pseudonym FROM query_findings WHERE code = 'C0008031'`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `RESET enable_seqscan`); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "idx_queries_symptoms_patient") {
		t.Errorf("symptom lookup does not use its index:\n%s", p)
	}
	var top string
	if err := db.pool.QueryRow(ctx, `SELECT top_diagnosis FROM queries WHERE request_id = 'r0'`).Scan(&top); err != nil || top != "I21.9" {
		t.Fatalf("top_diagnosis = %q, %v", top, err)
	}
}

func TestFeedbackReplace(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if err := db.SaveQuery(ctx, rec("r1", "p", now, 2, "cardio")); err != nil {
		t.Fatal(err)
	}
	eff := 0.8
	if err := db.SaveFeedback(ctx, store.Feedback{RequestID: "r1", TrueAcuity: 2, ConfirmedDiagnosis: "I21.9",
		Disposition: "admitted", TreatmentEffectiveness: &eff, Comment: "first", Time: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveFeedback(ctx, store.Feedback{RequestID: "r1", TrueAcuity: 1, ConfirmedDiagnosis: "I21.0",
		Disposition: "icu", Comment: "second", Time: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var n, acuity int
	var diag, comment string
	var te *float64
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*), MAX(true_acuity), MAX(confirmed_diagnosis), MAX(comment), MAX(treatment_effectiveness) FROM feedback`).
		Scan(&n, &acuity, &diag, &comment, &te); err != nil {
		t.Fatal(err)
	}
	if n != 1 || acuity != 1 || diag != "I21.0" || comment != "second" || te != nil {
		t.Fatalf("feedback = %d rows, %d %q %q %v", n, acuity, diag, comment, te)
	}
	err := db.SaveFeedback(ctx, store.Feedback{RequestID: "nope", Time: now})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("feedback for unknown request: %v, want ErrNotFound", err)
	}
}

func TestPatientSummaryAndOutcomes(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	qs := []store.QueryRecord{
		rec("a", "p1", now.Add(-48*time.Hour), 3, "cardio"),
		rec("b", "p2", now.Add(-time.Hour), 2, "respiratory"), // same patient, rotated key
		rec("c", "p1", now.AddDate(0, -2, 0), 4, "cardio"),
		rec("old", "p1", now.AddDate(-2, 0, 0), 1, "neuro"), // older than a year: excluded
		rec("z", "p9", now, 1, "trauma"),                    // another patient
	}
	for _, q := range qs {
		if err := db.SaveQuery(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s, err := db.PatientSummary(ctx, []string{"p1", "p2"})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Summary{Queries: 3, LastVisit: now.Add(-time.Hour), MostUrgentAcuity: 2, Domains: []string{"cardio", "respiratory"}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("summary = %+v, want %+v", s, want)
	}
	if s, err := db.PatientSummary(ctx, []string{"nobody"}); err != nil || !reflect.DeepEqual(s, store.Summary{}) {
		t.Fatalf("empty summary = %+v, %v", s, err)
	}

	// Materialized: nothing until refreshed, then the view agrees per pseudonym.
	var n, acuity int
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM patient_summary`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("patient_summary before refresh = %d rows, %v; want 0", n, err)
	}
	if err := db.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}
	var domains []string
	if err := db.pool.QueryRow(ctx, `SELECT queries, most_urgent_acuity, domains FROM patient_summary WHERE patient_pseudonym = 'p1'`).
		Scan(&n, &acuity, &domains); err != nil || n != 2 || acuity != 3 || !reflect.DeepEqual(domains, []string{"cardio"}) {
		t.Fatalf("patient_summary view p1 = %d, %d, %v, %v", n, acuity, domains, err)
	}

	// clinical_outcomes: previous effectiveness per patient, six months only.
	e1, e2 := 0.4, 0.9
	for _, f := range []store.Feedback{
		{RequestID: "c", TreatmentEffectiveness: &e1, Time: now},
		{RequestID: "a", TreatmentEffectiveness: &e2, Time: now},
		{RequestID: "old", TreatmentEffectiveness: &e2, Time: now},
	} {
		if err := db.SaveFeedback(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM clinical_outcomes`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("clinical_outcomes before refresh = %d rows, %v; want 0", n, err)
	}
	if err := db.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}
	var prev *float64
	if err := db.pool.QueryRow(ctx, `SELECT previous_effectiveness FROM clinical_outcomes WHERE request_id = 'a'`).Scan(&prev); err != nil || prev == nil || *prev != e1 {
		t.Fatalf("previous_effectiveness for a = %v, %v; want %v", prev, err, e1)
	}
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM clinical_outcomes`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("clinical_outcomes rows = %d, %v; want 2", n, err)
	}
}

// TestRefreshViewsConcurrentWithReads checks that readers are not blocked
// by, and see consistent contents during, concurrent refreshes.
func TestRefreshViewsConcurrentWithReads(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now().UTC()
	for i := 0; i < 50; i++ {
		if err := db.SaveQuery(ctx, rec(fmt.Sprintf("r%d", i), fmt.Sprintf("p%d", i%5), now, 3, "cardio")); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- db.RefreshViews(ctx)
		}()
		go func() {
			defer wg.Done()
			var total int
			err := db.pool.QueryRow(ctx, `SELECT COALESCE(SUM(queries), 0) FROM patient_summary`).Scan(&total)
			if err == nil && total != 50 {
				err = fmt.Errorf("patient_summary sums to %d queries during refresh, want 50", total)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestAuditChainConcurrentAndTamper(t *testing.T) {
	db, dbURL := openTemp(t)
	ctx := context.Background()
	// A second pool with its own Chain stands for another replica: the two
	// chains' mutexes do not exclude each other, only the database does.
	replica, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	chains := []*audit.Chain{audit.NewChain(db, nil), audit.NewChain(replica, nil)}
	const workers, per = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chain := chains[w%len(chains)]
			for i := 0; i < per; i++ {
				_, err := chain.Append(ctx, audit.Event{Role: "clinician", Action: "patient.history.read",
					Resource: "history", Patient: fmt.Sprintf("p%d", w), RequestID: fmt.Sprintf("r%d-%d", w, i),
					Outcome: audit.OutcomeOK})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	replica.Close()
	r, err := audit.Verify(ctx, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Events != workers*per {
		t.Fatalf("verify = %+v", r)
	}

	// An independent appender that is behind gets ErrConflict.
	seq, head, err := db.Head(ctx)
	if err != nil || seq != workers*per {
		t.Fatalf("head = %d, %v", seq, err)
	}
	stale := audit.Event{Seq: seq, Prev: head, Time: time.Now().UTC().Truncate(time.Microsecond), Actor: "a", Action: "x", Outcome: "ok"}
	stale.Hash = stale.ComputeHash()
	if err := db.Append(ctx, stale); !errors.Is(err, audit.ErrConflict) {
		t.Fatalf("stale append: %v, want ErrConflict", err)
	}

	// Reopen: the data persists and still verifies.
	db.Close()
	db2, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if r, err := audit.Verify(ctx, db2, nil, nil); err != nil || !r.OK || r.Events != workers*per {
		t.Fatalf("verify after reopen = %+v, %v", r, err)
	}

	if _, err := db2.pool.Exec(ctx, `UPDATE audit_events SET action = 'x' WHERE seq = 50`); err != nil {
		t.Fatal(err)
	}
	r, err = audit.Verify(ctx, db2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || len(r.Problems) == 0 || r.Problems[0].Seq != 50 || r.Problems[0].Kind != audit.KindAltered {
		t.Fatalf("verify after tamper = %+v", r)
	}
}

func TestAuditFirstAppendRace(t *testing.T) {
	// On an empty chain every appender proposes seq 1; exactly one may win.
	db, _ := openTemp(t)
	ctx := context.Background()
	const n = 8
	start := make(chan struct{})
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			e := audit.Event{Seq: 1, Prev: audit.Genesis, Time: time.Now().UTC().Truncate(time.Microsecond),
				Actor: fmt.Sprintf("a%d", i), Action: "x", Outcome: audit.OutcomeOK}
			e.Hash = e.ComputeHash()
			<-start
			results <- db.Append(ctx, e)
		}()
	}
	close(start)
	var ok int
	for i := 0; i < n; i++ {
		switch err := <-results; {
		case err == nil:
			ok++
		case !errors.Is(err, audit.ErrConflict):
			t.Errorf("append: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d first appends succeeded, want 1", ok)
	}
}

func TestRangePagesAndBounds(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	chain := audit.NewChain(db, nil)
	const n = rangePage + 7 // crosses a page boundary
	for i := 0; i < n; i++ {
		if _, err := chain.Append(ctx, audit.Event{Action: "a", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	var got []int64
	if err := db.Range(ctx, 3, n-2, func(e audit.Event) error { got = append(got, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != n-4 || got[0] != 3 || got[len(got)-1] != n-2 {
		t.Fatalf("range returned %d events [%d..%d]", len(got), got[0], got[len(got)-1])
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("range out of order at %d", i)
		}
	}
	if r, err := audit.Verify(ctx, db, nil, nil); err != nil || !r.OK || r.Events != n {
		t.Fatalf("verify = %+v, %v", r, err)
	}
	bad := audit.Event{Seq: n + 1, Time: time.Now().UTC().Truncate(time.Microsecond).Add(1), Action: "a", Outcome: "ok"}
	if err := db.Append(ctx, bad); err == nil {
		t.Fatal("sub-microsecond time accepted")
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	_, err := Open(context.Background(), "postgres://user:secret@host:notaport/db")
	if err == nil {
		t.Fatal("invalid URL accepted")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func BenchmarkSaveQuery(b *testing.B) {
	db, _ := openTemp(b)
	ctx := context.Background()
	now := time.Now().UTC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := db.SaveQuery(ctx, rec(fmt.Sprintf("r%d", i), fmt.Sprintf("p%d", i%100), now, 3, "cardio")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuditAppend(b *testing.B) {
	db, _ := openTemp(b)
	ctx := context.Background()
	chain := audit.NewChain(db, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := chain.Append(ctx, audit.Event{Role: "clinician", Action: "inference", Patient: "p", Outcome: audit.OutcomeOK}); err != nil {
			b.Fatal(err)
		}
	}
}
