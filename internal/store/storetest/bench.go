package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/store"
)

// LoadHistory fills s with rows query records spread evenly over patients
// pseudonyms ("p0000"…) and over the last 300 days, through Write in large
// batches (the fast path), and returns the pseudonyms.
func LoadHistory(tb testing.TB, s store.Store, rows, patients int) []string {
	tb.Helper()
	ctx := context.Background()
	const batch = 5000
	now := time.Now().UTC()
	step := 300 * 24 * time.Hour / time.Duration(rows)
	names := make([]string, patients)
	for i := range names {
		names[i] = fmt.Sprintf("p%04d", i)
	}
	qs := make([]store.QueryRecord, 0, batch)
	for i := 0; i < rows; i++ {
		at := now.Add(-step * time.Duration(rows-i))
		q := Query(fmt.Sprintf("r%07d", i), names[i%patients], at)
		q.Domain = []string{"cardio", "respiratory", "neuro", "gi"}[i%4]
		q.Acuity = 1 + i%5
		qs = append(qs, q)
		if len(qs) == batch || i == rows-1 {
			if _, err := s.Write(ctx, store.Batch{Queries: qs}); err != nil {
				tb.Fatal(err)
			}
			qs = qs[:0]
		}
	}
	return names
}

// BenchmarkPatientHistory measures what a history request costs: one
// patient's last 50 queries and the year's summary, over a store loaded by
// LoadHistory with the given pseudonyms.
func BenchmarkPatientHistory(b *testing.B, s store.Store, patients []string) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := patients[(i*7919)%len(patients)] // hop around: no patient's pages stay hot
		h, err := s.PatientHistory(ctx, []string{p}, 50)
		if err != nil {
			b.Fatal(err)
		}
		if len(h) == 0 {
			b.Fatalf("no history for %s", p)
		}
		sum, err := s.PatientSummary(ctx, []string{p})
		if err != nil {
			b.Fatal(err)
		}
		if sum.Queries < len(h) { // all loaded rows are within the summary's year
			b.Fatalf("summary of %s counts %d queries, history has %d", p, sum.Queries, len(h))
		}
	}
}

// BenchmarkWriteBatch measures Write with recorder-sized batches: each
// operation stores size queries and size chained audit events.
func BenchmarkWriteBatch(b *testing.B, s store.Store, size int) {
	ctx := context.Background()
	now := time.Now().UTC()
	batches := make([]store.Batch, b.N)
	for i := range batches {
		bt := store.Batch{Source: "bench", Through: int64(i+1) * int64(size)}
		for j := 0; j < size; j++ {
			id := fmt.Sprintf("b%d-%d", i, j)
			bt.Queries = append(bt.Queries, Query(id, fmt.Sprintf("p%d", j%100), now))
			bt.Events = append(bt.Events, audit.Event{Role: "clinician", Action: "inference",
				Patient: fmt.Sprintf("p%d", j%100), RequestID: id, Outcome: audit.OutcomeOK, Time: now})
		}
		batches[i] = bt
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Write(ctx, batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
}
