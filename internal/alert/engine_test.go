package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/monitor"
	"medserve/internal/store"
	"medserve/internal/store/sqlite"
)

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// clock is a clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fakeActuator records what the engine does outside the store. Production
// walks down versions (newest first) on each rollback.
type fakeActuator struct {
	mu          sync.Mutex
	versions    []string
	current     int
	rollbacks   []string // reasons
	rollbackErr error
	retireErr   error
	retired     []string
	sendErr     error
	sent        []Notification
	applied     [][]store.Mode
}

func newActuator(versions ...string) *fakeActuator { return &fakeActuator{versions: versions} }

func (f *fakeActuator) Rollback(_ context.Context, reason string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rollbackErr != nil {
		return "", "", f.rollbackErr
	}
	if f.current+1 >= len(f.versions) {
		return "", "", errors.New("no older validated version")
	}
	from := f.versions[f.current]
	f.current++
	f.rollbacks = append(f.rollbacks, reason)
	return from, f.versions[f.current], nil
}

func (f *fakeActuator) RetireCanary(_ context.Context, version, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retireErr != nil {
		return f.retireErr
	}
	f.retired = append(f.retired, version)
	return nil
}

func (f *fakeActuator) Production() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.versions[f.current]
}

func (f *fakeActuator) ApplyModes(modes []store.Mode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, modes)
}

func (f *fakeActuator) Send(_ context.Context, n Notification) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, n)
	return f.sendErr
}

func (f *fakeActuator) counts() (rollbacks, sent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rollbacks), len(f.sent)
}

func (f *fakeActuator) lastSent() Notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[len(f.sent)-1]
}

// accuracy is a snapshot in which version's overall accuracy is num/40
// (target 0.85: 33 or less breaches) and nothing else has a figure.
func accuracy(version string, num int, serving ...string) *monitor.Snapshot {
	if len(serving) == 0 {
		serving = []string{version}
	}
	s := &monitor.Snapshot{MinSamples: 30, Serving: serving, Targets: map[string]monitor.Targets{}}
	for _, v := range serving {
		s.Targets[v] = monitor.SeedTargets()
	}
	s.Clinical = []monitor.ClinicalEntry{{Key: monitor.Key{Version: version, Domain: monitor.AllDomains},
		Clinical: &monitor.Clinical{Samples: 40, Accuracy: monitor.Rate{Num: num, Den: 40}}}}
	return s
}

