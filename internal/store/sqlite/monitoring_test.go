package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"medserve/internal/store/storetest"
)

// TestMonitoringMigration brings a database as 0004 left it, with queries,
// feedback, alerts and an incident written in 0001's columns, through 0005:
// the old rows read with the new fields' defaults, the old alerts get
// fingerprints of their own (two unresolved ones of one rule do not stop
// the unique index from being built), and the new behaviour works.
func TestMonitoringMigration(t *testing.T) {
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
	for before < len(ms) && ms[before].Version < 5 {
		before++
	}
	if err := d.migrate(ctx, ms[:before]); err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	q := storetest.Query("r1", "p", base)
	q.InteractionAlerts = 0 // what an old row reads as
	// One statement per call: the driver binds every statement of a
	// script from the first argument on.
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO queries (request_id, patient_pseudonym, time, domain, urgency, acuity, findings, differential,
			confidence, query_hash, response_ms, model_version, cache_hit, text_sealed, patient_sealed)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			[]any{q.RequestID, q.PatientPseudonym, micros(q.Time), q.Domain, q.Urgency, q.Acuity, q.FindingsJSON,
				q.DifferentialJSON, q.Confidence, q.QueryHash, q.ResponseMS, q.ModelVersion, q.CacheHit, q.TextSealed,
				q.PatientSealed}},
		{`INSERT INTO feedback (request_id, true_acuity, confirmed_diagnosis, time) VALUES ('r1', 2, 'I21.9', ?)`,
			[]any{micros(base.Add(time.Minute))}},
		{`INSERT INTO alerts (id, rule, severity, state, labels, summary, started_at, resolved_at) VALUES
			(1, 'latency', 'warning', 'firing', '{"domain":"cardio"}', 'old', ?1, NULL),
			(2, 'latency', 'warning', 'pending', '{"domain":"cardio"}', 'old', ?2, NULL),
			(3, 'latency', 'warning', 'resolved', '{}', 'old', ?1, ?3)`,
			[]any{micros(base), micros(base.Add(time.Second)), micros(base.Add(time.Minute))}},
		{`INSERT INTO incidents (id, alert_id, title, severity, status, opened_at) VALUES (5, 1, 'old', 'critical', 'open', ?)`,
			[]any{micros(base)}},
	} {
		if _, err := d.db.ExecContext(ctx, st.sql, st.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	storetest.CheckMigratedToMonitoring(t, d, base)
}
