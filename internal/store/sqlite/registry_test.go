package sqlite

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRegistryMigration brings a database as 0003 left it, with models and
// promotions in 0001's stage names, through 0004: the rebuilt tables keep
// every row and id, rename the stages, and keep promotions pointing at
// their versions.
func TestRegistryMigration(t *testing.T) {
	ctx := context.Background()
	d, err := openFile(ctx, filepath.Join(t.TempDir(), "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	before := 0
	for before < len(ms) && ms[before].Version < 4 {
		before++
	}
	if err := d.migrate(ctx, ms[:before]); err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	if _, err := d.db.ExecContext(ctx, `
		INSERT INTO models (id, name, version, path, sha256, stage, metrics, created_at) VALUES
			(7, 'triage', '1', 'triage/1', 's1', 'archived', '{"auc":0.9}', ?),
			(8, 'triage', '2', 'triage/2', 's2', 'production', '{}', ?),
			(9, 'triage', '3', 'triage/3', 's3', 'registered', '{}', ?);
		INSERT INTO promotions (id, model_id, from_stage, to_stage, actor, reason, time) VALUES
			(1, 7, 'registered', 'production', 'ops', 'first', ?),
			(2, 7, 'production', 'archived', 'ops', 'second', ?),
			(3, 8, 'registered', 'production', 'ops', 'second', ?)`,
		micros(base), micros(base.Add(time.Second)), micros(base.Add(2*time.Second)),
		micros(base.Add(time.Minute)), micros(base.Add(2*time.Minute)), micros(base.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	if got, want := stagesByVersion(t, d), map[string]string{"1": "retired", "2": "production", "3": "candidate"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("stages after 0004 = %v, want %v", got, want)
	}
	var metrics string
	if err := d.db.QueryRow(`SELECT metrics FROM models WHERE id = 7`).Scan(&metrics); err != nil || metrics != `{"auc":0.9}` {
		t.Fatalf("metrics of id 7 = %q, %v", metrics, err)
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

	// Nothing refers to the tables the rebuild dropped, and every reference resolves.
	var schema string
	if err := d.db.QueryRow(`SELECT group_concat(sql, ';') FROM sqlite_master WHERE sql IS NOT NULL`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(schema, "models_old") || strings.Contains(schema, "promotions_old") {
		t.Fatalf("the schema still names a rebuilt table:\n%s", schema)
	}
	rows, err := d.db.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("foreign_key_check reports dangling references")
	}
	rows.Close()
	if _, err := d.db.Exec(`INSERT INTO promotions (model_id, from_stage, to_stage, actor, time) VALUES (99, 'candidate', 'shadow', 'x', 0)`); err == nil {
		t.Error("a promotion of an unknown model was accepted: the foreign key is gone")
	}

	// The registry works on the migrated rows.
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
		if _, err := d.db.ExecContext(ctx, `INSERT INTO models (name, version, path, sha256, created_at) VALUES ('triage', ?, 'p', 's', 0)`, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, sql string }{
		{"unknown stage", `UPDATE models SET stage = 'registered' WHERE version = '1'`},
		{"percent off a canary", `UPDATE models SET stage = 'production', percent = 10 WHERE version = '1'`},
		{"percent above 100", `UPDATE models SET stage = 'canary', percent = 101 WHERE version = '1'`},
		{"two in production", `UPDATE models SET stage = 'production'`},
		{"two canaries", `UPDATE models SET stage = 'canary'`},
		{"empty sha256", `INSERT INTO models (name, version, path, sha256, created_at) VALUES ('triage', '3', 'p', '', 0)`},
		{"promotion to an unknown stage", `INSERT INTO promotions (model_id, from_stage, to_stage, actor, time) SELECT id, 'candidate', 'archived', 'x', 0 FROM models LIMIT 1`},
	} {
		if _, err := d.db.ExecContext(ctx, tc.sql); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// Two retired (or candidate) versions are fine.
	if _, err := d.db.ExecContext(ctx, `UPDATE models SET stage = 'retired'`); err != nil {
		t.Fatal(err)
	}
}
