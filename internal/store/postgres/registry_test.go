package postgres

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"medserve/internal/store"
)

// TestRegistryMigration brings a database as 0003 left it, with models and
// promotions in 0001's stage names, through 0004.
func TestRegistryMigration(t *testing.T) {
	ctx := context.Background()
	d, err := connect(ctx, freshDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version >= 4 {
			break
		}
		if err := d.apply(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	if _, err := d.pool.Exec(ctx, `
		INSERT INTO models (id, name, version, path, sha256, stage, created_at) VALUES
			(7, 'triage', '1', 'triage/1', 's1', 'archived', $1),
			(8, 'triage', '2', 'triage/2', 's2', 'production', $1 + interval '1 second'),
			(9, 'triage', '3', 'triage/3', 's3', 'registered', $1 + interval '2 seconds')`, base); err != nil {
		t.Fatal(err)
	}
	if _, err := d.pool.Exec(ctx, `
		INSERT INTO promotions (model_id, from_stage, to_stage, actor, reason, time) VALUES
			(7, 'registered', 'production', 'ops', 'first', $1),
			(7, 'production', 'archived', 'ops', 'second', $1 + interval '1 minute'),
			(8, 'registered', 'production', 'ops', 'second', $1 + interval '1 minute')`, base); err != nil {
		t.Fatal(err)
	}
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := stagesByVersion(t, d), map[string]string{"1": "retired", "2": "production", "3": "candidate"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("stages after 0004 = %v, want %v", got, want)
	}
	ps, err := d.Promotions(ctx, "triage")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Version+" "+p.From+">"+p.To+" "+p.Reason)
	}
	if want := []string{"1 candidate>production first", "1 production>retired second", "2 candidate>production second"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("promotions after 0004 = %q, want %q", got, want)
	}
	if err := d.SetStage(ctx, "triage", "3", "production", 0, "ops", "third", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, want := stagesByVersion(t, d), map[string]string{"1": "retired", "2": "retired", "3": "production"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("stages after promoting 3 = %v, want %v", got, want)
	}
}

func stagesByVersion(t *testing.T, d *DB) map[string]string {
	t.Helper()
	ms, err := d.Models(context.Background(), "triage")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Version] = m.Stage
	}
	return out
}

// TestRegistryConstraints writes around SetStage: the tables themselves
// refuse an unknown stage, a percent off a canary, and a second version in
// a live stage.
func TestRegistryConstraints(t *testing.T) {
	d, _ := openTemp(t)
	ctx := context.Background()
	for _, v := range []string{"1", "2"} {
		if _, err := d.pool.Exec(ctx, `INSERT INTO models (name, version, path, sha256, created_at) VALUES ('triage', $1, 'p', 's', now())`, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, sql string }{
		{"unknown stage", `UPDATE models SET stage = 'registered' WHERE version = '1'`},
		{"percent off a canary", `UPDATE models SET stage = 'production', percent = 10 WHERE version = '1'`},
		{"percent above 100", `UPDATE models SET stage = 'canary', percent = 101 WHERE version = '1'`},
		{"two in production", `UPDATE models SET stage = 'production'`},
		{"two canaries", `UPDATE models SET stage = 'canary'`},
		{"empty sha256", `INSERT INTO models (name, version, path, sha256, created_at) VALUES ('triage', '3', 'p', '', now())`},
		{"promotion to an unknown stage", `INSERT INTO promotions (model_id, from_stage, to_stage, actor, time) SELECT id, 'candidate', 'archived', 'x', now() FROM models LIMIT 1`},
	} {
		if _, err := d.pool.Exec(ctx, tc.sql); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := d.pool.Exec(ctx, `UPDATE models SET stage = 'retired'`); err != nil {
		t.Fatal(err)
	}
}

// TestSetStageAcrossReplicas promotes from two pools (two replicas) at
// once: only the database's per-name lock keeps one version in production.
func TestSetStageAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	db, dbURL := openTemp(t)
	replica, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	const versions = 6
	for i := range versions {
		if _, err := db.RegisterModel(ctx, store.ModelRecord{Name: "triage", Version: fmt.Sprint(i),
			Path: fmt.Sprint("triage/", i), SHA256: fmt.Sprint("s", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*versions*5)
	for r, s := range []*DB{db, replica} {
		for i := range versions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					if err := s.SetStage(ctx, "triage", fmt.Sprint(i), "production", 0, fmt.Sprint("replica-", r), "", time.Time{}); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	prod := 0
	for _, st := range stagesByVersion(t, db) {
		if st == "production" {
			prod++
		}
	}
	if prod != 1 {
		t.Fatalf("%d versions in production: %v", prod, stagesByVersion(t, db))
	}
}
