package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"medserve/internal/audit"
	"medserve/internal/clinical"
	"medserve/internal/store"
	"medserve/internal/store/sqlite"
	"medserve/internal/validate"
)

func openSQLite(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fixture is a store seeded with a day of feedback, an hour of queries
// (one of them never audited), the replicas' counts and modes and alerts.
type fixture struct {
	db       *sqlite.DB
	now      time.Time
	clk      *fakeClock // the monitor's
	collClk  *fakeClock // the collector's (moved on its own, for a CPU sample)
	ref      *Profile
	coll     *Collector
	versions []string // serving, production first
}

const (
	prodVersion   = "triage/v1"
	canaryVersion = "triage/v2"
	oldVersion    = "triage/v0"
)

// feedbackRows are production's feedback, (domain, answered, true):
// 8 urgent (acuity 1–3) of which one is answered 4, and 4 non-urgent, all
// right. Sensitivity 7/8 and FNR 1/8 fail the gate; accuracy 11/12,
// specificity 4/4 and kappa 1 − 12·1/212 pass: safety score 3/5.
var feedbackRows = []struct {
	domain      string
	pred, truth int
}{
	{"cardiology", 1, 1}, {"cardiology", 1, 1}, {"cardiology", 2, 2}, {"cardiology", 2, 2}, {"cardiology", 3, 3}, {"cardiology", 3, 3},
	{"neurology", 3, 3}, {"neurology", 4, 3}, {"neurology", 4, 4}, {"neurology", 4, 4}, {"neurology", 5, 5}, {"neurology", 5, 5},
}

func query(id, version, domain string, acuity int, at time.Time) store.QueryRecord {
	return store.QueryRecord{RequestID: id, PatientPseudonym: "p-" + id, Time: at, Domain: domain, Urgency: "medium",
		Acuity: acuity, FindingsJSON: "[]", ModelVersion: version, QueryHash: "h-" + id, TextSealed: "sealed"}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db := openSQLite(t)
	now := time.Date(2030, 3, 1, 12, 0, 30, 0, time.UTC)
	f := &fixture{db: db, now: now, clk: &fakeClock{t: now}, collClk: &fakeClock{t: now}, versions: []string{prodVersion, canaryVersion}}

	var events []audit.Event
	audited := func(id string) {
		events = append(events, audit.Event{Time: now.Add(-time.Minute), Actor: "svc", Role: "service", Action: "inference",
			Resource: "triage", RequestID: id, Outcome: audit.OutcomeOK})
	}
	// Production's feedback, queries 30 min ago; q-11 has no audit event.
	for i, r := range feedbackRows {
		id := fmt.Sprintf("q-%02d", i)
		q := query(id, prodVersion, r.domain, r.pred, now.Add(-30*time.Minute+time.Duration(i)*time.Second))
		if i == 0 {
			q.InteractionAlerts = 1 // alerted; confirmed below: detected
		}
		if err := db.SaveQuery(ctx, q); err != nil {
			t.Fatal(err)
		}
		fb := store.Feedback{RequestID: id, TrueAcuity: r.truth, Time: now.Add(-10 * time.Minute)}
		if i < 2 {
			fb.InteractionConfirmed = boolp(true) // q-01: confirmed, not alerted: missed
		} else if i == 2 {
			fb.InteractionConfirmed = boolp(false)
		}
		if err := db.SaveFeedback(ctx, fb); err != nil {
			t.Fatal(err)
		}
		if i != 11 {
			audited(id)
		}
	}
	// An older version's feedback (not serving), an unanswered query,
	// feedback from before the clinical window, and a query at the end of
	// the compliance window (not in it), none of them audited but the first two.
	for _, q := range []struct {
		rec   store.QueryRecord
		truth int
		fbAt  time.Time
		audit bool
	}{
		{query("old-v0", oldVersion, "cardiology", 2, now.Add(-20*time.Minute)), 2, now.Add(-5 * time.Minute), true},
		{query("no-feedback", prodVersion, "general", 4, now.Add(-40*time.Minute)), 0, time.Time{}, true},
		{query("yesterday", prodVersion, "general", 5, now.Add(-26*time.Hour)), 1, now.Add(-25 * time.Hour), false},
		{query("at-now", prodVersion, "general", 3, now), 0, time.Time{}, false},
	} {
		if err := db.SaveQuery(ctx, q.rec); err != nil {
			t.Fatal(err)
		}
		if q.truth > 0 {
			if err := db.SaveFeedback(ctx, store.Feedback{RequestID: q.rec.RequestID, TrueAcuity: q.truth, Time: q.fbAt}); err != nil {
				t.Fatal(err)
			}
		}
		if q.audit {
			audited(q.rec.RequestID)
		}
	}
	if _, err := db.Write(ctx, store.Batch{Source: "replica-a", Through: int64(len(events)), Events: events}); err != nil {
		t.Fatal(err)
	}

	// The training inputs: women aged 30, half with the red flag.
	base := Input{Age: f64(30), Sex: "female", Arrival: "walk-in"}
	rf := base
	rf.Concepts = []string{redFlag}
	f.ref = NewProfile(append(inputs(5, base), inputs(5, rf)...), 5)

	// This replica's answers in the current bucket, through a collector
	// writing to the store: men aged 30 (the sex shifts), half with the
	// red flag (the concepts do not).
	f.coll = NewCollector("replica-a", db, time.Minute, []string{redFlag}, f.ref.Concepts)
	f.coll.now = f.collClk.Now
	man := clinical.Query{Age: f64(30), Sex: "male", Arrival: "walk-in"}
	for _, o := range []observed{
		{man, answer("v1", clinical.Cardiology, 3, true, clinical.Finding{Code: redFlag}), 30 * time.Millisecond, true}, // a critical miss
		{man, answer("v1", clinical.Cardiology, 1, false, clinical.Finding{Code: redFlag}), 70 * time.Millisecond, false},
		{man, answer("v1", clinical.Neurology, 4, false), 1500 * time.Millisecond, false},
		{man, answer("v1", clinical.Neurology, 5, false), 3 * time.Second, false},
	} {
		f.coll.Observe(o.q, o.a, o.latency, o.cacheHit)
	}
	if err := f.coll.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Another replica: red-flag answers two hours ago (in the clinical
	// window, not in the runtime one) and the canary's in this bucket.
	bucket := now.Truncate(time.Minute)
	if err := db.SaveMonitorCounts(ctx, []store.MonitorCount{
		{Replica: "replica-b", Bucket: bucket.Add(-2 * time.Hour), Version: prodVersion, Domain: AllDomains, Name: nRedFlag, Value: 3},
		{Replica: "replica-b", Bucket: bucket.Add(-2 * time.Hour), Name: nAnswers, Value: 100},
		{Replica: "replica-b", Bucket: bucket.Add(-2 * time.Hour), Name: nMemoryMB, Value: 99999},
		{Replica: "replica-b", Bucket: bucket, Version: canaryVersion, Domain: AllDomains, Name: nRedFlag, Value: 2},
		{Replica: "replica-b", Bucket: bucket, Name: nMemoryMB, Value: 50000},
		// Two days ago: outside every window.
		{Replica: "replica-b", Bucket: bucket.Add(-48 * time.Hour), Version: prodVersion, Domain: AllDomains, Name: nRedFlagMissed, Value: 50},
	}); err != nil {
		t.Fatal(err)
	}

	if err := db.SetMode(ctx, store.Mode{Name: "oversight", Enabled: true, Reason: "drill", Actor: "admin", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMode(ctx, store.Mode{Name: "caching", Enabled: false, Actor: "admin", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	resolvedAt := now.Add(-time.Hour)
	for _, a := range []store.Alert{
		{Rule: "CPUHigh", Fingerprint: "CPUHigh", Severity: "warning", State: "pending", StartedAt: now.Add(-time.Minute), UpdatedAt: now},
		{Rule: "MemoryHigh", Fingerprint: "MemoryHigh", Severity: "warning", State: "resolved", StartedAt: now.Add(-2 * time.Hour), ResolvedAt: &resolvedAt, UpdatedAt: resolvedAt},
	} {
		if _, err := db.SaveAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) monitor(minSamples int) *Monitor {
	return New(f.db, Config{MinSamples: minSamples, Reference: f.ref, Now: f.clk.Now,
		Serving: func() []string { return f.versions }})
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	m := f.monitor(12)
	if m.Latest() != nil {
		t.Fatal("Latest before Refresh is not nil")
	}
	s, err := m.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Latest() != s {
		t.Error("Latest is not the snapshot Refresh returned")
	}
	if !s.Time.Equal(f.now) || s.MinSamples != 12 || !slices.Equal(s.Serving, f.versions) {
		t.Errorf("snapshot time %v, min samples %d, serving %v", s.Time, s.MinSamples, s.Serving)
	}
	if s.Windows.Clinical != "24h0m0s" || s.Windows.Runtime != "5m0s" || s.Windows.Compliance != "1h0m0s" {
		t.Errorf("windows = %+v", s.Windows)
	}
	if len(s.Targets) != 2 || s.Targets[prodVersion].Accuracy != 0.85 {
		t.Errorf("targets = %v", s.Targets)
	}

	t.Run("clinical", func(t *testing.T) {
		var keys []Key
		for _, e := range s.Clinical {
			keys = append(keys, e.Key)
		}
		wantKeys := []Key{{oldVersion, AllDomains}, {oldVersion, "cardiology"},
			{prodVersion, AllDomains}, {prodVersion, "cardiology"}, {prodVersion, "neurology"}, {canaryVersion, AllDomains}}
		if !slices.Equal(keys, wantKeys) {
			t.Fatalf("clinical keys (sorted) = %v, want %v", keys, wantKeys)
		}
		tests := []struct {
			key                         Key
			samples                     int
			acc, sens, spec, fnr, under Rate
			esc, interaction, critical  Rate
		}{
			// The critical misses: this bucket 1 of 2 red-flag answers, two
			// hours ago 0 of 3 more; the 50 from two days ago are outside.
			{Key{prodVersion, AllDomains}, 12, Rate{11, 12}, Rate{7, 8}, Rate{4, 4}, Rate{1, 8}, Rate{1, 12}, Rate{4, 4}, Rate{1, 2}, Rate{1, 5}},
			{Key{prodVersion, "cardiology"}, 6, Rate{6, 6}, Rate{6, 6}, Rate{}, Rate{0, 6}, Rate{0, 6}, Rate{4, 4}, Rate{1, 2}, Rate{1, 2}},
			{Key{prodVersion, "neurology"}, 6, Rate{5, 6}, Rate{1, 2}, Rate{4, 4}, Rate{1, 2}, Rate{1, 6}, Rate{}, Rate{}, Rate{}},
			{Key{oldVersion, AllDomains}, 1, Rate{1, 1}, Rate{1, 1}, Rate{}, Rate{0, 1}, Rate{0, 1}, Rate{1, 1}, Rate{}, Rate{}},
			// The canary has red-flag answers and no feedback yet.
			{Key{canaryVersion, AllDomains}, 0, Rate{}, Rate{}, Rate{}, Rate{}, Rate{}, Rate{}, Rate{}, Rate{0, 2}},
		}
		for _, tc := range tests {
			c := s.Figure(tc.key)
			if c == nil {
				t.Errorf("no figures for %v", tc.key)
				continue
			}
			got := []Rate{c.Accuracy, c.Sensitivity, c.Specificity, c.FNR, c.UnderTriage, c.EscalationAccuracy, c.InteractionDetection, c.CriticalMiss}
			want := []Rate{tc.acc, tc.sens, tc.spec, tc.fnr, tc.under, tc.esc, tc.interaction, tc.critical}
			if c.Samples != tc.samples || !slices.Equal(got, want) {
				t.Errorf("%v: samples %d, figures %v; want %d, %v", tc.key, c.Samples, got, tc.samples, want)
			}
		}
		if s.Figure(Key{prodVersion, "general"}) != nil {
			t.Error("yesterday's feedback is in the clinical window")
		}
	})

	t.Run("safety score", func(t *testing.T) {
		if s.Safety.Version != prodVersion || s.Safety.Samples != 12 || s.Safety.Score == nil {
			t.Fatalf("safety = %+v, want production's score over 12 samples", s.Safety)
		}
		if math.Abs(*s.Safety.Score-0.6) > 1e-12 {
			t.Errorf("safety score = %v, want 3/5", *s.Safety.Score)
		}
		var failed []string
		for _, c := range s.Safety.Checks {
			if !c.Pass {
				failed = append(failed, c.Name)
			}
		}
		if !slices.Equal(failed, []string{validate.CheckSensitivity, validate.CheckFNR}) {
			t.Errorf("failed checks = %v, want sensitivity and fnr", failed)
		}
		// One sample short: no score, the sample count still shown.
		s2, err := f.monitor(13).Refresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s2.Safety.Score != nil || s2.Safety.Checks != nil || s2.Safety.Samples != 12 {
			t.Errorf("below MinSamples: safety = %+v, want no score, 12 samples", s2.Safety)
		}
	})

	t.Run("runtime", func(t *testing.T) {
		r := s.Runtime
		// Only this bucket is in the runtime window (the 100 answers two hours ago are not).
		if r.Answers != 4 {
			t.Errorf("answers = %d, want 4", r.Answers)
		}
		// 30 ms, 70 ms, 1.5 s, 3 s: rank 3.8 in (2, 5] holding 3..4: 2 + 3·0.8.
		if r.P95Seconds == nil || math.Abs(*r.P95Seconds-4.4) > 1e-12 {
			t.Errorf("p95 = %v, want 4.4", r.P95Seconds)
		}
		for _, c := range []struct {
			name      string
			got, want Rate
		}{
			{"over 2 s", r.Over2s, Rate{1, 4}}, {"over 5 s", r.Over5s, Rate{0, 4}},
			{"cache hits", r.CacheHitRate, Rate{1, 4}}, {"review", r.ReviewRate, Rate{1, 4}},
		} {
			if c.got != c.want {
				t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
			}
		}
		// The largest replica in the window (replica-b's 50000, not the
		// sum with this one's), not replica-b's 99999 from two hours ago.
		if r.MemoryMB == nil || *r.MemoryMB != 50000 {
			t.Errorf("memory = %v, want 50000", r.MemoryMB)
		}
		if r.Goroutines == nil || *r.Goroutines < 1 {
			t.Errorf("goroutines = %v", r.Goroutines)
		}
	})

	t.Run("compliance", func(t *testing.T) {
		c := s.Compliance
		// 12 + old-v0 + no-feedback in [now − 1 h, now); at-now and yesterday outside.
		if c.Queries != 14 || c.Unaudited != 1 || c.Score == nil || math.Abs(*c.Score-13.0/14) > 1e-12 {
			t.Errorf("compliance = %+v (score %v), want 14 queries, 1 unaudited, 13/14", c, c.Score)
		}
		if !c.From.Equal(f.now.Add(-time.Hour)) || !c.To.Equal(f.now) {
			t.Errorf("compliance window %v – %v", c.From, c.To)
		}
	})

	t.Run("drift", func(t *testing.T) {
		d := s.Drift
		// Reference: all women; live: all men. Two bins at the floor 1e-4.
		want := 2 * (1 - 1e-4) * math.Log(1e4)
		if d.Answers != 4 || math.Abs(d.PSI["sex"]-want) > 1e-9 || d.Feature != "sex" || math.Abs(d.Max-want) > 1e-9 {
			t.Errorf("drift = %+v, want sex at %v", d, want)
		}
		for _, feat := range []string{"age", "arrival", "sbp", "concept"} {
			if v, ok := d.PSI[feat]; !ok || math.Abs(v) > 1e-12 {
				t.Errorf("PSI[%s] = %v, %v; want 0 (unchanged)", feat, v, ok)
			}
		}
		// Without a reference there is no drift figure.
		noRef := New(f.db, Config{MinSamples: 12, Now: f.clk.Now, Serving: func() []string { return f.versions }})
		s3, err := noRef.Refresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s3.Drift.Answers != 0 || len(s3.Drift.PSI) != 0 {
			t.Errorf("drift without a reference = %+v", s3.Drift)
		}
	})

	t.Run("modes and alerts", func(t *testing.T) {
		if on, reason := s.Mode("oversight"); !on || reason != "drill" {
			t.Errorf("oversight = %v %q", on, reason)
		}
		if on, _ := s.Mode("caching"); on {
			t.Error("caching on")
		}
		if on, _ := s.Mode("compliance"); on {
			t.Error("a mode never set is on")
		}
		if len(s.Alerts) != 1 || s.Alerts[0].Rule != "CPUHigh" {
			t.Errorf("active alerts = %+v, want the pending CPUHigh only", s.Alerts)
		}
	})

	t.Run("json", func(t *testing.T) {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Snapshot
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Clinical) != len(s.Clinical) || back.Figure(Key{prodVersion, AllDomains}).Sensitivity != (Rate{7, 8}) {
			t.Errorf("snapshot does not read back: %s", b)
		}
		if !strings.Contains(string(b), `"sensitivity":{"value":0.875,"num":7,"den":8}`) {
			t.Errorf("snapshot JSON lacks the sensitivity as a rate: %s", b)
		}
	})
}

// A snapshot with no data at all: nothing to divide, nothing reported.
func TestRefreshEmpty(t *testing.T) {
	db := openSQLite(t)
	s, err := New(db, Config{Serving: func() []string { return []string{prodVersion} }}).Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Clinical) != 0 || s.Safety.Score != nil || s.Compliance.Score != nil || s.Runtime.P95Seconds != nil ||
		s.Runtime.MemoryMB != nil || s.MinSamples != 30 {
		t.Errorf("empty snapshot = %+v", s)
	}
	if _, ok := s.Runtime.CacheHitRate.Value(); ok {
		t.Error("cache hit rate without answers")
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}

// gathered is name{label="value",…} → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestExporter(t *testing.T) {
	f := newFixture(t)
	m := f.monitor(12)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewExporter(m, f.coll)); err != nil {
		t.Fatal(err)
	}
	// Before the first snapshot: only this replica's CPU, after two flushes.
	if got := gather(t, reg); len(got) != 0 {
		t.Errorf("before a snapshot and a second flush: %v", got)
	}
	f.collClk.Advance(time.Second)
	if err := f.coll.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := gather(t, reg)
	vd := func(name, version, domain string) string {
		return fmt.Sprintf("%s{domain=%q,version=%q}", name, domain, version)
	}
	want := map[string]float64{
		vd("medserve_clinical_accuracy", prodVersion, AllDomains):              11.0 / 12,
		vd("medserve_clinical_exact_accuracy", prodVersion, AllDomains):        11.0 / 12,
		vd("medserve_clinical_sensitivity", prodVersion, AllDomains):           7.0 / 8,
		vd("medserve_clinical_sensitivity", prodVersion, "neurology"):          0.5,
		vd("medserve_clinical_specificity", prodVersion, AllDomains):           1,
		vd("medserve_clinical_false_negative_rate", prodVersion, AllDomains):   1.0 / 8,
		vd("medserve_clinical_undertriage_rate", prodVersion, AllDomains):      1.0 / 12,
		vd("medserve_clinical_escalation_accuracy", prodVersion, AllDomains):   1,
		vd("medserve_clinical_interaction_detection", prodVersion, AllDomains): 0.5,
		vd("medserve_clinical_critical_miss_rate", prodVersion, AllDomains):    0.2,
		vd("medserve_clinical_critical_miss_rate", canaryVersion, AllDomains):  0,
		vd("medserve_clinical_feedback_samples", prodVersion, AllDomains):      12,
		vd("medserve_clinical_feedback_samples", prodVersion, "cardiology"):    6,
		"medserve_safety_score{}":                                            0.6,
		"medserve_compliance_score{}":                                        13.0 / 14,
		"medserve_cache_hit_rate{}":                                          0.25,
		`medserve_input_drift_psi{feature="sex"}`:                            2 * (1 - 1e-4) * math.Log(1e4),
		`medserve_input_drift_psi{feature="age"}`:                            0,
		"medserve_oversight_mode{}":                                          1,
		"medserve_caching_mode{}":                                            0,
		"medserve_compliance_mode{}":                                         0,
		"medserve_scale_up_requested{}":                                      0,
		`medserve_alerts{rule="CPUHigh",severity="warning",state="pending"}`: 1,
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("missing %s", k)
			continue
		}
		if math.Abs(g-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
	// Figures without data are absent, not 0.
	for _, k := range []string{
		vd("medserve_clinical_specificity", prodVersion, "cardiology"),      // no non-urgent patients
		vd("medserve_clinical_feedback_samples", canaryVersion, AllDomains), // no feedback
		vd("medserve_clinical_accuracy", canaryVersion, AllDomains),
		`medserve_alerts{rule="MemoryHigh",severity="warning",state="resolved"}`,
	} {
		if _, ok := got[k]; ok {
			t.Errorf("%s exported without data", k)
		}
	}
	if v, ok := got["medserve_cpu_utilization{}"]; !ok || v < 0 {
		t.Errorf("this replica's CPU = %v, %v; want a share after two flushes", v, ok)
	}

	// Below MinSamples the safety score is not exported at all.
	reg2 := prometheus.NewPedanticRegistry()
	m2 := f.monitor(13)
	reg2.MustRegister(NewExporter(m2, nil))
	if _, err := m2.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got2 := gather(t, reg2)
	if _, ok := got2["medserve_safety_score{}"]; ok {
		t.Error("safety score exported below MinSamples")
	}
	if _, ok := got2["medserve_cpu_utilization{}"]; ok {
		t.Error("CPU exported without a collector")
	}
}

// A figure that is not finite is never exported (a NaN gauge would make
// every alert comparison on it false, silently).
func TestExporterSkipsNonFinite(t *testing.T) {
	m := New(nil, Config{})
	m.latest.Store(&Snapshot{
		Drift:      Drift{PSI: map[string]float64{"sex": math.NaN(), "age": math.Inf(1), "hr": 0.2}},
		Safety:     Safety{Score: f64(math.NaN())},
		Compliance: Compliance{Score: f64(1)},
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewExporter(m, nil))
	got := gather(t, reg)
	for _, k := range []string{`medserve_input_drift_psi{feature="sex"}`, `medserve_input_drift_psi{feature="age"}`, "medserve_safety_score{}"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %v exported", k, v)
		}
	}
	if got[`medserve_input_drift_psi{feature="hr"}`] != 0.2 || got["medserve_compliance_score{}"] != 1 {
		t.Errorf("finite figures missing: %v", got)
	}
}