func active(t *testing.T, db store.Store) []store.Alert {
	t.Helper()
	as, err := db.Alerts(context.Background(), store.AlertFilter{State: "active"})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func allAlerts(t *testing.T, db store.Store) []store.Alert {
	t.Helper()
	as, err := db.Alerts(context.Background(), store.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func incidents(t *testing.T, db store.Store) []store.Incident {
	t.Helper()
	ins, err := db.Incidents(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

func reportOf(t *testing.T, in store.Incident) Report {
	t.Helper()
	var r Report
	if err := json.Unmarshal([]byte(in.Report), &r); err != nil {
		t.Fatalf("incident %d report %q: %v", in.ID, in.Report, err)
	}
	return r
}

func actionOf(r Report, a Action) (ActionResult, bool) {
	for _, x := range r.Actions {
		if x.Action == a {
			return x, true
		}
	}
	return ActionResult{}, false
}

func mode(t *testing.T, db store.Store, name string) store.Mode {
	t.Helper()
	ms, err := db.Modes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m
		}
	}
	return store.Mode{}
}

func evaluate(t *testing.T, e *Engine, s *monitor.Snapshot) {
	t.Helper()
	if err := e.Evaluate(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// The whole cycle of a clinical alert: pending until its for-duration has
// passed, firing once (acting once), resolved; a second firing inside the
// cool-down does not roll back, one after it does.
func TestEngineLifecycle(t *testing.T) {
	db := openStore(t)
	t0 := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	act := newActuator("m/v2", "m/v1", "m/v0")
	var logs []string
	e := NewEngine(db, nil, act, Config{Now: clk.Now, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	at := func(d time.Duration) { clk.Set(t0.Add(d)) }

	// A breach: pending, nothing done.
	evaluate(t, e, accuracy("m/v2", 30))
	as := active(t, db)
	if len(as) != 1 || as[0].State != "pending" || as[0].Rule != "AccuracyDegraded" || as[0].FiredAt != nil ||
		as[0].Labels["version"] != "m/v2" || as[0].Labels["domain"] != "all" || as[0].Value != 0.75 || as[0].Threshold != 0.85 ||
		!as[0].StartedAt.Equal(t0) || as[0].Severity != "critical" {
		t.Fatalf("after the first breach: %+v", as)
	}
	id := as[0].ID
	if !strings.Contains(as[0].Summary, "version=m/v2") || !strings.Contains(as[0].Summary, "40 samples") {
		t.Errorf("summary %q", as[0].Summary)
	}

	// Still pending just before the rule's five minutes.
	at(5*time.Minute - time.Second)
	evaluate(t, e, accuracy("m/v2", 31))
	as = active(t, db)
	if len(as) != 1 || as[0].ID != id || as[0].State != "pending" || as[0].Value != 31.0/40 || !as[0].StartedAt.Equal(t0) {
		t.Fatalf("before For: %+v", as)
	}
	if r, s := act.counts(); r != 0 || s != 0 || len(incidents(t, db)) != 0 {
		t.Fatalf("acted while pending: %d rollbacks, %d sent", r, s)
	}

	// Five minutes: firing, and every action once.
	at(5 * time.Minute)
	evaluate(t, e, accuracy("m/v2", 30))
	as = active(t, db)
	if len(as) != 1 || as[0].ID != id || as[0].State != "firing" || as[0].FiredAt == nil || !as[0].FiredAt.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("at For: %+v", as)
	}
	if r, s := act.counts(); r != 1 || s != 1 {
		t.Fatalf("at For: %d rollbacks, %d sent; want 1, 1", r, s)
	}
	ins := incidents(t, db)
	if len(ins) != 1 {
		t.Fatalf("incidents = %d, want 1", len(ins))
	}
	in := ins[0]
	if in.AlertID != id || in.Rule != "AccuracyDegraded" || in.Severity != "critical" || in.Status != "open" || as[0].IncidentID != in.ID {
		t.Errorf("incident %+v, alert's incident %d", in, as[0].IncidentID)
	}
	rep := reportOf(t, in)
	if rep.Rule != "AccuracyDegraded" || !rep.RolledBack || rep.Versions["before"] != "m/v2" || rep.Versions["after"] != "m/v1" ||
		rep.Metrics == nil || len(rep.Metrics.Clinical) != 1 || rep.Resolved != nil || rep.Alert.ID != id {
		t.Errorf("report = %+v", rep)
	}
	for _, want := range []struct {
		a      Action
		detail string
	}{{Rollback, "m/v2 → m/v1"}, {Oversight, "review_required"}, {Page, "webhook"}} {
		got, ok := actionOf(rep, want.a)
		if !ok || !got.OK || !strings.Contains(got.Detail, want.detail) || !got.Time.Equal(t0.Add(5*time.Minute)) {
			t.Errorf("action %s = %+v (present %v), want ok with %q", want.a, got, ok, want.detail)
		}
	}
	if m := mode(t, db, "oversight"); !m.Enabled || m.Actor != "alert-engine" || !strings.Contains(m.Reason, "AccuracyDegraded") ||
		!strings.Contains(m.Reason, fmt.Sprintf("incident #%d", in.ID)) {
		t.Errorf("oversight mode = %+v", m)
	}
	act.mu.Lock()
	reason := act.rollbacks[0]
	act.mu.Unlock()
	if !strings.Contains(reason, "AccuracyDegraded") || !strings.Contains(reason, fmt.Sprintf("incident #%d", in.ID)) {
		t.Errorf("rollback reason %q", reason)
	}
	if n := act.lastSent(); !n.Page || n.Status != "firing" || n.AlertID != id || n.IncidentID != in.ID || len(n.Actions) < 2 {
		t.Errorf("notification = %+v", n)
	}

	// Evaluated again while it holds: nothing more is done.
	at(6 * time.Minute)
	evaluate(t, e, accuracy("m/v2", 29))
	evaluate(t, e, accuracy("m/v2", 29))
	if r, s := act.counts(); r != 1 || s != 1 || len(incidents(t, db)) != 1 {
		t.Fatalf("acted again while firing: %d rollbacks, %d sent, %d incidents", r, s, len(incidents(t, db)))
	}
	if as := active(t, db); len(as) != 1 || as[0].State != "firing" || as[0].Value != 29.0/40 || as[0].IncidentID != in.ID {
		t.Fatalf("while firing: %+v", as)
	}

	// The condition clears: resolved, the report says when, and a
	// notification says so. Oversight stays until a person clears it.
	at(7 * time.Minute)
	evaluate(t, e, accuracy("m/v2", 39))
	if as := active(t, db); len(as) != 0 {
		t.Fatalf("active after clearing: %+v", as)
	}
	all := allAlerts(t, db)
	if len(all) != 1 || all[0].State != "resolved" || all[0].ResolvedAt == nil || !all[0].ResolvedAt.Equal(t0.Add(7*time.Minute)) {
		t.Fatalf("resolved alert = %+v", all)
	}
	if rep := reportOf(t, incidents(t, db)[0]); rep.Resolved == nil || !rep.Resolved.Equal(t0.Add(7*time.Minute)) || !rep.RolledBack {
		t.Errorf("report after resolving = %+v", rep)
	}
	if n := act.lastSent(); n.Status != "resolved" || n.AlertID != id || n.IncidentID != in.ID {
		t.Errorf("resolved notification = %+v", n)
	}
	if !mode(t, db, "oversight").Enabled {
		t.Error("oversight cleared by a quiet window")
	}

	// Production is now m/v1. It degrades too, inside the cool-down
	// (30 min after the rollback at +5 min): no second rollback.
	at(10 * time.Minute)
	evaluate(t, e, accuracy("m/v1", 30))
	at(15 * time.Minute)
	evaluate(t, e, accuracy("m/v1", 30))
	if r, _ := act.counts(); r != 1 {
		t.Fatalf("rolled back inside the cool-down (%d rollbacks)", r)
	}
	ins = incidents(t, db) // newest first
	if len(ins) != 2 {
		t.Fatalf("incidents = %d, want 2", len(ins))
	}
	rep = reportOf(t, ins[0])
	rb, ok := actionOf(rep, Rollback)
	if !ok || rb.OK || !strings.Contains(rb.Detail, "cool-down") || rep.RolledBack ||
		rep.Versions["before"] != "m/v1" || rep.Versions["after"] != "m/v1" {
		t.Errorf("report inside the cool-down: rollback %+v, report %+v", rb, rep)
	}
	if ov, ok := actionOf(rep, Oversight); !ok || !ov.OK {
		t.Errorf("oversight not taken inside the cool-down: %+v", rep.Actions)
	}

	// After the cool-down a new firing rolls back again.
	at(16 * time.Minute)
	evaluate(t, e, accuracy("m/v1", 39))
	at(40 * time.Minute)
	evaluate(t, e, accuracy("m/v1", 30))
	at(45 * time.Minute)
	evaluate(t, e, accuracy("m/v1", 30))
	if r, _ := act.counts(); r != 2 || act.Production() != "m/v0" {
		t.Fatalf("after the cool-down: %d rollbacks, production %s; want 2, m/v0", r, act.Production())
	}
	if rep := reportOf(t, incidents(t, db)[0]); !rep.RolledBack || rep.Versions["before"] != "m/v1" || rep.Versions["after"] != "m/v0" {
		t.Errorf("third report = %+v", rep)
	}
	if len(logs) == 0 {
		t.Error("nothing logged")
	}
}

// An alert about a version that is not in production (a canary) never
// rolls production back: the canary is retired instead, and when that
// fails the failure is on record; the rest of its actions are taken.
func TestEngineCanaryAlert(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retireErr error
		check     func(rb ActionResult, retired []string) bool
	}{
		{"canary retired", nil, func(rb ActionResult, retired []string) bool {
			return rb.OK && strings.Contains(rb.Detail, "canary m/v3 retired") && len(retired) == 1 && retired[0] == "m/v3"
		}},
		{"retiring fails", errors.New("registry unreachable"), func(rb ActionResult, _ []string) bool {
			return !rb.OK && strings.Contains(rb.Detail, "about m/v3") && strings.Contains(rb.Detail, "registry unreachable")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openStore(t)
			clk := &clock{t: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)}
			act := newActuator("m/v2", "m/v1")
			act.retireErr = tc.retireErr
			e := NewEngine(db, nil, act, Config{Now: clk.Now})
			s := &monitor.Snapshot{MinSamples: 30, Serving: []string{"m/v2", "m/v3"},
				Targets: map[string]monitor.Targets{"m/v2": monitor.SeedTargets(), "m/v3": monitor.SeedTargets()},
				Clinical: []monitor.ClinicalEntry{
					{Key: monitor.Key{Version: "m/v3", Domain: monitor.AllDomains}, Clinical: &monitor.Clinical{Samples: 40, Sensitivity: monitor.Rate{Num: 10, Den: 20}}},
					{Key: monitor.Key{Version: "m/v2", Domain: monitor.AllDomains}, Clinical: &monitor.Clinical{Samples: 40, Sensitivity: monitor.Rate{Num: 20, Den: 20}}},
				}}
			evaluate(t, e, s) // SensitivityDegraded has no for-duration: firing at once
			as := active(t, db)
			if len(as) != 1 || as[0].State != "firing" || as[0].Labels["version"] != "m/v3" {
				t.Fatalf("alerts = %+v", as)
			}
			if r, _ := act.counts(); r != 0 || act.Production() != "m/v2" {
				t.Fatalf("rolled production back for a canary (%d rollbacks)", r)
			}
			rep := reportOf(t, incidents(t, db)[0])
			rb, ok := actionOf(rep, Rollback)
			if !ok || rep.RolledBack || !tc.check(rb, act.retired) {
				t.Errorf("rollback action = %+v; retired %v", rb, act.retired)
			}
			if !mode(t, db, "oversight").Enabled {
				t.Error("oversight not set")
			}
		})
	}
}

// Actions per rule, through the store's modes; what only lasts while an
// alert fires ends when it resolves.
func TestEngineActions(t *testing.T) {
	zero := time.Duration(0)
	tests := []struct {
		name      string
		s         *monitor.Snapshot
		rule      string
		modesOn   []string
		incident  bool
		page      bool
		rollback  bool
		afterOff  []string // modes switched off on resolving
		afterOn   []string // modes that stay on
		sendError bool
	}{
		{name: "response time critical: scale up, caching", rule: "ResponseTimeCritical",
			s:       &monitor.Snapshot{Runtime: monitor.Runtime{Answers: 200, P95Seconds: fp(7), Over5s: monitor.Rate{Num: 20, Den: 200}}},
			modesOn: []string{"scale_up", "caching"}, incident: true, page: true, afterOff: []string{"scale_up"}, afterOn: []string{"caching"}},
		{name: "compliance below 1: compliance mode", rule: "ComplianceBelowTarget",
			s:       &monitor.Snapshot{Compliance: monitor.Compliance{Queries: 10, Unaudited: 1, Score: fp(0.9)}},
			modesOn: []string{"compliance"}, incident: true, page: true, afterOn: []string{"compliance"}},
		{name: "safety score low on production: rollback and page", rule: "SafetyScoreLow",
			s:        &monitor.Snapshot{Serving: []string{"m/v2"}, Safety: monitor.Safety{Version: "m/v2", Samples: 40, Score: fp(0.6)}},
			incident: true, page: true, rollback: true},
		{name: "memory high: a warning notifies, no incident", rule: "MemoryHigh",
			s:    &monitor.Snapshot{Runtime: monitor.Runtime{MemoryMB: fp(9000)}},
			page: false},
		{name: "a failed webhook is recorded, the rest stands", rule: "ComplianceBelowTarget",
			s:       &monitor.Snapshot{Compliance: monitor.Compliance{Queries: 10, Unaudited: 1, Score: fp(0.9)}},
			modesOn: []string{"compliance"}, incident: true, page: true, sendError: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openStore(t)
			clk := &clock{t: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)}
			act := newActuator("m/v2", "m/v1")
			if tc.sendError {
				act.sendErr = errors.New("webhook: 503")
			}
			e := NewEngine(db, nil, act, Config{Now: clk.Now, ForOverride: &zero})
			evaluate(t, e, tc.s)
			as := active(t, db)
			if len(as) != 1 || as[0].Rule != tc.rule || as[0].State != "firing" {
				t.Fatalf("alerts = %+v, want %s firing", as, tc.rule)
			}
			for _, m := range tc.modesOn {
				if got := mode(t, db, m); !got.Enabled || !strings.Contains(got.Reason, tc.rule) {
					t.Errorf("mode %s = %+v", m, got)
				}
			}
			ins := incidents(t, db)
			if (len(ins) == 1) != tc.incident || (as[0].IncidentID != 0) != tc.incident {
				t.Errorf("incidents = %d (alert's %d), want one: %v", len(ins), as[0].IncidentID, tc.incident)
			}
			if r, _ := act.counts(); (r == 1) != tc.rollback {
				t.Errorf("rollbacks = %d, want one: %v", r, tc.rollback)
			}
			n := act.lastSent()
			if n.Page != tc.page || n.Rule != tc.rule {
				t.Errorf("notification = %+v, want page %v", n, tc.page)
			}
			if tc.incident {
				rep := reportOf(t, ins[0])
				want := map[bool]Action{true: Page, false: Notify}[tc.page]
				got, ok := actionOf(rep, want)
				if !ok || got.OK == tc.sendError {
					t.Errorf("%s action = %+v (present %v), want ok %v", want, got, ok, !tc.sendError)
				}
				if tc.sendError && !strings.Contains(got.Detail, "503") {
					t.Errorf("failed webhook detail %q", got.Detail)
				}
			}

			// Cleared: resolved; the scale-up signal ends, the rest stays.
			clk.Set(clk.Now().Add(time.Minute))
			evaluate(t, e, &monitor.Snapshot{})
			if as := active(t, db); len(as) != 0 {
				t.Fatalf("still active: %+v", as)
			}
			for _, m := range tc.afterOff {
				if mode(t, db, m).Enabled {
					t.Errorf("mode %s still on after resolving", m)
				}
			}
			for _, m := range tc.afterOn {
				if !mode(t, db, m).Enabled {
					t.Errorf("mode %s switched off by resolving", m)
				}
			}
			if n := act.lastSent(); n.Status != "resolved" || n.Rule != tc.rule {
				t.Errorf("last notification = %+v, want resolved", n)
			}
		})
	}
}

// A pending alert whose condition clears (or loses its samples) is
// resolved without having acted or notified.
func TestEnginePendingClears(t *testing.T) {
	db := openStore(t)
	clk := &clock{t: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)}
	act := newActuator("m/v2", "m/v1")
	e := NewEngine(db, nil, act, Config{Now: clk.Now})
	evaluate(t, e, accuracy("m/v2", 30))
	clk.Set(clk.Now().Add(time.Minute))
	few := accuracy("m/v2", 0)
	few.Clinical[0].Samples = 29 // below MinSamples: no observation
	evaluate(t, e, few)
	all := allAlerts(t, db)
	if len(all) != 1 || all[0].State != "resolved" || all[0].FiredAt != nil {
		t.Fatalf("alerts = %+v", all)
	}
	if r, s := act.counts(); r != 0 || s != 0 || len(incidents(t, db)) != 0 {
		t.Errorf("a pending alert acted: %d rollbacks, %d sent", r, s)
	}
	// A new breach is a new alert, starting over.
	evaluate(t, e, accuracy("m/v2", 30))
	as := active(t, db)
	if len(as) != 1 || as[0].ID == all[0].ID || as[0].State != "pending" || !as[0].StartedAt.Equal(clk.Now()) {
		t.Errorf("new breach = %+v", as)
	}
}

// The engine keeps its state in the store: a new engine (another replica
// taking over) carries on with the same alert, counts the for-duration
// from when it began, and neither duplicates the alert nor acts twice.
func TestEngineStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	t0 := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	act := newActuator("m/v2", "m/v1", "m/v0")
	evaluate(t, NewEngine(db, nil, act, Config{Now: clk.Now}), accuracy("m/v2", 30))

	clk.Set(t0.Add(5 * time.Minute))
	evaluate(t, NewEngine(db, nil, act, Config{Now: clk.Now}), accuracy("m/v2", 30))
	all := allAlerts(t, db)
	if len(all) != 1 || all[0].State != "firing" || !all[0].StartedAt.Equal(t0) {
		t.Fatalf("after a restart: %+v; want the one alert, firing", all)
	}
	if r, _ := act.counts(); r != 1 {
		t.Fatalf("rollbacks = %d, want 1", r)
	}

	clk.Set(t0.Add(6 * time.Minute))
	evaluate(t, NewEngine(db, nil, act, Config{Now: clk.Now}), accuracy("m/v2", 30))
	if all := allAlerts(t, db); len(all) != 1 || all[0].State != "firing" {
		t.Fatalf("after a second restart: %+v", all)
	}
	if r, s := act.counts(); r != 1 || s != 1 || len(incidents(t, db)) != 1 {
		t.Fatalf("acted again after a restart: %d rollbacks, %d sent", r, s)
	}
	// The cool-down too lives in the store: a fresh engine inside it
	// does not roll back.
	clk.Set(t0.Add(7 * time.Minute))
	evaluate(t, NewEngine(db, nil, act, Config{Now: clk.Now}), accuracy("m/v2", 39))
	clk.Set(t0.Add(8 * time.Minute))
	evaluate(t, NewEngine(db, nil, act, Config{Now: clk.Now}), accuracy("m/v1", 30, "m/v1"))
	clk.Set(t0.Add(14 * time.Minute))
	evaluate(t, NewEngine(db, nil, act, Config{Now: clk.Now}), accuracy("m/v1", 30, "m/v1"))
	if r, _ := act.counts(); r != 1 {
		t.Fatalf("a new engine rolled back inside the cool-down (%d rollbacks)", r)
	}

	// The store refuses a second unresolved alert for one fingerprint.
	a := active(t, db)[0]
	a.ID = 0
	if _, err := db.SaveAlert(ctx, a); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second unresolved alert: %v, want ErrConflict", err)
	}
}

