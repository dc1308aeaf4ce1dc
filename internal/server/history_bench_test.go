package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/record"
	"medserve/internal/spool"
	"medserve/internal/store"
	"medserve/internal/store/postgres"
	"medserve/internal/store/sqlite"
)

// BenchmarkHistoryEndpoint100k times POST /api/v1/patients/history end to
// end (decode, pseudonyms, store read of 50 rows and the summary, opening
// 50 sealed texts, the audit event made durable, encode) with 100,000
// query rows over 2,000 patients in the store. SQLite by default;
// MEDSERVE_BENCH_DATABASE_URL points it at an empty PostgreSQL database.
func BenchmarkHistoryEndpoint100k(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	var st store.Store
	var err error
	if url := os.Getenv("MEDSERVE_BENCH_DATABASE_URL"); url != "" {
		st, err = postgres.Open(ctx, url)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "medserve.db"))
	}
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	deps := loadDeps(b)
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	rec := record.New(sp, st, record.Options{})
	rctx, cancel := context.WithCancel(ctx)
	go rec.Run(rctx)
	defer func() { cancel(); rec.Wait() }()
	deps = withRecordsFrom(b, deps, st, rec)

	const rows, patients = 100_000, 2_000
	now := time.Now().UTC()
	text, _ := json.Marshal(sealedQuery{Query: "chest pain radiating to the left arm, sweaty, since this morning", Medications: []string{"warfarin", "aspirin"}})
	for start := 0; start < rows; start += 5000 {
		var batch store.Batch
		for i := start; i < start+5000; i++ {
			id := fmt.Sprintf("bench-%06d", i)
			p := deps.PHI.Pseudonym(fmt.Sprintf("MRN-%04d", i%patients))
			sealed, err := deps.PHI.Seal(text, adText(id))
			if err != nil {
				b.Fatal(err)
			}
			batch.Queries = append(batch.Queries, store.QueryRecord{RequestID: id, PatientPseudonym: p, Time: now.Add(-time.Duration(i) * time.Minute),
				Domain: "cardiology", Urgency: "high", Acuity: 2, Confidence: 0.7, ModelVersion: "triage/1", TextSealed: sealed,
				FindingsJSON:     `[{"code":"C0008031","type":"SYMPTOM","negated":false}]`,
				DifferentialJSON: `[{"condition":"Acute coronary syndrome","icd10":"I21","probability":0.4}]`})
			batch.Events = append(batch.Events, audit.Event{Time: now, Action: "inference", RequestID: id, Patient: p, Outcome: audit.OutcomeOK})
		}
		if _, err := st.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	h := NewServer(deps)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		body := fmt.Sprintf(`{"patient_id": "MRN-%04d", "limit": 50}`, i%patients)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/v1/patients/history", strings.NewReader(body)))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"queries":50`) {
			b.Fatalf("%d %.200s", w.Code, w.Body.String())
		}
	}
}

// withRecordsFrom is withRecords over a given store and recorder.
func withRecordsFrom(tb testing.TB, deps Deps, st store.Store, rec *record.Recorder) Deps {
	d := withRecords(tb, deps)
	d.Store, d.Recorder = st, rec
	return d
}
