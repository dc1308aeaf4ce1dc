// Package storetest is the behaviour every store.Store must show, written
// once and run by each backend's tests, so the sqlite and postgres stores
// cannot drift apart (SPEC §10: both pass the same behaviour).
//
// It covers the recorder and operations methods (Write, Progress,
// AuditEvents, DeleteQueriesBefore, the L3 cache, Singleton), API keys, the
// model registry, monitoring and alerts (outcomes, alerts, incidents,
// modes, monitor counts, reconciliation) and the PatientSealed round trip;
// each backend keeps its own tests for what only it has (schema objects,
// migrating existing data, locking across pools, Backup and Restore).
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/store"
)

// Run runs the conformance suite; open must return a new, empty, migrated
// store for each call and close it when t ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"WriteChains", testWriteChains},
		{"WriteAtomic", testWriteAtomic},
		{"WriteReplay", testWriteReplay},
		{"WriteInterleavedWithAppend", testWriteInterleavedWithAppend},
		{"WriteConcurrent", testWriteConcurrent},
		{"Progress", testProgress},
		{"AuditEvents", testAuditEvents},
		{"AuditEventsPaging", testAuditEventsPaging},
		{"DeleteQueriesBefore", testDeleteQueriesBefore},
		{"Cache", testCache},
		{"Singleton", testSingleton},
		{"PatientSealed", testPatientSealed},
		{"QueryWithoutPatient", testQueryWithoutPatient},
		{"RefreshViews", testRefreshViews},
		{"APIKeys", testAPIKeys},
		{"APIKeyRevoke", testAPIKeyRevoke},
		{"APIKeyBadRole", testAPIKeyBadRole},
		{"RegisterModel", testRegisterModel},
		{"ModelsOrder", testModelsOrder},
		{"SetStageProduction", testSetStageProduction},
		{"SetStageCanaryShadow", testSetStageCanaryShadow},
		{"SetStageNotFound", testSetStageNotFound},
		{"SetStageRejects", testSetStageRejects},
		{"SetStageConcurrent", testSetStageConcurrent},
		{"Outcomes", testOutcomes},
		{"AlertUnique", testAlertUnique},
		{"AlertUniqueConcurrent", testAlertUniqueConcurrent},
		{"AlertRoundTrip", testAlertRoundTrip},
		{"AlertsFilter", testAlertsFilter},
		{"Incidents", testIncidents},
		{"Modes", testModes},
		{"MonitorCounts", testMonitorCounts},
		{"Reconcile", testReconcile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Query returns a complete query record for patient at the given time;
// the conformance tests and the backends' benchmarks share it.
func Query(id, patient string, at time.Time) store.QueryRecord {
	return store.QueryRecord{
		RequestID: id, PatientPseudonym: patient, Time: at.UTC().Truncate(time.Microsecond),
		Domain: "cardio", Urgency: "medium", Acuity: 3,
		FindingsJSON:     `[{"code":"C0008031","negated":false},{"code":"C0013404","negated":true},{"code":"C0008031"}]`,
		DifferentialJSON: `[{"condition":"ACS","icd10":"I21.9","probability":0.7}]`,
		Confidence:       0.7, QueryHash: "qh-" + id, ResponseMS: 12.5, ModelVersion: "m1",
		CacheHit: true, TextSealed: "sealed:" + id, PatientSealed: "psealed:" + patient,
		InteractionAlerts: 1,
	}
}

func event(action, patient, requestID string) audit.Event {
	return audit.Event{Actor: "dr-a", Role: "clinician", Action: action, Resource: "history",
		Patient: patient, RequestID: requestID, Outcome: audit.OutcomeOK}
}

// verify checks the whole chain and that it holds want events.
func verify(t *testing.T, s store.Store, want int64) {
	t.Helper()
	r, err := audit.Verify(context.Background(), s, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Events != want {
		t.Fatalf("verify = %+v; want OK with %d events", r, want)
	}
}

func history(t *testing.T, s store.Store, patients ...string) []store.QueryRecord {
	t.Helper()
	h, err := s.PatientHistory(context.Background(), patients, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func stored(t *testing.T, s store.Store) []audit.Event {
	t.Helper()
	var out []audit.Event
	err := s.Range(context.Background(), 1, 1<<62, func(e audit.Event) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameQuery compares records with the JSON columns compared as JSON
// documents: PostgreSQL keeps them as jsonb, which normalises spelling.
func sameQuery(t *testing.T, got, want store.QueryRecord) {
	t.Helper()
	for _, pair := range [][2]string{{got.FindingsJSON, want.FindingsJSON}, {got.DifferentialJSON, want.DifferentialJSON}} {
		var a, b any
		if json.Unmarshal([]byte(pair[0]), &a) != nil || json.Unmarshal([]byte(pair[1]), &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("JSON round trip: got %s, want %s", pair[0], pair[1])
		}
	}
	got.FindingsJSON, got.DifferentialJSON = want.FindingsJSON, want.DifferentialJSON
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func testWriteChains(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	e1 := event("inference", "p1", "r1")
	e1.Actor = ""                                   // becomes anonymous
	e1.Time = base.Add(1500 * time.Nanosecond)      // sub-µs: truncated before hashing
	e1.Time = e1.Time.In(time.FixedZone("X", 3600)) // kept as the same instant, in UTC
	e2 := event("patient.history.read", "p1", "r1")
	e2.Outcome = audit.OutcomeDenied // zero Time: set to now
	in := []audit.Event{e1, e2}
	before := time.Now().UTC().Truncate(time.Microsecond)
	got, err := s.Write(ctx, store.Batch{Source: "a", Through: 2,
		Queries: []store.QueryRecord{Query("r1", "p1", base)}, Events: in})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("Write returned %d events, want 2", len(got))
	}
	if in[0].Seq != 0 || in[0].Actor != "" {
		t.Error("Write modified the caller's events")
	}
	prev := audit.Genesis
	for i, e := range got {
		if e.Seq != int64(i+1) || e.Prev != prev || e.Hash != e.ComputeHash() {
			t.Fatalf("event %d chained as seq %d prev %.8s hash %.8s", i, e.Seq, e.Prev, e.Hash)
		}
		prev = e.Hash
	}
	if !got[0].Time.Equal(base.Add(time.Microsecond)) || got[0].Time.Location() != time.UTC || got[0].Actor != "anonymous" {
		t.Errorf("event 1 normalised to time %v actor %q", got[0].Time, got[0].Actor)
	}
	if got[1].Time.Before(before) || got[1].Time.After(time.Now()) {
		t.Errorf("zero time became %v, want about now", got[1].Time)
	}
	if seq, hash, err := s.Head(ctx); err != nil || seq != 2 || hash != got[1].Hash {
		t.Fatalf("head = %d %.8s, %v; want 2 %.8s", seq, hash, err, got[1].Hash)
	}
	if st := stored(t, s); !reflect.DeepEqual(st, got) {
		t.Fatalf("stored events differ from returned:\n got %+v\nwant %+v", st, got)
	}

	// The next batch continues the chain.
	more, err := s.Write(ctx, store.Batch{Source: "a", Through: 3, Events: []audit.Event{event("inference", "", "r2")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(more) != 1 || more[0].Seq != 3 || more[0].Prev != got[1].Hash {
		t.Fatalf("second batch chained as %+v", more)
	}
	// An empty batch without a source changes nothing.
	if evs, err := s.Write(ctx, store.Batch{}); err != nil || len(evs) != 0 {
		t.Fatalf("empty batch: %v, %v", evs, err)
	}
	verify(t, s, 3)
	if h := history(t, s, "p1"); len(h) != 1 {
		t.Fatalf("history has %d queries, want 1", len(h))
	}
}

func testWriteAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	good, err := s.Write(ctx, store.Batch{Source: "s", Through: 1,
		Queries: []store.QueryRecord{Query("ok", "p", now)}, Events: []audit.Event{event("inference", "p", "ok")}})
	if err != nil {
		t.Fatal(err)
	}
	badJSON := Query("bad-json", "p", now)
	badJSON.FindingsJSON = "{nope"
	tests := []struct {
		name    string
		queries []store.QueryRecord
		events  []audit.Event
	}{
		{"invalid outcome", nil, []audit.Event{event("inference", "p", "x"), {Action: "inference", Outcome: "maybe"}}},
		{"no action", nil, []audit.Event{event("inference", "p", "x"), {Action: " ", Outcome: audit.OutcomeOK}}},
		{"query without request id", []store.QueryRecord{{PatientPseudonym: "p", Time: now}}, nil},
		// Passes validation; the database refuses it after the first query
		// is in, so the transaction must roll back what it already did.
		{"invalid findings JSON", []store.QueryRecord{Query("q3", "p", now), badJSON}, []audit.Event{event("inference", "p", "x")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := s.Write(ctx, store.Batch{Source: "s", Through: 9, Queries: tc.queries, Events: tc.events})
			if err == nil {
				t.Fatalf("accepted, stored %+v", evs)
			}
			if seq, hash, err := s.Head(ctx); err != nil || seq != 1 || hash != good[0].Hash {
				t.Fatalf("head moved to %d, %v", seq, err)
			}
			if h := history(t, s, "p"); len(h) != 1 {
				t.Fatalf("history has %d queries after a failed batch, want 1", len(h))
			}
			if p, err := s.Progress(ctx, "s"); err != nil || p != 1 {
				t.Fatalf("progress = %d, %v after a failed batch; want 1", p, err)
			}
		})
	}
	verify(t, s, 1)
}

func testWriteReplay(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	original := Query("r0", "p", now.Add(-time.Minute))
	if err := s.SaveQuery(ctx, original); err != nil {
		t.Fatal(err)
	}
	clash := Query("r0", "p", now)
	clash.Domain = "neuro"
	b := store.Batch{Source: "s", Through: 5,
		Queries: []store.QueryRecord{Query("r1", "p", now), Query("r2", "p", now), Query("r1", "p", now), clash},
		Events:  []audit.Event{event("inference", "p", "r1")}}
	for i := 0; i < 2; i++ {
		if _, err := s.Write(ctx, b); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	h := history(t, s, "p")
	if len(h) != 3 {
		t.Fatalf("history has %d queries after a replay, want 3", len(h))
	}
	for _, q := range h {
		if q.RequestID == "r0" {
			sameQuery(t, q, original) // the stored record wins over the replayed one
		}
	}
	if p, err := s.Progress(ctx, "s"); err != nil || p != 5 {
		t.Fatalf("progress = %d, %v; want 5", p, err)
	}
	// Events are not deduplicated (they have no identity before chaining):
	// the progress written in the same transaction is what keeps the
	// recorder from replaying a batch that was stored.
	seq, _, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, s, seq)
}

func testWriteInterleavedWithAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	chain := audit.NewChain(s, nil)
	const writes, perWrite, appends = 20, 5, 50
	var wg sync.WaitGroup
	errs := make(chan error, writes+appends)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < writes; i++ {
			b := store.Batch{Source: "w", Through: int64(i + 1),
				Queries: []store.QueryRecord{Query(fmt.Sprintf("w%d", i), "p", time.Now())}}
			for j := 0; j < perWrite; j++ {
				b.Events = append(b.Events, event("inference", "p", fmt.Sprintf("w%d", i)))
			}
			if _, err := s.Write(ctx, b); err != nil {
				errs <- err
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < appends; i++ {
			if _, err := chain.Append(ctx, event("patient.history.read", "p", fmt.Sprintf("a%d", i))); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	verify(t, s, writes*perWrite+appends)
}

func testWriteConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, writes, perWrite = 2, 25, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	var seqs []int64
	errs := make(chan error, writers*writes)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writes; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				b := store.Batch{Source: fmt.Sprintf("replica-%d", w), Through: int64(i + 1),
					Queries: []store.QueryRecord{Query(id, "p", time.Now())}}
				for j := 0; j < perWrite; j++ {
					b.Events = append(b.Events, event("inference", "p", id))
				}
				evs, err := s.Write(ctx, b)
				if err != nil {
					errs <- err
					continue
				}
				for j := 1; j < len(evs); j++ {
					if evs[j].Seq != evs[j-1].Seq+1 || evs[j].Prev != evs[j-1].Hash {
						errs <- fmt.Errorf("batch %s not contiguous: %d then %d", id, evs[j-1].Seq, evs[j].Seq)
					}
				}
				mu.Lock()
				for _, e := range evs {
					seqs = append(seqs, e.Seq)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = writers * writes * perWrite
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != int64(i+1) {
			t.Fatalf("returned seqs are not 1…%d: position %d holds %d", total, i, seq)
		}
	}
	verify(t, s, total)
	for w := 0; w < writers; w++ {
		if p, err := s.Progress(ctx, fmt.Sprintf("replica-%d", w)); err != nil || p != writes {
			t.Fatalf("progress of replica-%d = %d, %v; want %d", w, p, err, writes)
		}
	}
}

func testProgress(t *testing.T, s store.Store) {
	ctx := context.Background()
	steps := []struct {
		batch store.Batch
		want  map[string]int64
	}{
		{store.Batch{}, map[string]int64{"a": 0, "b": 0, "": 0}},
		// No entries, but how far the spool was read is still recorded.
		{store.Batch{Source: "a", Through: 7}, map[string]int64{"a": 7, "b": 0}},
		{store.Batch{Source: "b", Through: 3, Events: []audit.Event{event("inference", "", "")}}, map[string]int64{"a": 7, "b": 3}},
		// No source: nothing to record.
		{store.Batch{Through: 99, Events: []audit.Event{event("inference", "", "")}}, map[string]int64{"a": 7, "b": 3, "": 0}},
		{store.Batch{Source: "a", Through: 12, Queries: []store.QueryRecord{Query("r", "p", time.Now())}}, map[string]int64{"a": 12, "b": 3}},
	}
	for i, st := range steps {
		if _, err := s.Write(ctx, st.batch); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		for src, want := range st.want {
			if got, err := s.Progress(ctx, src); err != nil || got != want {
				t.Fatalf("step %d: Progress(%q) = %d, %v; want %d", i, src, got, err, want)
			}
		}
	}
}

// auditFixture writes 30 varied events an hour apart and returns them as stored.
func auditFixture(t *testing.T, s store.Store) []audit.Event {
	t.Helper()
	base := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	var in []audit.Event
	for i := 0; i < 30; i++ {
		e := audit.Event{
			Time:      base.Add(time.Duration(i) * time.Hour),
			Actor:     []string{"alice", "bob", "carol"}[i%3],
			Role:      "clinician",
			Action:    []string{"inference", "patient.history.read"}[i%2],
			Patient:   []string{"p1", "p2", "", "p3", ""}[i%5],
			RequestID: fmt.Sprintf("r%d", i/2),
			Outcome:   []string{audit.OutcomeOK, audit.OutcomeOK, audit.OutcomeDenied, audit.OutcomeError}[i%4],
		}
		in = append(in, e)
	}
	evs, err := s.Write(context.Background(), store.Batch{Events: in})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// matches is the reference meaning of an AuditFilter (without the limit).
func matches(f store.AuditFilter, e audit.Event) bool {
	return (f.Actor == "" || e.Actor == f.Actor) &&
		(f.Action == "" || e.Action == f.Action) &&
		(f.RequestID == "" || e.RequestID == f.RequestID) &&
		(f.Outcome == "" || e.Outcome == f.Outcome) &&
		(len(f.Patients) == 0 || (e.Patient != "" && slices.Contains(f.Patients, e.Patient))) &&
		(f.From.IsZero() || !e.Time.Before(f.From)) &&
		(f.To.IsZero() || e.Time.Before(f.To)) &&
		e.Seq > f.AfterSeq
}

func testAuditEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	all := auditFixture(t, s)
	at := func(i int) time.Time { return all[i].Time }
	tests := []struct {
		name string
		f    store.AuditFilter
		n    int // expected matches, to keep the fixture honest
	}{
		{"none", store.AuditFilter{}, 30},
		{"actor", store.AuditFilter{Actor: "bob"}, 10},
		{"action", store.AuditFilter{Action: "inference"}, 15},
		{"request id", store.AuditFilter{RequestID: "r4"}, 2},
		{"outcome", store.AuditFilter{Outcome: audit.OutcomeDenied}, 7},
		{"one patient", store.AuditFilter{Patients: []string{"p2"}}, 6},
		{"rotated patient", store.AuditFilter{Patients: []string{"p1", "p3", "unknown"}}, 12},
		{"from", store.AuditFilter{From: at(20)}, 10},
		{"to", store.AuditFilter{To: at(5)}, 5},
		{"from to", store.AuditFilter{From: at(3), To: at(9)}, 6},
		{"sub-µs bounds", store.AuditFilter{From: at(3).Add(-time.Nanosecond), To: at(9).Add(time.Nanosecond)}, 7},
		{"after seq", store.AuditFilter{AfterSeq: 25}, 5},
		{"combined", store.AuditFilter{Actor: "alice", Action: "patient.history.read", Patients: []string{"p1", "p2", "p3"}, From: at(1)}, 3},
		{"limit", store.AuditFilter{Action: "inference", Limit: 4}, 4},
		{"nothing", store.AuditFilter{Actor: "mallory"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []audit.Event
			for _, e := range all {
				if matches(tc.f, e) {
					want = append(want, e)
				}
			}
			want = want[:min(len(want), store.AuditLimit(tc.f.Limit))]
			got, err := s.AuditEvents(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n || len(want) != tc.n {
				t.Fatalf("%d events (reference %d), want %d", len(got), len(want), tc.n)
			}
			if len(got) > 0 && !reflect.DeepEqual(got, want) {
				t.Fatalf("got seqs %v, want %v", seqsOf(got), seqsOf(want))
			}
		})
	}
}

func seqsOf(es []audit.Event) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func testAuditEventsPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	all := auditFixture(t, s)
	for _, f := range []store.AuditFilter{{Limit: 7}, {Limit: 1, Outcome: audit.OutcomeOK}, {Limit: 30}} {
		var got []audit.Event
		for pages := 0; ; pages++ {
			if pages > 40 {
				t.Fatal("paging does not end")
			}
			page, err := s.AuditEvents(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > f.Limit {
				t.Fatalf("page of %d events, limit %d", len(page), f.Limit)
			}
			got = append(got, page...)
			if len(page) < f.Limit {
				break
			}
			f.AfterSeq = page[len(page)-1].Seq
		}
		var want []audit.Event
		for _, e := range all {
			if f.Outcome == "" || e.Outcome == f.Outcome {
				want = append(want, e)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("paged with limit %d: seqs %v, want %v", f.Limit, seqsOf(got), seqsOf(want))
		}
	}
	// A huge limit is capped rather than refused.
	if got, err := s.AuditEvents(ctx, store.AuditFilter{Limit: 1 << 30}); err != nil || len(got) != len(all) {
		t.Fatalf("huge limit: %d events, %v", len(got), err)
	}
}

func testDeleteQueriesBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	cutoff := now.Add(-24 * time.Hour)
	qs := []store.QueryRecord{
		Query("old1", "p", now.Add(-10*24*time.Hour)),
		Query("old2", "p2", cutoff.Add(-time.Microsecond)),
		Query("edge", "p", cutoff), // not before the cutoff: kept
		Query("new", "p", now.Add(-time.Hour)),
	}
	var events []audit.Event
	for _, q := range qs {
		events = append(events, event("inference", q.PatientPseudonym, q.RequestID))
	}
	if _, err := s.Write(ctx, store.Batch{Queries: qs, Events: events}); err != nil {
		t.Fatal(err)
	}
	eff := 0.5
	for _, id := range []string{"old1", "new"} {
		if err := s.SaveFeedback(ctx, store.Feedback{RequestID: id, TrueAcuity: 2, TreatmentEffectiveness: &eff, Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	seq, hash, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}

	n, err := s.DeleteQueriesBefore(ctx, cutoff)
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want 2", n, err)
	}
	var ids []string
	for _, q := range history(t, s, "p", "p2") {
		ids = append(ids, q.RequestID)
	}
	if want := []string{"new", "edge"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("history after retention = %v, want %v", ids, want)
	}
	if err := s.SaveFeedback(ctx, store.Feedback{RequestID: "old1", Time: now}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("feedback for a deleted query: %v, want ErrNotFound", err)
	}
	if err := s.SaveFeedback(ctx, store.Feedback{RequestID: "new", Time: now}); err != nil {
		t.Fatalf("feedback for a kept query: %v", err)
	}
	// The audit trail outlives the records it describes.
	if s2, h2, err := s.Head(ctx); err != nil || s2 != seq || h2 != hash {
		t.Fatalf("head after retention = %d, %v; want %d", s2, err, seq)
	}
	verify(t, s, seq)
	if got, err := s.AuditEvents(ctx, store.AuditFilter{RequestID: "old1"}); err != nil || len(got) != 1 {
		t.Fatalf("audit events of a deleted query: %d, %v", len(got), err)
	}
	if n, err := s.DeleteQueriesBefore(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("second pass deleted %d, %v; want 0", n, err)
	}
	// A query saved again under a deleted request id is a new record.
	if err := s.SaveQuery(ctx, Query("old1", "p", now)); err != nil {
		t.Fatal(err)
	}
}

func testCache(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	get := func(key string, at time.Time) ([]byte, bool) {
		t.Helper()
		v, ok, err := s.CacheGet(ctx, key, at)
		if err != nil {
			t.Fatal(err)
		}
		return v, ok
	}
	put := func(key string, val []byte, expires time.Time) {
		t.Helper()
		if err := s.CachePut(ctx, key, "inference", val, expires); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := get("k1", now); ok {
		t.Fatal("hit on an empty cache")
	}
	put("k1", []byte("v1\x00\xff"), now.Add(time.Hour))
	if v, ok := get("k1", now); !ok || !bytes.Equal(v, []byte("v1\x00\xff")) {
		t.Fatalf("get k1 = %q, %v", v, ok)
	}
	if _, ok := get("k1", now.Add(time.Hour)); ok {
		t.Fatal("hit at the expiry instant")
	}
	put("k1", []byte("v2"), now.Add(2*time.Hour)) // replaces value and expiry
	if v, ok := get("k1", now.Add(90*time.Minute)); !ok || string(v) != "v2" {
		t.Fatalf("get replaced k1 = %q, %v", v, ok)
	}
	put("empty", nil, now.Add(time.Hour))
	if v, ok := get("empty", now); !ok || len(v) != 0 {
		t.Fatalf("get empty = %q, %v", v, ok)
	}
	put("stale", []byte("x"), now.Add(-time.Second))
	if _, ok := get("stale", now); ok {
		t.Fatal("hit on an expired entry")
	}

	sweep := func(at time.Time, want int64) {
		t.Helper()
		if n, err := s.CacheSweep(ctx, at); err != nil || n != want {
			t.Fatalf("sweep at %v = %d, %v; want %d", at.Sub(now), n, err, want)
		}
	}
	sweep(now, 1) // stale
	if _, ok := get("k1", now); !ok {
		t.Fatal("sweep removed a live entry")
	}
	sweep(now.Add(time.Hour), 1) // empty, at its expiry instant
	sweep(now.Add(3*time.Hour), 1)
	sweep(now.Add(3*time.Hour), 0)
	if _, ok := get("k1", now); ok {
		t.Fatal("swept entry still served")
	}
}

func testSingleton(t *testing.T, s store.Store) {
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	type result struct {
		ran bool
		err error
	}
	first := make(chan result, 1)
	go func() {
		ran, err := s.Singleton(ctx, "retention", func(ctx context.Context) error {
			close(started)
			<-release
			return nil
		})
		first <- result{ran, err}
	}()
	<-started
	ran, err := s.Singleton(ctx, "retention", func(ctx context.Context) error {
		t.Error("second run of a held job")
		return nil
	})
	if ran || err != nil {
		t.Fatalf("held job: ran %v, %v; want false, nil", ran, err)
	}
	// Another job is not excluded.
	if ran, err := s.Singleton(ctx, "views", func(ctx context.Context) error { return nil }); !ran || err != nil {
		t.Fatalf("other job: ran %v, %v", ran, err)
	}
	close(release)
	if r := <-first; !r.ran || r.err != nil {
		t.Fatalf("first run: ran %v, %v", r.ran, r.err)
	}
	// Released: it runs again, and fn's error is returned.
	boom := errors.New("boom")
	if ran, err := s.Singleton(ctx, "retention", func(ctx context.Context) error { return boom }); !ran || !errors.Is(err, boom) {
		t.Fatalf("after release: ran %v, %v; want true, boom", ran, err)
	}
	if ran, err := s.Singleton(ctx, "retention", func(ctx context.Context) error { return nil }); !ran || err != nil {
		t.Fatalf("after a failed run: ran %v, %v", ran, err)
	}
}

func testPatientSealed(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	saved := Query("saved", "p", now.Add(-time.Minute))
	written := Query("written", "p", now)
	written.PatientSealed = "v1:sealed-bytes+/="
	unsealed := Query("unsealed", "p", now.Add(-2*time.Minute))
	unsealed.PatientSealed = ""
	if err := s.SaveQuery(ctx, saved); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveQuery(ctx, unsealed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, store.Batch{Queries: []store.QueryRecord{written}}); err != nil {
		t.Fatal(err)
	}
	h := history(t, s, "p")
	if len(h) != 3 {
		t.Fatalf("history has %d queries, want 3", len(h))
	}
	for i, want := range []store.QueryRecord{written, saved, unsealed} {
		sameQuery(t, h[i], want)
	}
}

// A query asked without a patient identifier is kept (it counts for
// analytics and for the compliance reconciliation) and joins no history.
func testQueryWithoutPatient(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	anon := Query("anon", "", now)
	anon.PatientSealed = ""
	if _, err := s.Write(ctx, store.Batch{Queries: []store.QueryRecord{anon}}); err != nil {
		t.Fatalf("write a query without a patient: %v", err)
	}
	if err := s.SaveQuery(ctx, Query("anon2", "", now)); err != nil {
		t.Fatalf("save a query without a patient: %v", err)
	}
	if h := history(t, s, "p"); len(h) != 0 {
		t.Fatalf("an anonymous query joined patient p's history: %d rows", len(h))
	}
	if n, err := s.DeleteQueriesBefore(ctx, now.Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("the anonymous queries were not stored: deleted %d, %v", n, err)
	}
}

func testRefreshViews(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.SaveQuery(ctx, Query("r", "p", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}
}

// apiKey returns a complete key record created at the given time.
func apiKey(id, role string, at time.Time) store.APIKey {
	return store.APIKey{ID: id, SecretHash: "hash-of-" + id, Role: role, Name: "label " + id,
		Limits: "inference=600/min burst 100", CreatedAt: at.UTC().Truncate(time.Microsecond)}
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	if ks, err := s.ListAPIKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("empty store lists %d keys, %v", len(ks), err)
	}
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	// Created out of order; the list is by creation time, then id.
	want := []store.APIKey{
		apiKey("ka", "admin", base),
		apiKey("kb", "clinician", base.Add(time.Second)),
		apiKey("kc", "service", base.Add(time.Second)), // same instant as kb
		apiKey("kd", "auditor", base.Add(time.Minute)),
	}
	want[0].Name, want[0].Limits = "", "" // the defaults round-trip too
	for _, i := range []int{3, 1, 0, 2} {
		if err := s.CreateAPIKey(ctx, want[i]); err != nil {
			t.Fatalf("create %s: %v", want[i].ID, err)
		}
	}
	dup := apiKey("kb", "admin", base.Add(time.Hour))
	dup.SecretHash = "another"
	if err := s.CreateAPIKey(ctx, dup); err == nil {
		t.Fatal("a duplicate id was accepted")
	}
	got, err := s.APIKey(ctx, "kb")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want[1]) {
		t.Fatalf("get kb (after a refused duplicate):\n got %+v\nwant %+v", got, want[1])
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
	}
	if _, err := s.APIKey(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get an unknown key: %v, want ErrNotFound", err)
	}
	list, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(list, want) {
		t.Fatalf("list:\n got %+v\nwant %+v", list, want)
	}

	// A zero CreatedAt becomes the time of creation.
	before := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateAPIKey(ctx, store.APIKey{ID: "know", SecretHash: "h", Role: "service"}); err != nil {
		t.Fatal(err)
	}
	if k, err := s.APIKey(ctx, "know"); err != nil || k.CreatedAt.Before(before) || k.CreatedAt.After(time.Now()) {
		t.Fatalf("zero CreatedAt stored as %v (%v); want about now", k.CreatedAt, err)
	}
}

func testAPIKeyRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	for _, k := range []store.APIKey{apiKey("k1", "service", base), apiKey("k2", "service", base.Add(time.Second))} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	first := base.Add(10*time.Minute + 1500*time.Nanosecond) // sub-µs: truncated
	if err := s.RevokeAPIKey(ctx, "k1", first); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, "k1", base.Add(20*time.Minute)); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	k, err := s.APIKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if want := first.Truncate(time.Microsecond); k.RevokedAt == nil || !k.RevokedAt.Equal(want) || k.RevokedAt.Location() != time.UTC {
		t.Fatalf("revoked at %v, want the first revocation %v (UTC)", k.RevokedAt, want)
	}
	if k, err := s.APIKey(ctx, "k2"); err != nil || k.RevokedAt != nil {
		t.Fatalf("revoking k1 touched k2: %+v, %v", k, err)
	}
	if err := s.RevokeAPIKey(ctx, "nope", base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke an unknown key: %v, want ErrNotFound", err)
	}
	list, err := s.ListAPIKeys(ctx)
	if err != nil || len(list) != 2 || list[0].RevokedAt == nil || list[1].RevokedAt != nil {
		t.Fatalf("list after revoke: %+v, %v", list, err)
	}
	// A key created revoked (restored from elsewhere) keeps its time.
	pre := apiKey("k3", "auditor", base.Add(time.Minute))
	at := base.Add(2 * time.Minute)
	pre.RevokedAt = &at
	if err := s.CreateAPIKey(ctx, pre); err != nil {
		t.Fatal(err)
	}
	if k, err := s.APIKey(ctx, "k3"); err != nil || !reflect.DeepEqual(k, pre) {
		t.Fatalf("created revoked: %+v, %v; want %+v", k, err, pre)
	}
}

func testAPIKeyBadRole(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	for _, role := range []string{"", "root", "Admin", "admin "} {
		if err := s.CreateAPIKey(ctx, apiKey("k-"+role, role, now)); err == nil {
			t.Errorf("role %q accepted", role)
		}
	}
	if err := s.CreateAPIKey(ctx, store.APIKey{ID: "", SecretHash: "h", Role: "admin", CreatedAt: now}); err == nil {
		t.Error("an empty id was accepted")
	}
	if err := s.CreateAPIKey(ctx, store.APIKey{ID: "k", SecretHash: "", Role: "admin", CreatedAt: now}); err == nil {
		t.Error("an empty secret hash was accepted")
	}
	if ks, err := s.ListAPIKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("refused keys were stored: %+v, %v", ks, err)
	}
}

// modelVersion returns a complete registry record for name's version,
// created at the given time.
func modelVersion(name, version string, at time.Time) store.ModelRecord {
	return store.ModelRecord{Name: name, Version: version, Path: name + "/" + version,
		SHA256: "sha-" + name + "-" + version, Stage: "candidate", CreatedAt: at.UTC().Truncate(time.Microsecond)}
}

// register registers ms and fails the test on an error.
func register(t *testing.T, s store.Store, ms ...store.ModelRecord) {
	t.Helper()
	for _, m := range ms {
		if _, err := s.RegisterModel(context.Background(), m); err != nil {
			t.Fatalf("register %s %s: %v", m.Name, m.Version, err)
		}
	}
}

// stagesOf maps each of name's versions to its stage, with a canary's percent ("canary 10").
func stagesOf(t *testing.T, s store.Store, name string) map[string]string {
	t.Helper()
	ms, err := s.Models(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Version] = m.Stage
		if m.Percent != 0 || m.Stage == "canary" {
			out[m.Version] = fmt.Sprintf("%s %d", m.Stage, m.Percent)
		}
	}
	return out
}

func promotions(t *testing.T, s store.Store, name string) []store.Promotion {
	t.Helper()
	ps, err := s.Promotions(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func testRegisterModel(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	in := modelVersion("triage", "1", base)
	// Sub-µs: truncated; another zone: returned in UTC.
	in.CreatedAt = base.Add(1500 * time.Nanosecond).In(time.FixedZone("X", 3600))
	// A new version is a candidate whatever it says; Validated is kept.
	in.Stage, in.Percent, in.Validated = "production", 30, true
	got, err := s.RegisterModel(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := store.ModelRecord{Name: "triage", Version: "1", Path: "triage/1", SHA256: "sha-triage-1",
		Stage: "candidate", Validated: true, CreatedAt: base.Add(time.Microsecond)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("register:\n got %+v\nwant %+v", got, want)
	}

	// Idempotent: registering it again returns the stored record, and a
	// version that moved on keeps its stage.
	if err := s.SetStage(ctx, "triage", "1", "shadow", 0, "ops", "shadow it", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	again := modelVersion("triage", "1", base.Add(time.Hour))
	again.Path = "elsewhere"
	got, err = s.RegisterModel(ctx, again)
	if err != nil {
		t.Fatalf("registering a stored version again: %v", err)
	}
	want.Stage = "shadow"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("register again:\n got %+v\nwant %+v", got, want)
	}

	// A version's files never change: another SHA-256 is an error, and the
	// stored record stays as it was.
	changed := modelVersion("triage", "1", base)
	changed.SHA256 = "sha-of-other-files"
	if _, err := s.RegisterModel(ctx, changed); err == nil {
		t.Fatal("a changed SHA-256 for a stored version was accepted")
	}
	if ms, err := s.Models(ctx, "triage"); err != nil || len(ms) != 1 || !reflect.DeepEqual(ms[0], want) {
		t.Fatalf("after a refused registration: %+v, %v; want [%+v]", ms, err, want)
	}

	// The same version of another name is another model.
	other, err := s.RegisterModel(ctx, modelVersion("sepsis", "1", base))
	if err != nil || other.Name != "sepsis" || other.Stage != "candidate" || other.Validated {
		t.Fatalf("register sepsis 1: %+v, %v", other, err)
	}

	// A zero CreatedAt becomes the time of registration.
	before := time.Now().UTC().Truncate(time.Microsecond)
	now := modelVersion("triage", "2", time.Time{})
	now.CreatedAt = time.Time{}
	if m, err := s.RegisterModel(ctx, now); err != nil || m.CreatedAt.Before(before) || m.CreatedAt.After(time.Now()) ||
		m.CreatedAt.Location() != time.UTC {
		t.Fatalf("zero CreatedAt stored as %v (%v); want about now, in UTC", m.CreatedAt, err)
	}

	for _, bad := range []store.ModelRecord{
		{Version: "9", Path: "p", SHA256: "s"},
		{Name: "triage", Path: "p", SHA256: "s"},
		{Name: "triage", Version: "9", Path: "p"},
	} {
		if _, err := s.RegisterModel(ctx, bad); err == nil {
			t.Errorf("incomplete record %+v accepted", bad)
		}
	}
	if ms, err := s.Models(ctx, "triage"); err != nil || len(ms) != 2 {
		t.Fatalf("triage has %d versions (%v), want 2", len(ms), err)
	}
}

func testModelsOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	if ms, err := s.Models(ctx, "triage"); err != nil || len(ms) != 0 {
		t.Fatalf("empty registry lists %d versions, %v", len(ms), err)
	}
	if ps, err := s.Promotions(ctx, "triage"); err != nil || len(ps) != 0 {
		t.Fatalf("empty registry lists %d promotions, %v", len(ps), err)
	}
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	// Registered out of order; the list is by creation time, then by
	// registration (10 and 9 share an instant: 10 was registered first).
	want := []store.ModelRecord{
		modelVersion("triage", "2", base),
		modelVersion("triage", "10", base.Add(time.Second)),
		modelVersion("triage", "9", base.Add(time.Second)),
		modelVersion("triage", "1", base.Add(time.Minute)),
	}
	want[2].Validated = true
	register(t, s, want[3], want[1], modelVersion("sepsis", "1", base), want[0], want[2])
	got, err := s.Models(ctx, "triage")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("models:\n got %+v\nwant %+v", got, want)
	}
	if got[0].CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt in %v, want UTC", got[0].CreatedAt.Location())
	}
}

func testSetStageProduction(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	register(t, s, modelVersion("triage", "1", base), modelVersion("triage", "2", base.Add(time.Second)),
		modelVersion("sepsis", "1", base))
	t1 := base.Add(time.Minute + 1500*time.Nanosecond) // sub-µs: truncated
	if err := s.SetStage(ctx, "triage", "1", "production", 0, "dr-ops", "first release", t1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStage(ctx, "sepsis", "1", "production", 0, "dr-ops", "", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	t2 := base.Add(2 * time.Minute)
	if err := s.SetStage(ctx, "triage", "2", "production", 0, "dr-lead", "passed the gate", t2.In(time.FixedZone("X", 3600))); err != nil {
		t.Fatal(err)
	}
	if got, want := stagesOf(t, s, "triage"), map[string]string{"1": "retired", "2": "production"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("stages = %v, want %v", got, want)
	}
	// Another name's production is its own.
	if got := stagesOf(t, s, "sepsis"); got["1"] != "production" {
		t.Fatalf("promoting triage moved sepsis: %v", got)
	}
	t1 = t1.Truncate(time.Microsecond)
	want := []store.Promotion{
		{Name: "triage", Version: "1", From: "candidate", To: "production", Actor: "dr-ops", Reason: "first release", Time: t1},
		{Name: "triage", Version: "1", From: "production", To: "retired", Actor: "dr-lead", Reason: "replaced by 2: passed the gate", Time: t2},
		{Name: "triage", Version: "2", From: "candidate", To: "production", Actor: "dr-lead", Reason: "passed the gate", Time: t2},
	}
	got := promotions(t, s, "triage")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("promotions:\n got %+v\nwant %+v", got, want)
	}
	if got[0].Time.Location() != time.UTC {
		t.Errorf("promotion time in %v, want UTC", got[0].Time.Location())
	}

	// Rolling back is one more promotion, retiring the version it replaces.
	t3 := base.Add(3 * time.Minute)
	if err := s.SetStage(ctx, "triage", "1", "production", 0, "dr-lead", "", t3); err != nil {
		t.Fatal(err)
	}
	if got, want := stagesOf(t, s, "triage"), map[string]string{"1": "production", "2": "retired"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after rollback: stages = %v, want %v", got, want)
	}
	want = append(want,
		store.Promotion{Name: "triage", Version: "2", From: "production", To: "retired", Actor: "dr-lead", Reason: "replaced by 1", Time: t3},
		store.Promotion{Name: "triage", Version: "1", From: "retired", To: "production", Actor: "dr-lead", Time: t3})
	if got := promotions(t, s, "triage"); !reflect.DeepEqual(got, want) {
		t.Fatalf("promotions after rollback:\n got %+v\nwant %+v", got, want)
	}

	// Asking for the stage a version is in already changes and records nothing.
	if err := s.SetStage(ctx, "triage", "1", "production", 0, "dr-lead", "again", t3.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := promotions(t, s, "triage"); len(got) != len(want) {
		t.Fatalf("a no-op SetStage was recorded: %+v", got[len(want):])
	}
	// Retiring the production version leaves none.
	if err := s.SetStage(ctx, "triage", "1", "retired", 0, "dr-lead", "recall", t3.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := stagesOf(t, s, "triage"), map[string]string{"1": "retired", "2": "retired"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after retiring: stages = %v, want %v", got, want)
	}
}

func testSetStageCanaryShadow(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	register(t, s, modelVersion("triage", "1", base), modelVersion("triage", "2", base.Add(time.Second)),
		modelVersion("triage", "3", base.Add(2*time.Second)), modelVersion("triage", "4", base.Add(3*time.Second)))
	at := base.Add(time.Minute)
	step := func(version, stage string, percent int, want map[string]string) {
		t.Helper()
		at = at.Add(time.Second)
		if err := s.SetStage(ctx, "triage", version, stage, percent, "ops", "step", at); err != nil {
			t.Fatalf("%s to %s %d: %v", version, stage, percent, err)
		}
		if got := stagesOf(t, s, "triage"); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s to %s %d: stages = %v, want %v", version, stage, percent, got, want)
		}
	}
	step("1", "production", 0, map[string]string{"1": "production", "2": "candidate", "3": "candidate", "4": "candidate"})
	step("2", "canary", 10, map[string]string{"1": "production", "2": "canary 10", "3": "candidate", "4": "candidate"})
	step("2", "canary", 50, map[string]string{"1": "production", "2": "canary 50", "3": "candidate", "4": "candidate"})
	step("3", "shadow", 0, map[string]string{"1": "production", "2": "canary 50", "3": "shadow", "4": "candidate"})
	// A second canary replaces the first, and a second shadow the first.
	step("4", "canary", 5, map[string]string{"1": "production", "2": "retired", "3": "shadow", "4": "canary 5"})
	step("2", "shadow", 0, map[string]string{"1": "production", "2": "shadow", "3": "retired", "4": "canary 5"})
	// A canary promoted to production leaves its percent behind.
	step("4", "production", 0, map[string]string{"1": "retired", "2": "shadow", "3": "retired", "4": "production"})
	// A canary may start at 0% (deployed, no traffic yet).
	step("3", "canary", 0, map[string]string{"1": "retired", "2": "shadow", "3": "canary 0", "4": "production"})

	type change struct {
		version, from, to string
		percent           int
	}
	var got []change
	for _, p := range promotions(t, s, "triage") {
		got = append(got, change{p.Version, p.From, p.To, p.Percent})
	}
	want := []change{
		{"1", "candidate", "production", 0},
		{"2", "candidate", "canary", 10},
		{"2", "canary", "canary", 50},
		{"3", "candidate", "shadow", 0},
		{"2", "canary", "retired", 0}, {"4", "candidate", "canary", 5},
		{"3", "shadow", "retired", 0}, {"2", "retired", "shadow", 0},
		{"1", "production", "retired", 0}, {"4", "canary", "production", 0},
		{"3", "retired", "canary", 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("promotions:\n got %v\nwant %v", got, want)
	}
}

func testSetStageNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	register(t, s, modelVersion("triage", "1", now))
	for _, c := range [][2]string{{"triage", "2"}, {"sepsis", "1"}, {"", ""}} {
		if err := s.SetStage(ctx, c[0], c[1], "production", 0, "ops", "", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetStage(%q, %q): %v, want ErrNotFound", c[0], c[1], err)
		}
	}
	if ps := promotions(t, s, "triage"); len(ps) != 0 {
		t.Fatalf("failed SetStage calls were recorded: %+v", ps)
	}
}

func testSetStageRejects(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	register(t, s, modelVersion("triage", "1", now))
	if err := s.SetStage(ctx, "triage", "1", "canary", 20, "ops", "", now); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stage   string
		percent int
	}{
		{"", 0}, {"registered", 0}, {"archived", 0}, {"Production", 0}, {"production ", 0},
		{"canary", -1}, {"canary", 101},
		{"production", 10}, {"shadow", 100}, {"candidate", 1}, {"retired", -1},
	} {
		if err := s.SetStage(ctx, "triage", "1", c.stage, c.percent, "ops", "", now); err == nil {
			t.Errorf("stage %q percent %d accepted", c.stage, c.percent)
		} else if errors.Is(err, store.ErrNotFound) {
			t.Errorf("stage %q percent %d: %v, want a validation error", c.stage, c.percent, err)
		}
	}
	// A bad request is rejected before the version is looked up.
	if err := s.SetStage(ctx, "triage", "9", "bogus", 0, "ops", "", now); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("bad stage for an unknown version: %v, want a validation error", err)
	}
	if got := stagesOf(t, s, "triage"); got["1"] != "canary 20" {
		t.Fatalf("rejected requests changed the version: %v", got)
	}
	if ps := promotions(t, s, "triage"); len(ps) != 1 {
		t.Fatalf("rejected requests were recorded: %+v", ps)
	}
}

// Replicas promoting at once: whatever order the calls run in, exactly one
// version ends in production, and the history replays to the stored stages.
func testSetStageConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	const n = 8
	for i := range n {
		register(t, s, modelVersion("triage", fmt.Sprint(i), base.Add(time.Duration(i)*time.Second)))
	}
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				at := base.Add(time.Duration(round+1) * time.Minute)
				errs <- s.SetStage(ctx, "triage", fmt.Sprint(i), "production", 0, fmt.Sprintf("replica-%d", i), "race", at)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		stages := stagesOf(t, s, "triage")
		var prod []string
		for v, st := range stages {
			if st == "production" {
				prod = append(prod, v)
			} else if st != "retired" {
				t.Errorf("round %d: version %s is %s", round, v, st)
			}
		}
		if len(prod) != 1 {
			t.Fatalf("round %d: %d versions in production: %v", round, len(prod), stages)
		}
		// Replaying the history gives the stored stages: no change was lost
		// or applied against a stale view.
		replay := map[string]string{}
		for i := range n {
			replay[fmt.Sprint(i)] = "candidate"
		}
		for _, p := range promotions(t, s, "triage") {
			if replay[p.Version] != p.From {
				t.Fatalf("round %d: history moves %s from %s, but it was %s", round, p.Version, p.From, replay[p.Version])
			}
			replay[p.Version] = p.To
		}
		if !reflect.DeepEqual(replay, stages) {
			t.Fatalf("round %d: history replays to %v, stored %v", round, replay, stages)
		}
	}
}

// sameJSON reports whether a and b are equal JSON documents (PostgreSQL
// keeps documents as jsonb, which normalises their spelling).
func sameJSON(a, b string) bool {
	var va, vb any
	return json.Unmarshal([]byte(a), &va) == nil && json.Unmarshal([]byte(b), &vb) == nil && reflect.DeepEqual(va, vb)
}

func boolPtr(b bool) *bool { return &b }

func outcomes(t *testing.T, s store.Store, since time.Time) []store.Outcome {
	t.Helper()
	got, err := s.Outcomes(context.Background(), since)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// sameOutcomes compares outcome lists with the findings compared as JSON.
func sameOutcomes(t *testing.T, got, want []store.Outcome) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d outcomes, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		g := got[i]
		if !sameJSON(g.FindingsJSON, want[i].FindingsJSON) {
			t.Fatalf("outcome %d findings %s, want %s", i, g.FindingsJSON, want[i].FindingsJSON)
		}
		g.FindingsJSON = want[i].FindingsJSON
		if !reflect.DeepEqual(g, want[i]) {
			t.Fatalf("outcome %d:\n got %+v\nwant %+v", i, g, want[i])
		}
		if g.AnsweredAt.Location() != time.UTC || g.FeedbackAt.Location() != time.UTC {
			t.Fatalf("outcome %d times not in UTC: %v, %v", i, g.AnsweredAt, g.FeedbackAt)
		}
	}
}

func testOutcomes(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	since := base.Add(10 * time.Minute)
	q1 := Query("q1", "p", base)
	q1.InteractionAlerts, q1.ModelVersion, q1.Acuity = 2, "triage/1", 2
	q2 := Query("q2", "p", base.Add(time.Minute))
	q2.InteractionAlerts, q2.Domain, q2.DifferentialJSON = 0, "neuro", "" // no differential: no top diagnosis
	q3 := Query("q3", "p", base.Add(2*time.Minute))                       // no feedback: no outcome
	q4 := Query("q4", "p", base.Add(3*time.Minute))                       // feedback before the window
	q5 := Query("q5", "", base.Add(4*time.Minute))                        // written by the recorder
	q5.ModelVersion = "triage/2"
	for _, q := range []store.QueryRecord{q1, q2, q3, q4} {
		if err := s.SaveQuery(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Write(ctx, store.Batch{Queries: []store.QueryRecord{q5}}); err != nil {
		t.Fatal(err)
	}
	feedback := []store.Feedback{
		{RequestID: "q4", TrueAcuity: 4, InteractionConfirmed: boolPtr(true), Time: since.Add(-time.Microsecond)},
		{RequestID: "q1", TrueAcuity: 3, ConfirmedDiagnosis: "I20.0", InteractionConfirmed: boolPtr(false), Time: since},
		{RequestID: "q2", TrueAcuity: 2, ConfirmedDiagnosis: "G45.9", InteractionConfirmed: boolPtr(false), Time: since.Add(time.Minute)},
		{RequestID: "q5", TrueAcuity: 3, ConfirmedDiagnosis: "I21.9", Time: since.Add(2 * time.Minute)},
		// A second feedback for q1 replaces the first, time included.
		{RequestID: "q1", TrueAcuity: 1, ConfirmedDiagnosis: "I21.0", InteractionConfirmed: boolPtr(true),
			Time: since.Add(3*time.Minute + 1500*time.Nanosecond).In(time.FixedZone("X", 3600))},
	}
	for _, f := range feedback {
		if err := s.SaveFeedback(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	outcome := func(q store.QueryRecord, f store.Feedback, top string) store.Outcome {
		return store.Outcome{RequestID: q.RequestID, AnsweredAt: q.Time, FeedbackAt: f.Time.UTC().Truncate(time.Microsecond),
			ModelVersion: q.ModelVersion, Domain: q.Domain, Acuity: q.Acuity, TrueAcuity: f.TrueAcuity,
			FindingsJSON: q.FindingsJSON, TopDiagnosis: top, ConfirmedDiagnosis: f.ConfirmedDiagnosis,
			InteractionAlerts: q.InteractionAlerts, InteractionConfirmed: f.InteractionConfirmed}
	}
	o4 := outcome(q4, feedback[0], "I21.9")
	o2 := outcome(q2, feedback[2], "")
	o5 := outcome(q5, feedback[3], "I21.9")
	o1 := outcome(q1, feedback[4], "I21.9")
	tests := []struct {
		name  string
		since time.Time
		want  []store.Outcome
	}{
		{"window", since, []store.Outcome{o2, o5, o1}},
		{"sub-µs bound", since.Add(-time.Nanosecond), []store.Outcome{o2, o5, o1}},
		{"all", time.Time{}, []store.Outcome{o4, o2, o5, o1}},
		{"from the replaced feedback", since.Add(3 * time.Minute), []store.Outcome{o1}},
		{"none", since.Add(time.Hour), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { sameOutcomes(t, outcomes(t, s, tc.since), tc.want) })
	}

	// A later feedback that did not assess interactions clears the earlier answer.
	f := feedback[4]
	f.InteractionConfirmed, f.Time = nil, since.Add(4*time.Minute)
	if err := s.SaveFeedback(ctx, f); err != nil {
		t.Fatal(err)
	}
	got := outcomes(t, s, since.Add(4*time.Minute))
	if len(got) != 1 || got[0].RequestID != "q1" || got[0].InteractionConfirmed != nil || got[0].TrueAcuity != 1 {
		t.Fatalf("after a feedback without an interaction assessment: %+v", got)
	}
	// The stored queries keep their interaction alerts.
	for _, q := range history(t, s, "p") {
		if want := map[string]int{"q1": 2, "q2": 0, "q3": 1, "q4": 1}[q.RequestID]; q.InteractionAlerts != want {
			t.Errorf("%s: %d interaction alerts, want %d", q.RequestID, q.InteractionAlerts, want)
		}
	}
}

// alertAt returns a complete pending alert of rule for fingerprint, started (and updated) at the given time.
func alertAt(rule, fingerprint string, at time.Time) store.Alert {
	at = at.UTC().Truncate(time.Microsecond)
	return store.Alert{Rule: rule, Fingerprint: fingerprint, Severity: "warning", State: "pending",
		Labels:  map[string]string{"version": "triage/1", "domain": "cardio"},
		Summary: "p95 latency above target", Value: 812.5, Threshold: 500, StartedAt: at, UpdatedAt: at}
}

func saveAlert(t *testing.T, s store.Store, a store.Alert) store.Alert {
	t.Helper()
	got, err := s.SaveAlert(context.Background(), a)
	if err != nil {
		t.Fatalf("save alert %s %s: %v", a.Rule, a.Fingerprint, err)
	}
	if got.ID == 0 {
		t.Fatalf("save alert %s %s: no id", a.Rule, a.Fingerprint)
	}
	return got
}

func alerts(t *testing.T, s store.Store, f store.AlertFilter) []store.Alert {
	t.Helper()
	as, err := s.Alerts(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// storedAlert returns the alert with id as Alerts reads it.
func storedAlert(t *testing.T, s store.Store, id int64) store.Alert {
	t.Helper()
	for _, a := range alerts(t, s, store.AlertFilter{Limit: 1 << 20}) {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("alert %d not stored", id)
	return store.Alert{}
}

func testAlertUnique(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	first := saveAlert(t, s, alertAt("latency", "fp1", base))
	tests := []struct {
		name, fingerprint, state string
		conflict                 bool
	}{
		{"second pending", "fp1", "pending", true},
		{"second firing", "fp1", "firing", true},
		{"resolved one beside it", "fp1", "resolved", false},
		{"other fingerprint", "fp2", "firing", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := alertAt("latency", tc.fingerprint, base.Add(time.Minute))
			a.State = tc.state
			got, err := s.SaveAlert(ctx, a)
			switch {
			case tc.conflict && !errors.Is(err, store.ErrConflict):
				t.Fatalf("got %+v, %v; want ErrConflict", got, err)
			case !tc.conflict && (err != nil || got.ID == 0 || got.ID == first.ID):
				t.Fatalf("got %+v, %v; want a new alert", got, err)
			}
		})
	}
	if as := alerts(t, s, store.AlertFilter{State: "active"}); len(as) != 2 {
		t.Fatalf("%d active alerts, want 2 (fp1, fp2): %+v", len(as), as)
	}

	// Resolved, it makes room for a new one.
	resolved := base.Add(2 * time.Minute)
	first.State, first.ResolvedAt, first.UpdatedAt = "resolved", &resolved, resolved
	saveAlert(t, s, first)
	next := saveAlert(t, s, alertAt("latency", "fp1", base.Add(3*time.Minute)))
	if next.ID == first.ID {
		t.Fatal("the new alert reused the resolved one's id")
	}
	// Reopening the resolved one would make two unresolved: refused, and it stays resolved.
	reopen := first
	reopen.State, reopen.ResolvedAt = "firing", nil
	if _, err := s.SaveAlert(ctx, reopen); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("reopening beside an unresolved alert: %v, want ErrConflict", err)
	}
	if got := storedAlert(t, s, first.ID); !reflect.DeepEqual(got, first) {
		t.Fatalf("after a refused update:\n got %+v\nwant %+v", got, first)
	}

	missing := alertAt("latency", "fp9", base)
	missing.ID = first.ID + next.ID + 1000
	if _, err := s.SaveAlert(ctx, missing); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of an unknown alert: %v, want ErrNotFound", err)
	}
	n := len(alerts(t, s, store.AlertFilter{}))
	for name, bad := range map[string]func(a *store.Alert){
		"no rule":        func(a *store.Alert) { a.Rule = "" },
		"no fingerprint": func(a *store.Alert) { a.Fingerprint = "" },
		"unknown state":  func(a *store.Alert) { a.State = "open" },
		"no state":       func(a *store.Alert) { a.State = "" },
	} {
		a := alertAt("latency", "fp-bad", base)
		bad(&a)
		if got, err := s.SaveAlert(ctx, a); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %+v, %v; want a validation error", name, got, err)
		}
	}
	if got := len(alerts(t, s, store.AlertFilter{})); got != n {
		t.Fatalf("refused alerts were stored: %d alerts, want %d", got, n)
	}
}

// Replicas evaluating one rule at once: exactly one opens the alert, the
// others get ErrConflict.
func testAlertUniqueConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond)
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := alertAt("latency", "fp", base.Add(time.Duration(i)*time.Millisecond))
			_, err := s.SaveAlert(ctx, a)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	var opened int
	for err := range errs {
		switch {
		case err == nil:
			opened++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("concurrent insert: %v, want nil or ErrConflict", err)
		}
	}
	if as := alerts(t, s, store.AlertFilter{}); opened != 1 || len(as) != 1 {
		t.Fatalf("%d inserts succeeded, %d alerts stored; want 1 and 1", opened, len(as))
	}
}

func testAlertRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	in := alertAt("latency", "latency{domain=cardio}", base)
	in.Labels["quote\"d"] = "ünïcode"
	// Sub-µs: truncated; another zone: returned in UTC.
	in.StartedAt = base.Add(1500 * time.Nanosecond).In(time.FixedZone("X", 3600))
	in.UpdatedAt = in.StartedAt.Add(time.Second)
	got := saveAlert(t, s, in)
	want := in
	want.ID = got.ID
	want.StartedAt, want.UpdatedAt = base.Add(time.Microsecond), base.Add(time.Second+time.Microsecond)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("insert returned:\n got %+v\nwant %+v", got, want)
	}
	if read := storedAlert(t, s, got.ID); !reflect.DeepEqual(read, want) || read.StartedAt.Location() != time.UTC {
		t.Fatalf("stored:\n got %+v\nwant %+v", read, want)
	}

	// Every field changes.
	inc, err := s.SaveIncident(ctx, store.Incident{AlertID: got.ID, Rule: "latency", Title: "latency", Severity: "critical",
		Status: "open", OpenedAt: base.Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	fired, resolved := base.Add(2*time.Minute), base.Add(5*time.Minute)
	upd := store.Alert{ID: got.ID, Rule: "drift", Fingerprint: "drift{version=triage/2}", Severity: "critical",
		State: "resolved", Labels: map[string]string{"version": "triage/2"}, Summary: "input drift",
		Value: -1.25, Threshold: 0.2, StartedAt: base.Add(time.Minute), FiredAt: &fired, ResolvedAt: &resolved,
		UpdatedAt: resolved, IncidentID: inc.ID}
	if got := saveAlert(t, s, upd); !reflect.DeepEqual(got, upd) {
		t.Fatalf("update returned:\n got %+v\nwant %+v", got, upd)
	}
	if read := storedAlert(t, s, upd.ID); !reflect.DeepEqual(read, upd) || read.FiredAt.Location() != time.UTC {
		t.Fatalf("stored after update:\n got %+v\nwant %+v", read, upd)
	}
	// And back to empty: no labels (nil or empty) read as nil, times and incident cleared.
	upd.Labels, upd.FiredAt, upd.ResolvedAt, upd.IncidentID, upd.State = map[string]string{}, nil, nil, 0, "pending"
	saveAlert(t, s, upd)
	upd.Labels = nil
	if read := storedAlert(t, s, upd.ID); !reflect.DeepEqual(read, upd) {
		t.Fatalf("stored after clearing:\n got %+v\nwant %+v", read, upd)
	}
}

func testAlertsFilter(t *testing.T, s store.Store) {
	base := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i/2) * time.Minute) } // pairs share an instant
	states := []string{"pending", "firing", "resolved", "resolved", "firing"}
	var all []store.Alert
	for i := 0; i < 20; i++ {
		a := alertAt("rule", fmt.Sprintf("fp%d", i), at(i))
		a.State = states[i%5]
		all = append(all, saveAlert(t, s, a))
	}
	matches := func(f store.AlertFilter, a store.Alert) bool {
		return (f.State == "" || a.State == f.State || (f.State == "active" && a.State != "resolved")) &&
			(f.Since.IsZero() || !a.StartedAt.Before(f.Since))
	}
	tests := []struct {
		name string
		f    store.AlertFilter
		n    int // expected matches, to keep the fixture honest
	}{
		{"none", store.AlertFilter{}, 20},
		{"pending", store.AlertFilter{State: "pending"}, 4},
		{"firing", store.AlertFilter{State: "firing"}, 8},
		{"resolved", store.AlertFilter{State: "resolved"}, 8},
		{"active", store.AlertFilter{State: "active"}, 12},
		{"since", store.AlertFilter{Since: at(10)}, 10},
		{"sub-µs since", store.AlertFilter{Since: at(10).Add(-time.Nanosecond)}, 10},
		{"active since", store.AlertFilter{State: "active", Since: at(10)}, 6},
		{"limit", store.AlertFilter{State: "active", Limit: 3}, 3},
		{"unknown state", store.AlertFilter{State: "open"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []store.Alert
			for i := len(all) - 1; i >= 0; i-- { // newest first; of two at one instant the later id
				if matches(tc.f, all[i]) {
					want = append(want, all[i])
				}
			}
			want = want[:min(len(want), store.ListLimit(tc.f.Limit))]
			got := alerts(t, s, tc.f)
			if len(got) != tc.n || len(want) != tc.n {
				t.Fatalf("%d alerts (reference %d), want %d", len(got), len(want), tc.n)
			}
			if len(got) > 0 && !reflect.DeepEqual(got, want) {
				t.Fatalf("got\n %+v\nwant\n %+v", got, want)
			}
		})
	}
	// Without a limit, 100.
	for i := 0; i < 90; i++ {
		a := alertAt("rule", "many", base.Add(-time.Hour))
		a.State = "resolved"
		saveAlert(t, s, a)
	}
	if got := alerts(t, s, store.AlertFilter{}); len(got) != store.DefaultListLimit || got[0].ID != all[19].ID {
		t.Fatalf("default limit: %d alerts, first %d; want %d, first %d", len(got), got[0].ID, store.DefaultListLimit, all[19].ID)
	}
	if got := alerts(t, s, store.AlertFilter{Limit: 200}); len(got) != 110 {
		t.Fatalf("limit 200: %d alerts, want 110", len(got))
	}
}

// sameIncident compares incidents with the report compared as JSON.
func sameIncident(t *testing.T, got, want store.Incident) {
	t.Helper()
	if !sameJSON(got.Report, want.Report) {
		t.Fatalf("incident %d report %s, want %s", got.ID, got.Report, want.Report)
	}
	got.Report = want.Report
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("incident:\n got %+v\nwant %+v", got, want)
	}
}

func testIncidents(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	if ins, err := s.Incidents(ctx, 0); err != nil || len(ins) != 0 {
		t.Fatalf("empty store lists %d incidents, %v", len(ins), err)
	}
	a := saveAlert(t, s, alertAt("latency", "fp", base))
	in := store.Incident{AlertID: a.ID, Rule: "latency", Title: "p95 latency above target", Severity: "critical",
		Status: "open", Report: `{"fired": "latency", "metrics": {"p95_ms": 812.5}, "actions": ["oversight"], "versions": ["triage/1"]}`,
		OpenedAt: base.Add(1500 * time.Nanosecond).In(time.FixedZone("X", 3600))}
	got, err := s.SaveIncident(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.ID, want.OpenedAt = got.ID, base.Add(time.Microsecond)
	if got.ID == 0 {
		t.Fatal("no incident id")
	}
	sameIncident(t, got, want)
	read, err := s.Incident(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameIncident(t, read, want)
	if read.OpenedAt.Location() != time.UTC {
		t.Errorf("OpenedAt in %v, want UTC", read.OpenedAt.Location())
	}

	// Every field changes; an empty report is an empty object.
	closed := base.Add(time.Hour)
	upd := store.Incident{ID: got.ID, Rule: "drift", Title: "closed by admin", Severity: "warning", Status: "closed",
		OpenedAt: base.Add(time.Minute), ClosedAt: &closed}
	if got, err = s.SaveIncident(ctx, upd); err != nil {
		t.Fatal(err)
	}
	upd.Report = "{}"
	sameIncident(t, got, upd)
	if read, err = s.Incident(ctx, upd.ID); err != nil {
		t.Fatal(err)
	}
	sameIncident(t, read, upd)

	if _, err := s.Incident(ctx, upd.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown incident: %v, want ErrNotFound", err)
	}
	if _, err := s.SaveIncident(ctx, store.Incident{ID: upd.ID + 1000, Title: "x", Severity: "info", Status: "open", OpenedAt: base}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of an unknown incident: %v, want ErrNotFound", err)
	}
	if _, err := s.SaveIncident(ctx, store.Incident{Title: "x", Severity: "info", Status: "open", Report: "{nope", OpenedAt: base}); err == nil {
		t.Fatal("a report that is not JSON was accepted")
	}

	// Newest first; of two opened at one instant the later id first.
	list := []store.Incident{upd}
	for i, opened := range []time.Duration{-time.Minute, 2 * time.Minute, 2 * time.Minute, 3 * time.Minute} {
		in, err := s.SaveIncident(ctx, store.Incident{Rule: "r", Title: fmt.Sprint("incident ", i), Severity: "info",
			Status: "open", Report: `{"n":1}`, OpenedAt: base.Add(opened)})
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, in)
	}
	order := func(ins []store.Incident) []int64 {
		var ids []int64
		for _, in := range ins {
			ids = append(ids, in.ID)
		}
		return ids
	}
	wantOrder := order([]store.Incident{list[4], list[3], list[2], list[0], list[1]})
	for _, tc := range []struct {
		limit int
		want  []int64
	}{{0, wantOrder}, {-1, wantOrder}, {2, wantOrder[:2]}, {10, wantOrder}} {
		ins, err := s.Incidents(ctx, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := order(ins); !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("Incidents(%d) = %v, want %v", tc.limit, got, tc.want)
		}
	}
	if ins, err := s.Incidents(ctx, 1); err != nil || len(ins) != 1 {
		t.Fatalf("Incidents(1): %d, %v", len(ins), err)
	} else {
		sameIncident(t, ins[0], list[4])
	}
	// Without a limit, 100.
	for i := 0; i < 100; i++ {
		if _, err := s.SaveIncident(ctx, store.Incident{Title: "old", Severity: "info", Status: "closed", OpenedAt: base.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if ins, err := s.Incidents(ctx, 0); err != nil || len(ins) != store.DefaultListLimit || ins[0].ID != list[4].ID {
		t.Fatalf("default limit: %d incidents, %v", len(ins), err)
	}
}

func testModes(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	steps := []struct {
		set  store.Mode
		want []store.Mode
	}{
		{store.Mode{Name: "oversight", Enabled: true, Reason: "red-flag misses above target", Actor: "alert:redflag",
			UpdatedAt: base.Add(1500 * time.Nanosecond).In(time.FixedZone("X", 3600))},
			[]store.Mode{{Name: "oversight", Enabled: true, Reason: "red-flag misses above target", Actor: "alert:redflag", UpdatedAt: base.Add(time.Microsecond)}}},
		{store.Mode{Name: "caching", Enabled: false, Reason: "drift", Actor: "alert:drift", UpdatedAt: base.Add(time.Minute)},
			[]store.Mode{{Name: "caching", Reason: "drift", Actor: "alert:drift", UpdatedAt: base.Add(time.Minute)},
				{Name: "oversight", Enabled: true, Reason: "red-flag misses above target", Actor: "alert:redflag", UpdatedAt: base.Add(time.Microsecond)}}},
		// Setting a mode again replaces every field.
		{store.Mode{Name: "oversight", Enabled: false, Actor: "admin", UpdatedAt: base.Add(2 * time.Minute)},
			[]store.Mode{{Name: "caching", Reason: "drift", Actor: "alert:drift", UpdatedAt: base.Add(time.Minute)},
				{Name: "oversight", Actor: "admin", UpdatedAt: base.Add(2 * time.Minute)}}},
		{store.Mode{Name: "compliance", Enabled: true, Reason: "unaudited answers", Actor: "alert:compliance", UpdatedAt: base.Add(3 * time.Minute)},
			[]store.Mode{{Name: "caching", Reason: "drift", Actor: "alert:drift", UpdatedAt: base.Add(time.Minute)},
				{Name: "compliance", Enabled: true, Reason: "unaudited answers", Actor: "alert:compliance", UpdatedAt: base.Add(3 * time.Minute)},
				{Name: "oversight", Actor: "admin", UpdatedAt: base.Add(2 * time.Minute)}}},
	}
	if ms, err := s.Modes(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("empty store lists %d modes, %v", len(ms), err)
	}
	for i, st := range steps {
		if err := s.SetMode(ctx, st.set); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, err := s.Modes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("step %d:\n got %+v\nwant %+v", i, got, st.want)
		}
		if got[0].UpdatedAt.Location() != time.UTC {
			t.Fatalf("step %d: UpdatedAt in %v, want UTC", i, got[0].UpdatedAt.Location())
		}
	}
	if err := s.SetMode(ctx, store.Mode{Enabled: true}); err == nil {
		t.Fatal("a mode without a name was accepted")
	}
	// A zero UpdatedAt becomes now.
	before := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.SetMode(ctx, store.Mode{Name: "caching", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if ms, err := s.Modes(ctx); err != nil || len(ms) != 3 || !ms[0].Enabled || ms[0].UpdatedAt.Before(before) || ms[0].UpdatedAt.After(time.Now()) {
		t.Fatalf("zero UpdatedAt: %+v, %v; want about now", ms, err)
	}
}

func testMonitorCounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	b0 := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	b1, b2 := b0.Add(time.Minute), b0.Add(2*time.Minute)
	c := func(replica string, bucket time.Time, version, domain, name string, v float64) store.MonitorCount {
		return store.MonitorCount{Replica: replica, Bucket: bucket, Version: version, Domain: domain, Name: name, Value: v}
	}
	save := func(cs ...store.MonitorCount) {
		t.Helper()
		if err := s.SaveMonitorCounts(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	totals := func(since time.Time) []store.MonitorTotal {
		t.Helper()
		ts, err := s.MonitorTotals(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	if got := totals(time.Time{}); len(got) != 0 {
		t.Fatalf("empty store totals %+v", got)
	}
	save() // nothing to write
	save(c("r1", b0, "", "", "answers", 10),
		c("r1", b1, "", "", "answers", 5),
		c("r2", b1.In(time.FixedZone("X", 3600)), "", "", "answers", 7), // the same instant in another zone
		c("r1", b1, "triage/1", "cardio", "redflag_miss", 1),
		c("r2", b2, "triage/1", "cardio", "redflag_miss", 2),
		c("r1", b2, "", "", "mem_bytes", 100),
		c("r2", b2, "", "", "mem_bytes", 300))
	// A replica rewrites its current bucket: the value is replaced, and of
	// two for one key in a call the later wins.
	save(c("r1", b1, "", "", "answers", 6), c("r2", b2, "", "", "mem_bytes", 250), c("r2", b2, "", "", "mem_bytes", 280))

	tests := []struct {
		name  string
		since time.Time
		want  []store.MonitorTotal
	}{
		{"all", time.Time{}, []store.MonitorTotal{
			{Name: "answers", Sum: 23, Max: 10}, {Name: "mem_bytes", Sum: 380, Max: 280},
			{Version: "triage/1", Domain: "cardio", Name: "redflag_miss", Sum: 3, Max: 2}}},
		{"since b1", b1, []store.MonitorTotal{
			{Name: "answers", Sum: 13, Max: 7}, {Name: "mem_bytes", Sum: 380, Max: 280},
			{Version: "triage/1", Domain: "cardio", Name: "redflag_miss", Sum: 3, Max: 2}}},
		{"sub-µs since", b1.Add(-time.Nanosecond), []store.MonitorTotal{
			{Name: "answers", Sum: 13, Max: 7}, {Name: "mem_bytes", Sum: 380, Max: 280},
			{Version: "triage/1", Domain: "cardio", Name: "redflag_miss", Sum: 3, Max: 2}}},
		{"since b2", b2, []store.MonitorTotal{
			{Name: "mem_bytes", Sum: 380, Max: 280},
			{Version: "triage/1", Domain: "cardio", Name: "redflag_miss", Sum: 2, Max: 2}}},
		{"future", b2.Add(time.Minute), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := totals(tc.since); len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Fatalf("totals:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}

	// One bad figure fails the whole call.
	before := totals(time.Time{})
	if err := s.SaveMonitorCounts(ctx, []store.MonitorCount{c("r3", b2, "", "", "answers", 50), c("r3", b2, "", "", "", 1)}); err == nil {
		t.Fatal("a figure without a name was accepted")
	}
	if got := totals(time.Time{}); !reflect.DeepEqual(got, before) {
		t.Fatalf("a failed call stored part of its figures: %+v", got)
	}

	deleteBefore := func(at time.Time, want int64) {
		t.Helper()
		if n, err := s.DeleteMonitorCountsBefore(ctx, at); err != nil || n != want {
			t.Fatalf("delete before %v = %d, %v; want %d", at.Sub(b0), n, err, want)
		}
	}
	deleteBefore(b1, 1) // r1's b0 answers; b1 itself is kept
	deleteBefore(b1, 0)
	if got := totals(time.Time{}); got[0] != (store.MonitorTotal{Name: "answers", Sum: 13, Max: 7}) {
		t.Fatalf("after deleting b0: %+v", got)
	}
	deleteBefore(b1.Add(time.Nanosecond), 3) // sub-µs: b1 starts before it
	want := []store.MonitorTotal{{Name: "mem_bytes", Sum: 380, Max: 280},
		{Version: "triage/1", Domain: "cardio", Name: "redflag_miss", Sum: 2, Max: 2}}
	if got := totals(time.Time{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("after deleting b1:\n got %+v\nwant %+v", got, want)
	}
}

func testReconcile(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	write := func(b store.Batch) {
		t.Helper()
		if _, err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveQuery(ctx, Query("unaudited", "p", base)); err != nil { // at the window's start
		t.Fatal(err)
	}
	write(store.Batch{Queries: []store.QueryRecord{Query("audited", "p", base.Add(time.Minute))},
		Events: []audit.Event{event("inference", "p", "audited")}})
	denied := event("inference", "p", "denied")
	denied.Outcome = audit.OutcomeDenied // any outcome counts
	write(store.Batch{Queries: []store.QueryRecord{Query("denied", "p", base.Add(2*time.Minute))}, Events: []audit.Event{denied}})
	write(store.Batch{Queries: []store.QueryRecord{Query("audited-later", "", base.Add(3*time.Minute))}})
	write(store.Batch{Events: []audit.Event{event("inference", "", "audited-later"), event("inference", "", "no-such-query")}})
	write(store.Batch{Queries: []store.QueryRecord{Query("unaudited-2", "p", base.Add(4*time.Minute))}})
	if err := s.SaveQuery(ctx, Query("late", "p", base.Add(time.Hour))); err != nil { // at the window's end
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     store.Reconciliation
	}{
		{"window", base, base.Add(time.Hour), store.Reconciliation{Queries: 5, Unaudited: 2}},
		{"after the first", base.Add(time.Microsecond), base.Add(time.Hour), store.Reconciliation{Queries: 4, Unaudited: 1}},
		{"with the end", base, base.Add(time.Hour + time.Microsecond), store.Reconciliation{Queries: 6, Unaudited: 3}},
		{"sub-µs bounds", base.Add(-time.Nanosecond), base.Add(time.Hour + time.Nanosecond), store.Reconciliation{Queries: 6, Unaudited: 3}},
		{"audited only", base.Add(time.Minute), base.Add(4 * time.Minute), store.Reconciliation{Queries: 3}},
		{"empty", base.Add(2 * time.Hour), base.Add(3 * time.Hour), store.Reconciliation{}},
		{"reversed", base.Add(time.Hour), base, store.Reconciliation{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Reconcile(ctx, tc.from, tc.to)
			if err != nil || got != tc.want {
				t.Fatalf("Reconcile = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// CheckMigratedToMonitoring checks a store just migrated to 0005 whose
// 0004-era tables held, written by the backend's own test at base: one
// query with feedback for patient "p" (diagnosis I21.9), alerts 1 (firing),
// 2 (pending) and 3 (resolved a minute after base), incident 5 of alert 1.
func CheckMigratedToMonitoring(t *testing.T, st store.Store, base time.Time) {
	t.Helper()
	ctx := context.Background()
	if h, err := st.PatientHistory(ctx, []string{"p"}, 0); err != nil || len(h) != 1 || h[0].InteractionAlerts != 0 {
		t.Fatalf("old query after 0005: %+v, %v", h, err)
	}
	if o, err := st.Outcomes(ctx, time.Time{}); err != nil || len(o) != 1 || o[0].InteractionConfirmed != nil ||
		o[0].TopDiagnosis != "I21.9" || o[0].ConfirmedDiagnosis != "I21.9" {
		t.Fatalf("old feedback after 0005: %+v, %v", o, err)
	}
	as, err := st.Alerts(ctx, store.AlertFilter{})
	if err != nil || len(as) != 3 {
		t.Fatalf("old alerts after 0005: %+v, %v", as, err)
	}
	resolved := base.Add(time.Minute)
	fired := base
	want := map[int64]store.Alert{
		1: {ID: 1, Rule: "latency", Fingerprint: "legacy:1", Severity: "warning", State: "firing",
			Labels: map[string]string{"domain": "cardio"}, Summary: "old", StartedAt: base, FiredAt: &fired, UpdatedAt: base},
		2: {ID: 2, Rule: "latency", Fingerprint: "legacy:2", Severity: "warning", State: "pending",
			Labels: map[string]string{"domain": "cardio"}, Summary: "old", StartedAt: base.Add(time.Second), UpdatedAt: base.Add(time.Second)},
		3: {ID: 3, Rule: "latency", Fingerprint: "legacy:3", Severity: "warning", State: "resolved",
			Summary: "old", StartedAt: base, ResolvedAt: &resolved, UpdatedAt: resolved},
	}
	for _, a := range as {
		if w := want[a.ID]; !reflect.DeepEqual(a, w) {
			t.Errorf("alert %d after 0005:\n got %+v\nwant %+v", a.ID, a, w)
		}
	}
	in, err := st.Incident(ctx, 5)
	if err != nil || in.Report != "{}" || in.Rule != "" || in.AlertID != 1 || in.Title != "old" {
		t.Fatalf("old incident after 0005: %+v, %v", in, err)
	}

	// The new rules hold on the migrated table.
	first, err := st.SaveAlert(ctx, store.Alert{Rule: "latency", Fingerprint: "fp", Severity: "warning", State: "firing", StartedAt: base, UpdatedAt: base})
	if err != nil || first.ID <= 3 {
		t.Fatalf("new alert: %+v, %v", first, err)
	}
	if _, err := st.SaveAlert(ctx, store.Alert{Rule: "latency", Fingerprint: "fp", Severity: "warning", State: "pending", StartedAt: base, UpdatedAt: base}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second unresolved alert after 0005: %v, want ErrConflict", err)
	}
}