// A failed rollback is recorded and leaves production as it was.
func TestEngineRollbackFails(t *testing.T) {
	db := openStore(t)
	clk := &clock{t: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)}
	act := newActuator("m/v2") // nothing older
	e := NewEngine(db, nil, act, Config{Now: clk.Now})
	evaluate(t, e, &monitor.Snapshot{Serving: []string{"m/v2"}, Safety: monitor.Safety{Version: "m/v2", Samples: 40, Score: fp(0.4)}})
	rep := reportOf(t, incidents(t, db)[0])
	rb, ok := actionOf(rep, Rollback)
	if !ok || rb.OK || !strings.Contains(rb.Detail, "no older validated version") || rep.RolledBack || act.Production() != "m/v2" {
		t.Errorf("rollback = %+v, report %+v", rb, rep)
	}
	// A failed rollback starts no cool-down: the next firing tries again.
	clk.Set(clk.Now().Add(time.Minute))
	evaluate(t, e, &monitor.Snapshot{})
	act.versions = append(act.versions, "m/v1")
	clk.Set(clk.Now().Add(time.Minute))
	evaluate(t, e, &monitor.Snapshot{Serving: []string{"m/v2"}, Safety: monitor.Safety{Version: "m/v2", Samples: 40, Score: fp(0.4)}})
	if r, _ := act.counts(); r != 1 || act.Production() != "m/v1" {
		t.Errorf("after a failed rollback: %d rollbacks, production %s", r, act.Production())
	}
}

