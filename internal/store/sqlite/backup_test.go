package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/store"
	"medserve/internal/store/storetest"
)

// batch is recorder batch i of source: one query and two events.
func batch(source string, i int) store.Batch {
	id := fmt.Sprintf("%s%d", source, i)
	return store.Batch{Source: source, Through: int64(i + 1),
		Queries: []store.QueryRecord{storetest.Query(id, "p", time.Now())},
		Events: []audit.Event{{Action: "inference", RequestID: id, Outcome: audit.OutcomeOK},
			{Action: "patient.history.read", Patient: "p", RequestID: id, Outcome: audit.OutcomeOK}}}
}

// fill writes n batches of source.
func fill(t *testing.T, db *DB, source string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := db.Write(context.Background(), batch(source, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// counts returns the row count of each table a restore must bring back.
func counts(t *testing.T, db *DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"queries", "query_findings", "feedback", "audit_events", "spool_progress",
		"cache_entries", "schema_migrations", "api_keys", "alerts", "incidents", "modes", "monitor_counts"} {
		var n int
		if err := db.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	fill(t, db, "a", 50)
	if err := db.SaveFeedback(ctx, store.Feedback{RequestID: "a3", TrueAcuity: 2, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := db.CachePut(ctx, "k", "inference", []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAPIKey(ctx, store.APIKey{ID: "k1", SecretHash: "h", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	monitoringFixture(t, db)

	// The backup is taken while a writer keeps going: it must still be one
	// consistent snapshot (a valid chain whose queries match its events).
	dir := t.TempDir()
	backup := filepath.Join(dir, "medserve.bak")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var liveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, liveErr = db.Write(ctx, batch("live", i)); liveErr != nil {
				return
			}
		}
	}()
	err := db.Backup(ctx, backup)
	close(stop)
	wg.Wait()
	if err != nil || liveErr != nil {
		t.Fatal(err, liveErr)
	}
	if err := db.Backup(ctx, backup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("backup over an existing file: %v, want ErrExists", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}

	restored := filepath.Join(dir, "restored.db")
	if err := Restore(ctx, backup, restored, false); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	c := counts(t, db2)
	if c["queries"] < 50 || c["feedback"] != 1 || c["cache_entries"] != 1 || c["api_keys"] != 1 ||
		c["alerts"] != 1 || c["incidents"] != 1 || c["modes"] != 1 || c["monitor_counts"] != 2 || c["audit_events"] != 2*c["queries"] ||
		c["query_findings"] != c["queries"] {
		t.Fatalf("restored counts = %v", c)
	}
	r, err := audit.Verify(ctx, db2, nil, nil)
	if err != nil || !r.OK || r.Events != int64(c["audit_events"]) {
		t.Fatalf("verify restored = %+v, %v", r, err)
	}
	// The restored store is a working store.
	fill(t, db2, "after", 2)
	if r, err := audit.Verify(ctx, db2, nil, nil); err != nil || !r.OK {
		t.Fatalf("verify after writing to the restored store = %+v, %v", r, err)
	}
}

func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	db, dbPath := openTemp(t)
	fill(t, db, "a", 3)
	dir := t.TempDir()
	backup := filepath.Join(dir, "good.bak")
	if err := db.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A valid SQLite file that is not a medserve database.
	foreign := filepath.Join(dir, "foreign.db")
	fdb, err := sql.Open("sqlite", "file:"+foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fdb.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	fdb.Close()
	// A page in the middle overwritten: the header still looks right.
	corrupt := append([]byte(nil), good...)
	for i := 4096 * 2; i < 4096*3 && i < len(corrupt); i++ {
		corrupt[i] = 0xA5
	}

	target := filepath.Join(dir, "target.db")
	tests := []struct {
		name   string
		backup string
	}{
		{"missing", filepath.Join(dir, "nope.bak")},
		{"not sqlite", write("text.bak", []byte("hello, this is not a database at all"))},
		{"truncated", write("truncated.bak", good[:len(good)/2])},
		{"corrupt page", write("corrupt.bak", corrupt)},
		{"foreign", foreign},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Restore(ctx, tc.backup, target, false)
			if err == nil {
				t.Fatal("restored")
			}
			t.Log(err)
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("target exists after a refused restore: %v", err)
			}
		})
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".target*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}

	// An existing database is replaced only on request, and a refused
	// backup leaves it as it was.
	db.Close()
	if err := Restore(ctx, backup, dbPath, false); !errors.Is(err, store.ErrExists) {
		t.Fatalf("restore over an existing database: %v, want ErrExists", err)
	}
	if err := Restore(ctx, filepath.Join(dir, "truncated.bak"), dbPath, true); err == nil {
		t.Fatal("overwrote with a truncated backup")
	}
	// Stale sidecars of the replaced file must go: a WAL replayed onto the
	// restored file would corrupt it.
	for _, side := range []string{dbPath + "-wal", dbPath + "-shm"} {
		if err := os.WriteFile(side, []byte("stale"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := Restore(ctx, backup, dbPath, true); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{dbPath + "-wal", dbPath + "-shm"} {
		if _, err := os.Stat(side); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s survived the restore: %v", side, err)
		}
	}
	db2, err := Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if r, err := audit.Verify(ctx, db2, nil, nil); err != nil || !r.OK || r.Events != 6 {
		t.Fatalf("verify after overwrite = %+v, %v", r, err)
	}
}

// TestDeleteQueriesBeforeChunks deletes across several chunks, and exactly
// a multiple of the chunk size (the loop's edge).
func TestDeleteQueriesBeforeChunks(t *testing.T) {
	for _, n := range []int{3*7 + 2, 3 * 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { testDeleteChunks(t, n, 7) })
	}
}

func testDeleteChunks(t *testing.T, n int, chunk int64) {
	db, _ := openTemp(t)
	ctx := context.Background()
	patients := storetest.LoadHistory(t, db, n, 10)
	fill(t, db, "recent", 1) // one query newer than the cutoff
	deleted, err := db.deleteQueriesBefore(ctx, time.Now().Add(-time.Minute), chunk)
	if err != nil || deleted != int64(n) {
		t.Fatalf("deleted %d, %v; want %d", deleted, err, n)
	}
	if h, err := db.PatientHistory(ctx, append(patients, "p"), 0); err != nil || len(h) != 1 {
		t.Fatalf("history after retention: %d queries, %v; want 1", len(h), err)
	}
	c := counts(t, db)
	if c["queries"] != 1 || c["query_findings"] != 1 || c["audit_events"] != 2 {
		t.Fatalf("counts after retention = %v", c)
	}
}

// monitoringFixture writes one alert and its incident (which refer to each
// other), a mode and two monitor counts, for a backup to carry.
func monitoringFixture(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	a, err := db.SaveAlert(ctx, store.Alert{Rule: "latency", Fingerprint: "latency", Severity: "critical", State: "firing",
		Labels: map[string]string{"domain": "cardio"}, StartedAt: now, FiredAt: &now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	in, err := db.SaveIncident(ctx, store.Incident{AlertID: a.ID, Rule: a.Rule, Title: "latency", Severity: "critical",
		Status: "open", Report: `{"actions":["oversight"]}`, OpenedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	a.IncidentID = in.ID
	if _, err := db.SaveAlert(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMode(ctx, store.Mode{Name: "oversight", Enabled: true, Actor: "alert:latency", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveMonitorCounts(ctx, []store.MonitorCount{
		{Replica: "r1", Bucket: now.Truncate(time.Minute), Name: "answers", Value: 3},
		{Replica: "r2", Bucket: now.Truncate(time.Minute), Name: "answers", Value: 4},
	}); err != nil {
		t.Fatal(err)
	}
}
