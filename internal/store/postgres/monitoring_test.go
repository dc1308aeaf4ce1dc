package postgres

import (
	"context"
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
		if m.Version >= 5 {
			break
		}
		if err := d.apply(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	q := storetest.Query("r1", "p", base)
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO queries (request_id, patient_pseudonym, time, domain, urgency, acuity, findings, differential,
			confidence, query_hash, response_ms, model_version, cache_hit, text_sealed, patient_sealed)
			VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8::jsonb,$9,$10,$11,$12,$13,$14,$15)`,
			[]any{q.RequestID, q.PatientPseudonym, q.Time, q.Domain, q.Urgency, q.Acuity, q.FindingsJSON,
				q.DifferentialJSON, q.Confidence, q.QueryHash, q.ResponseMS, q.ModelVersion, q.CacheHit, q.TextSealed,
				q.PatientSealed}},
		{`INSERT INTO feedback (request_id, true_acuity, confirmed_diagnosis, time) VALUES ('r1', 2, 'I21.9', $1)`,
			[]any{base.Add(time.Minute)}},
		// Ids from the identity column: 1, 2, 3 in a fresh database.
		{`INSERT INTO alerts (rule, severity, state, labels, summary, started_at, resolved_at) VALUES
			('latency', 'warning', 'firing', '{"domain":"cardio"}', 'old', $1, NULL),
			('latency', 'warning', 'pending', '{"domain":"cardio"}', 'old', $2, NULL),
			('latency', 'warning', 'resolved', '{}', 'old', $1, $3)`,
			[]any{base, base.Add(time.Second), base.Add(time.Minute)}},
		{`INSERT INTO incidents (id, alert_id, title, severity, status, opened_at) VALUES (5, 1, 'old', 'critical', 'open', $1)`,
			[]any{base}},
	} {
		if _, err := d.pool.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	storetest.CheckMigratedToMonitoring(t, d, base)
	// The materialized view is untouched and still refreshes.
	if err := d.RefreshViews(ctx); err != nil {
		t.Fatal(err)
	}
}