// seedFeedback writes answers of version with their audit events (one
// recorder batch) and the clinicians' feedback.
func seedFeedback(t *testing.T, db store.Store, version string, now time.Time, rows [][2]int) {
	t.Helper()
	ctx := context.Background()
	var b store.Batch
	for i, r := range rows {
		id := fmt.Sprintf("%s-%d", version, i)
		b.Queries = append(b.Queries, store.QueryRecord{RequestID: id, PatientPseudonym: "p", Time: now.Add(-20 * time.Minute),
			Domain: "emergency", Urgency: "medium", Acuity: r[0], FindingsJSON: "[]", ModelVersion: version, QueryHash: "h" + id})
		b.Events = append(b.Events, audit.Event{Time: now.Add(-20 * time.Minute), Action: "inference", Resource: "triage",
			RequestID: id, Outcome: audit.OutcomeOK})
	}
	if _, err := db.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if err := db.SaveFeedback(ctx, store.Feedback{RequestID: fmt.Sprintf("%s-%d", version, i), TrueAcuity: r[1], Time: now.Add(-10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
}

// Tick: a real monitor reads the store, the engine evaluates under the
// store's singleton lock, and this replica applies the modes at once.
func TestEngineTick(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	// (answered, true): 3 of 4 urgent patients answered 4: sensitivity 1/4,
	// FNR 3/4, escalation 1/4, accuracy 3/6, safety score low.
	rows := [][2]int{{4, 2}, {4, 2}, {4, 2}, {2, 2}, {5, 5}, {5, 5}}
	for _, tc := range []struct {
		name       string
		forZero    bool
		wantFiring []string
	}{
		{"rules' own for-durations", false,
			[]string{"EscalationAccuracyLow", "FalseNegativeRateHigh", "SafetyScoreLow", "SensitivityDegraded"}},
		{"ForOverride 0", true,
			[]string{"AccuracyDegraded", "DomainAccuracyDegraded", "EscalationAccuracyLow", "FalseNegativeRateHigh", "SafetyScoreLow", "SensitivityDegraded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openStore(t)
			seedFeedback(t, db, "m/v2", now, rows)
			clk := &clock{t: now}
			act := newActuator("m/v2", "m/v1")
			mon := monitor.New(db, monitor.Config{MinSamples: 6, Now: clk.Now, Serving: func() []string { return []string{act.Production()} }})
			cfg := Config{Now: clk.Now}
			if tc.forZero {
				zero := time.Duration(0)
				cfg.ForOverride = &zero
			}
			e := NewEngine(db, mon, act, cfg)

			// Another replica holds the engine's lock: this one refreshes
			// and follows the modes, but does not evaluate.
			var innerErr error
			ran, err := db.Singleton(ctx, singletonName, func(ctx context.Context) error {
				innerErr = e.Tick(ctx)
				return nil
			})
			if !ran || err != nil || innerErr != nil {
				t.Fatalf("Singleton: %v %v %v", ran, err, innerErr)
			}
			if as := allAlerts(t, db); len(as) != 0 {
				t.Fatalf("evaluated without the lock: %+v", as)
			}
			if act.applied == nil || mon.Latest() == nil {
				t.Fatal("a replica without the lock did not refresh and apply the modes")
			}

			if err := e.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			firing := map[string]bool{}
			var pending []string
			for _, a := range active(t, db) {
				if a.State == "firing" {
					firing[a.Rule] = true
				} else {
					pending = append(pending, a.Rule)
				}
				if a.Labels["version"] != "m/v2" {
					t.Errorf("alert %s about %q", a.Rule, a.Labels["version"])
				}
			}
			for _, r := range tc.wantFiring {
				if !firing[r] {
					t.Errorf("%s not firing (firing %v, pending %v)", r, firing, pending)
				}
			}
			if len(firing) != len(tc.wantFiring) {
				t.Errorf("firing %v, want %v", firing, tc.wantFiring)
			}
			if !tc.forZero && (len(pending) != 2) {
				t.Errorf("pending = %v, want AccuracyDegraded and DomainAccuracyDegraded", pending)
			}
			// Several rules fired about one version: one rollback.
			if r, _ := act.counts(); r != 1 || act.Production() != "m/v1" {
				t.Errorf("rollbacks = %d (production %s), want exactly 1", r, act.Production())
			}
			rolledBack := 0
			for _, in := range incidents(t, db) {
				if reportOf(t, in).RolledBack {
					rolledBack++
				}
			}
			if rolledBack != 1 {
				t.Errorf("%d incident reports say rolled back, want 1", rolledBack)
			}
			// This replica follows oversight at once, from the store.
			act.mu.Lock()
			last := act.applied[len(act.applied)-1]
			act.mu.Unlock()
			on := false
			for _, m := range last {
				on = on || (m.Name == "oversight" && m.Enabled)
			}
			if !on {
				t.Errorf("modes applied after evaluating = %+v, want oversight on", last)
			}

			// A second tick acts no more.
			clk.Set(now.Add(time.Minute))
			if err := e.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			if r, _ := act.counts(); r != 1 {
				t.Errorf("rollbacks after a second tick = %d", r)
			}
		})
	}
}

// Run ticks until its context ends.
func TestEngineRun(t *testing.T) {
	db := openStore(t)
	now := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	seedFeedback(t, db, "m/v2", now, [][2]int{{4, 2}, {4, 2}, {4, 2}, {2, 2}, {5, 5}, {5, 5}})
	act := newActuator("m/v2", "m/v1")
	clk := &clock{t: now}
	mon := monitor.New(db, monitor.Config{MinSamples: 6, Now: clk.Now, Serving: func() []string { return []string{act.Production()} }})
	e := NewEngine(db, mon, act, Config{Now: clk.Now, Interval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	deadline := time.After(10 * time.Second)
	for {
		act.mu.Lock()
		ticks := len(act.applied)
		act.mu.Unlock()
		if ticks >= 6 { // two applications per tick: three ticks at least
			break
		}
		select {
		case <-deadline:
			t.Fatalf("Run ticked %d times in 10 s", ticks)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if r, _ := act.counts(); r != 1 {
		t.Errorf("rollbacks over several ticks = %d, want 1", r)
	}
}
