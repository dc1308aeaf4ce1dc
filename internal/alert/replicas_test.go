package alert

import (
	"context"
	"sync"
	"testing"
	"time"

	"medserve/internal/monitor"
	"medserve/internal/pgtest"
	"medserve/internal/store/postgres"
)

// TestEngineReplicasShareOneState: two replicas, each with its own
// connection pool, monitor and engine, tick together on one PostgreSQL
// store. The advisory lock lets one evaluate at a time and the state in
// the store makes the other see what was done: one rollback, one incident,
// one alert per rule — never two.
func TestEngineReplicasShareOneState(t *testing.T) {
	url := pgtest.FreshDatabase(t)
	ctx := context.Background()
	open := func() *postgres.DB {
		db, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return db
	}
	a, b := open(), open()
	now := time.Now().UTC()
	seedFeedback(t, a, "m/v2", now, [][2]int{{4, 2}, {4, 2}, {4, 2}, {2, 2}, {5, 5}, {5, 5}})
	// The registry is shared through the store: one actuator stands for it.
	act := newActuator("m/v2", "m/v1")
	var engines []*Engine
	for _, db := range []*postgres.DB{a, b} {
		mon := monitor.New(db, monitor.Config{MinSamples: 6, Serving: func() []string { return []string{act.Production()} }})
		engines = append(engines, NewEngine(db, mon, act, Config{}))
	}
	for round := 0; round < 10; round++ {
		var wg sync.WaitGroup
		for _, e := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.Tick(ctx); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		wg.Wait()
	}
	rollbacks, _ := act.counts()
	ins := incidents(t, a)
	if rollbacks != 1 || len(ins) != 1 {
		t.Fatalf("two replicas: %d rollbacks and %d incidents, want 1 and 1", rollbacks, len(ins))
	}
	perRule := map[string]int{}
	for _, al := range allAlerts(t, b) {
		perRule[al.Rule]++
	}
	for rule, n := range perRule {
		if n != 1 {
			t.Errorf("%s: %d alerts, want 1", rule, n)
		}
	}
	if len(perRule) < 3 {
		t.Fatalf("alerts %v", perRule)
	}
	t.Logf("two replicas × 10 ticks: 1 rollback, 1 incident, alerts %v", perRule)
}
