package postgres

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

// counts returns the row count of each table a restore must bring back.
func counts(t *testing.T, db *DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"queries", "query_findings", "feedback", "audit_events", "audit_head",
		"spool_progress", "cache_entries", "schema_migrations", "patient_summary", "api_keys",
		"alerts", "incidents", "modes", "monitor_counts"} {
		var n int
		if err := db.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	for i := 0; i < 50; i++ {
		if _, err := db.Write(ctx, batch("a", i)); err != nil {
			t.Fatal(err)
		}
	}
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
	if err := db.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}

	// Taken while a writer keeps going: pg_dump's snapshot must still hold
	// a valid chain whose queries match its events.
	dir := t.TempDir()
	backup := filepath.Join(dir, "medserve.dump")
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

	// Restore into a database created separately, as an operator would.
	target := freshDatabase(t)
	if err := Restore(ctx, target, backup); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(ctx, target) // migrations already recorded: a no-op
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	c := counts(t, db2)
	if c["queries"] < 50 || c["feedback"] != 1 || c["cache_entries"] != 1 || c["api_keys"] != 1 ||
		c["alerts"] != 1 || c["incidents"] != 1 || c["modes"] != 1 || c["monitor_counts"] != 2 || c["audit_head"] != 1 ||
		c["audit_events"] != 2*c["queries"] || c["query_findings"] != c["queries"] || c["patient_summary"] != 1 {
		t.Fatalf("restored counts = %v", c)
	}
	r, err := audit.Verify(ctx, db2, nil, nil)
	if err != nil || !r.OK || r.Events != int64(c["audit_events"]) {
		t.Fatalf("verify restored = %+v, %v", r, err)
	}
	if p, err := db2.Progress(ctx, "a"); err != nil || p != 50 {
		t.Fatalf("restored progress = %d, %v", p, err)
	}
	// The restored store works: appends serialise on its audit_head, the
	// views refresh.
	if _, err := db2.Write(ctx, batch("after", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.NewChain(db2, nil).Append(ctx, audit.Event{Action: "audit.verify", Outcome: audit.OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	if err := db2.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := audit.Verify(ctx, db2, nil, nil); err != nil || !r.OK {
		t.Fatalf("verify after writing to the restored store = %+v, %v", r, err)
	}

	// Restoring the same backup again rolls the database back to it.
	if err := Restore(ctx, target, backup); err != nil {
		t.Fatal(err)
	}
	if c2 := counts(t, db2); !reflect.DeepEqual(c2, c) {
		t.Fatalf("counts after a second restore = %v, want %v", c2, c)
	}
}

func TestRestoreFailsWithoutLeakingPassword(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	dir := t.TempDir()
	dump := filepath.Join(dir, "good.dump")
	if err := db.Backup(ctx, dump); err != nil {
		t.Fatal(err)
	}
	bogus := filepath.Join(dir, "bogus.dump")
	if err := os.WriteFile(bogus, []byte("not a dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-pw"
	tests := []struct{ name, url, file string }{
		// Never the shared postgres database: a restore there would --clean it.
		{"bogus file", "postgres://postgres:" + secret + "@127.0.0.1:5432/medserve_no_such_db?sslmode=disable", bogus},
		{"no server", "postgres://medserve:" + secret + "@127.0.0.1:1/medserve?sslmode=disable&pool_max_conns=4", dump},
		{"no database", "postgres://postgres:" + secret + "@127.0.0.1:5432/medserve_no_such_db?sslmode=disable", dump},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Restore(ctx, tc.url, tc.file)
			if err == nil {
				t.Fatal("restored")
			}
			if !strings.Contains(err.Error(), "pg_restore") || strings.Contains(err.Error(), secret) {
				t.Fatalf("error should name pg_restore and not the password: %v", err)
			}
			t.Log(err)
		})
	}
	if err := Restore(ctx, tests[2].url, filepath.Join(dir, "missing.dump")); err == nil {
		t.Fatal("restored a missing file")
	}
}

// TestRunToolRedacts: whatever a tool prints, the connection's secrets do
// not reach the error.
func TestRunToolRedacts(t *testing.T) {
	conn := toolConnection("postgres://u:hunter2@db/medserve")
	err := runTool(context.Background(), "sh", conn, "-c",
		`echo "cannot connect to postgres://u:hunter2@db/medserve, password hunter2, env $PGPASSWORD" >&2; exit 3`)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "[redacted]") ||
		!strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("runTool error = %v", err)
	}
}

func TestToolConnection(t *testing.T) {
	tests := []struct {
		url, dsn string
		env      []string
	}{
		{"postgres://u:p%40ss@db:5432/medserve?sslmode=require&pool_max_conns=8&statement_cache_capacity=0",
			"postgres://u@db:5432/medserve?sslmode=require", []string{"PGPASSWORD=p@ss"}},
		{"postgresql://u@db/medserve", "postgresql://u@db/medserve", nil},
		{"host=db user=u dbname=medserve", "host=db user=u dbname=medserve", nil},
	}
	for _, tc := range tests {
		c := toolConnection(tc.url)
		if c.dsn != tc.dsn || !reflect.DeepEqual(c.env, tc.env) {
			t.Errorf("toolConnection(%q) = %q %v; want %q %v", tc.url, c.dsn, c.env, tc.dsn, tc.env)
		}
	}
}

// TestWriteAcrossReplicas runs Write and Append on two pools (two
// replicas): only the database's head lock keeps the chain single.
func TestWriteAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	db, dbURL := openTemp(t)
	replica, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	const writes = 20
	var wg sync.WaitGroup
	errs := make(chan error, 4*writes)
	for i, s := range []*DB{db, replica} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < writes; j++ {
				if _, err := s.Write(ctx, batch(fmt.Sprintf("replica%d-", i), j)); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			chain := audit.NewChain(s, nil)
			for j := 0; j < writes; j++ {
				if _, err := chain.Append(ctx, audit.Event{Action: "audit.read", Outcome: audit.OutcomeOK}); err != nil {
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
	if r, err := audit.Verify(ctx, db, nil, nil); err != nil || !r.OK || r.Events != 2*(2*writes+writes) {
		t.Fatalf("verify = %+v, %v", r, err)
	}
}

func TestSingletonAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	db, dbURL := openTemp(t)
	replica, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	ran, err := db.Singleton(ctx, "retention", func(ctx context.Context) error {
		// Held by db's session: the other replica must not run it.
		ran, err := replica.Singleton(ctx, "retention", func(context.Context) error { return nil })
		if ran || err != nil {
			return fmt.Errorf("replica ran a held job: %v, %v", ran, err)
		}
		return nil
	})
	if !ran || err != nil {
		t.Fatalf("ran %v, %v", ran, err)
	}
	// fn ended by its context: the lock is still released, whatever the
	// connection's fate.
	cctx, cancel := context.WithCancel(ctx)
	ran, err = db.Singleton(cctx, "retention", func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if !ran || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v, %v", ran, err)
	}
	if ran, err := replica.Singleton(ctx, "retention", func(context.Context) error { return nil }); !ran || err != nil {
		t.Fatalf("after release, the replica: ran %v, %v", ran, err)
	}
	var held int
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held); err != nil || held != 0 {
		t.Fatalf("%d advisory locks still held, %v", held, err)
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
