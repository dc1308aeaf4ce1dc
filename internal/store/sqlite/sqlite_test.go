package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/store"
)

func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "medserve.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
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

func TestMigrateTwice(t *testing.T) {
	db, _ := openTemp(t) // Open already migrated once
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := db.Migrate(ctx); err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
	}
	var n int
	if err := db.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || n == 0 {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	var mode string
	if err := db.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := db.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
}

func TestSchemaObjects(t *testing.T) {
	db, _ := openTemp(t)
	want := map[string][]string{
		"table": {"queries", "query_findings", "audit_events", "feedback", "models", "promotions",
			"alerts", "incidents", "batch_jobs", "schema_migrations", "spool_progress", "cache_entries", "api_keys",
			"modes", "monitor_counts"},
		"index": {"idx_queries_patient_time", "idx_queries_domain_patient", "idx_queries_urgency_time",
			"idx_queries_symptoms_patient", "idx_queries_diagnosis_confidence", "idx_queries_hash_response",
			"idx_audit_time", "idx_audit_phi_access_time", "idx_audit_compliance_status",
			"idx_queries_time", "idx_cache_entries_expires", "idx_audit_actor_time", "idx_audit_action_time",
			"idx_audit_request", "idx_models_stage", "idx_models_one_per_stage", "idx_promotions_model_time",
			"idx_feedback_time", "idx_alerts_one_unresolved", "idx_alerts_started", "idx_incidents_opened",
			"idx_monitor_counts_bucket"},
		"view": {"patient_summary", "clinical_outcomes"},
	}
	for typ, names := range want {
		for _, name := range names {
			var n int
			if err := db.db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = ? AND name = ?`, typ, name).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("%s %s missing", typ, name)
			}
		}
	}
	// The views must at least run.
	for _, v := range []string{"patient_summary", "clinical_outcomes"} {
		rows, err := db.db.Query(`SELECT * FROM ` + v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		rows.Close()
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
	if want := rec("r4", "p-new", base.Add(4*time.Minute), 3, "cardio"); !reflect.DeepEqual(h[0], want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", h[0], want)
	}
	h, err = db.PatientHistory(ctx, []string{"p-old"}, 2)
	if err != nil || len(h) != 2 || h[0].RequestID != "r2" || h[1].RequestID != "r1" {
		t.Fatalf("limited history = %+v, %v", h, err)
	}
	if h, err := db.PatientHistory(ctx, nil, 10); err != nil || len(h) != 0 {
		t.Fatalf("no pseudonyms: %v, %v", h, err)
	}

	// Present findings only, deduplicated, indexed by code and patient.
	var n int
	if err := db.db.QueryRow(`SELECT COUNT(*) FROM query_findings WHERE request_id = 'r0'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("query_findings for r0 = %d, %v; want 1", n, err)
	}
	var plan string
	rows, err := db.db.Query(`EXPLAIN QUERY PLAN SELECT DISTINCT patient_pseudonym FROM query_findings WHERE code = 'C0008031'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan += detail + ";"
	}
	rows.Close()
	if !strings.Contains(plan, "idx_queries_symptoms_patient") {
		t.Errorf("symptom lookup does not use its index: %s", plan)
	}
	var top string
	if err := db.db.QueryRow(`SELECT top_diagnosis FROM queries WHERE request_id = 'r0'`).Scan(&top); err != nil || top != "I21.9" {
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
	var n int
	var acuity int
	var diag, comment string
	var te *float64
	if err := db.db.QueryRow(`SELECT COUNT(*), MAX(true_acuity), MAX(confirmed_diagnosis), MAX(comment), MAX(treatment_effectiveness) FROM feedback`).
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
	if s, err := db.PatientSummary(ctx, []string{"nobody"}); err != nil || s.Queries != 0 || !s.LastVisit.IsZero() {
		t.Fatalf("empty summary = %+v, %v", s, err)
	}
	// The view agrees per pseudonym.
	var n, acuity int
	if err := db.db.QueryRow(`SELECT queries, most_urgent_acuity FROM patient_summary WHERE patient_pseudonym = 'p1'`).Scan(&n, &acuity); err != nil || n != 2 || acuity != 3 {
		t.Fatalf("patient_summary view p1 = %d, %d, %v", n, acuity, err)
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
	var prev *float64
	if err := db.db.QueryRow(`SELECT previous_effectiveness FROM clinical_outcomes WHERE request_id = 'a'`).Scan(&prev); err != nil || prev == nil || *prev != e1 {
		t.Fatalf("previous_effectiveness for a = %v, %v; want %v", prev, err, e1)
	}
	if err := db.db.QueryRow(`SELECT COUNT(*) FROM clinical_outcomes`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("clinical_outcomes rows = %d, %v; want 2", n, err)
	}
}

func TestAuditChainConcurrentAndTamper(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	chain := audit.NewChain(db, nil)
	const workers, per = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
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
	r, err := audit.Verify(ctx, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Events != workers*per {
		t.Fatalf("verify = %+v", r)
	}

	// A second, independent appender (another replica) that is behind gets ErrConflict.
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
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if r, err := audit.Verify(ctx, db2, nil, nil); err != nil || !r.OK || r.Events != workers*per {
		t.Fatalf("verify after reopen = %+v, %v", r, err)
	}

	if _, err := db2.db.Exec(`UPDATE audit_events SET action = 'x' WHERE seq = 50`); err != nil {
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

func TestOpenRejectsBadPath(t *testing.T) {
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "a?b.db")); err == nil {
		t.Fatal("path with '?' accepted")
	}
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "missing", "dir", "m.db")); err == nil {
		t.Fatal("path in a missing directory accepted")
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

func TestDatabaseFileIsOwnerOnly(t *testing.T) {
	_, path := openTemp(t)
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: it holds pseudonyms and sealed PHI", filepath.Base(p), fi.Mode().Perm())
		}
	}
}
