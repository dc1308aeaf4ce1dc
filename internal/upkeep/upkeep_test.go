package upkeep

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/record"
	"medserve/internal/spool"
	"medserve/internal/store"
	"medserve/internal/store/sqlite"
)

func TestRetainDeletesOldQueriesAndAuditsIt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rec := record.New(sp, st, record.Options{})
	rctx, cancel := context.WithCancel(ctx)
	go rec.Run(rctx)
	defer func() { cancel(); rec.Wait() }()

	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	b := store.Batch{}
	for i, age := range []int{400, 200, 91, 89, 10, 0} {
		id := "q" + string(rune('a'+i))
		b.Queries = append(b.Queries, store.QueryRecord{RequestID: id, PatientPseudonym: "k1:p", Time: now.AddDate(0, 0, -age), Acuity: 3})
		b.Events = append(b.Events, audit.Event{Time: now.AddDate(0, 0, -age), Action: "inference", RequestID: id, Patient: "k1:p", Outcome: audit.OutcomeOK})
	}
	if _, err := st.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	n, err := Retain(ctx, st, rec, 90, now)
	if err != nil || n != 3 {
		t.Fatalf("Retain: %d, %v; want 3 deleted", n, err)
	}
	h, err := st.PatientHistory(ctx, []string{"k1:p"}, 0)
	if err != nil || len(h) != 3 {
		t.Fatalf("history after retention: %d rows, %v; want the 3 younger than 90 days", len(h), err)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := rec.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	evs, err := st.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	got := strings.Join(actions, ",")
	if got != "inference,inference,inference,inference,inference,inference,retention.delete,retention.deleted" {
		t.Fatalf("audit events: %s (the inference events must all survive, followed by the retention intent and count)", got)
	}
	if !strings.Contains(evs[7].Reason, "deleted 3 query records") {
		t.Fatalf("retention event reason: %q", evs[7].Reason)
	}
	if rep, err := audit.Verify(ctx, st, nil, nil); err != nil || !rep.OK {
		t.Fatalf("chain after retention: %v %+v", err, rep)
	}
}

// TestRunSweepsOldMonitorCounts: the replicas' monitoring counts older
// than MonitorCountsKept go; the ones the windows still read stay.
func TestRunSweepsOldMonitorCounts(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var cs []store.MonitorCount
	for _, age := range []time.Duration{MonitorCountsKept + time.Hour, MonitorCountsKept - time.Hour, time.Minute} {
		cs = append(cs, store.MonitorCount{Replica: "r1", Bucket: now.Add(-age).Truncate(time.Minute), Name: "answers", Value: 1})
	}
	if err := st.SaveMonitorCounts(ctx, cs); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { Run(rctx, Config{Store: st, Now: func() time.Time { return now }}); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		totals, err := st.MonitorTotals(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(totals) == 1 && totals[0].Sum == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor counts after the sweep: %+v", totals)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
