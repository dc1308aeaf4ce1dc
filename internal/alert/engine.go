package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"medserve/internal/monitor"
	"medserve/internal/store"
)

// Store is what the engine keeps its state in.
type Store interface {
	SaveAlert(ctx context.Context, a store.Alert) (store.Alert, error)
	Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
	SaveIncident(ctx context.Context, in store.Incident) (store.Incident, error)
	Incident(ctx context.Context, id int64) (store.Incident, error)
	Incidents(ctx context.Context, limit int) ([]store.Incident, error)
	SetMode(ctx context.Context, m store.Mode) error
	Modes(ctx context.Context) ([]store.Mode, error)
	Singleton(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)
}

// Actuator does what the engine decides outside the store.
type Actuator interface {
	// Rollback returns production to the last validated version before
	// the serving one and names both; ErrNoRollback-like errors leave
	// everything as it was.
	Rollback(ctx context.Context, reason string) (from, to string, err error)
	// Production names the version in production now.
	Production() string
	// RetireCanary takes a canary ("name/version") out of service: its
	// share of patients goes back to production.
	RetireCanary(ctx context.Context, version, reason string) error
	// ApplyModes makes this replica follow the modes at once (others
	// follow when they next read the store).
	ApplyModes(modes []store.Mode)
	// Send delivers a notification or a page (the webhook); nil when no
	// webhook is configured.
	Send(ctx context.Context, n Notification) error
}

// Notification is what the webhook receives.
type Notification struct {
	Page       bool              `json:"page"`   // a person must act now
	Status     string            `json:"status"` // firing, resolved
	Rule       string            `json:"rule"`
	Severity   string            `json:"severity"`
	Summary    string            `json:"summary"`
	Labels     map[string]string `json:"labels"`
	Value      float64           `json:"value"`
	Threshold  float64           `json:"threshold"`
	AlertID    int64             `json:"alert_id"`
	IncidentID int64             `json:"incident_id,omitempty"`
	Actions    []ActionResult    `json:"actions,omitempty"`
	Time       time.Time         `json:"time"`
}

// ActionResult is one action taken, for the incident report and the log.
type ActionResult struct {
	Action Action    `json:"action"`
	Time   time.Time `json:"time"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail"`
}

// Report is an incident's report (stored as JSON).
type Report struct {
	Alert      store.Alert       `json:"alert"`
	Rule       string            `json:"rule"`
	Summary    string            `json:"summary"`
	Metrics    *monitor.Snapshot `json:"metrics"` // the snapshot the rule fired on
	Actions    []ActionResult    `json:"actions"`
	Versions   map[string]string `json:"model_versions"`           // before, after
	Related    []Related         `json:"related_alerts,omitempty"` // later alerts about the same version
	Resolved   *time.Time        `json:"resolved_at,omitempty"`
	RolledBack bool              `json:"rolled_back"`
}

// Related is an alert that joined an incident.
type Related struct {
	AlertID int64     `json:"alert_id"`
	Rule    string    `json:"rule"`
	Summary string    `json:"summary"`
	Time    time.Time `json:"time"`
}

// Config tunes the engine.
type Config struct {
	Rules    []Rule
	Interval time.Duration // how often rules are evaluated (15 s)
	// ForOverride, when set, replaces every rule's for-duration (drills
	// and tests that must see the whole cycle in seconds).
	ForOverride *time.Duration
	// RollbackCoolDown is the least time between two automatic rollbacks.
	RollbackCoolDown time.Duration
	Now              func() time.Time
	Logf             func(format string, args ...any)
}

// Engine evaluates rules and acts.
type Engine struct {
	st  Store
	mon *monitor.Monitor
	act Actuator
	cfg Config
}

// NewEngine builds an engine.
func NewEngine(st Store, mon *monitor.Monitor, act Actuator, cfg Config) *Engine {
	if cfg.Rules == nil {
		cfg.Rules = DefaultRules()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.RollbackCoolDown <= 0 {
		cfg.RollbackCoolDown = 30 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Engine{st: st, mon: mon, act: act, cfg: cfg}
}

// singletonName is the engine's lock: one replica evaluates at a time.
const singletonName = "alert-engine"

// Run evaluates every interval until ctx ends. Every replica runs it; the
// store's singleton lock lets one at a time evaluate, and every replica
// refreshes its monitor and follows the modes.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.cfg.Logf("alerts: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick refreshes the monitor, applies the modes on this replica and, if
// this replica holds the engine's lock, evaluates the rules.
func (e *Engine) Tick(ctx context.Context) error {
	snap, err := e.mon.Refresh(ctx)
	if err != nil {
		return err
	}
	e.act.ApplyModes(snap.Modes)
	ran, err := e.st.Singleton(ctx, singletonName, func(ctx context.Context) error { return e.Evaluate(ctx, snap) })
	if ran {
		// What this evaluation switched on applies here at once.
		if modes, merr := e.st.Modes(ctx); merr == nil {
			e.act.ApplyModes(modes)
		}
	}
	return err
}

// Evaluate moves every rule's alerts one step: a breached condition
// becomes pending, pending becomes firing once it has held for the rule's
// for-duration (and acts, once), and an alert whose condition no longer
// holds — or no longer has enough samples — is resolved.
func (e *Engine) Evaluate(ctx context.Context, snap *monitor.Snapshot) error {
	now := e.cfg.Now().UTC()
	active, err := e.st.Alerts(ctx, store.AlertFilter{State: "active", Limit: 10000})
	if err != nil {
		return fmt.Errorf("read active alerts: %w", err)
	}
	byFP := map[string]store.Alert{}
	for _, a := range active {
		byFP[a.Fingerprint] = a
	}
	seen := map[string]bool{}
	// One incident per model version while it is being dealt with: a
	// version that misses on sensitivity usually misses on FNR and
	// escalation too, and those alerts join its open incident instead of
	// paging again.
	incidentOf := map[string]int64{}
	for _, a := range active {
		if v := a.Labels["version"]; v != "" && a.State == "firing" && a.IncidentID != 0 {
			incidentOf[v] = a.IncidentID
		}
	}
	var errs []error
	for _, r := range e.cfg.Rules {
		forDur := r.For
		if e.cfg.ForOverride != nil {
			forDur = *e.cfg.ForOverride
		}
		for _, o := range r.Observe(snap) {
			if !o.Breached {
				continue
			}
			fp := fingerprint(r.Name, o.Labels)
			seen[fp] = true
			a, ok := byFP[fp]
			if !ok {
				a = store.Alert{Rule: r.Name, Fingerprint: fp, Severity: r.Severity, State: "pending", Labels: o.Labels, StartedAt: now}
			}
			a.Summary = fmt.Sprintf("%s: %s %.4g (threshold %.4g, %d samples)", r.Summary, describe(o.Labels), o.Value, o.Threshold, o.Samples)
			a.Value, a.Threshold, a.UpdatedAt = o.Value, o.Threshold, now
			fire := a.State == "pending" && now.Sub(a.StartedAt) >= forDur
			if fire {
				a.State, a.FiredAt = "firing", &now
			}
			if a, err = e.st.SaveAlert(ctx, a); err != nil {
				errs = append(errs, fmt.Errorf("save alert %s: %w", fp, err))
				continue
			}
			if !ok {
				e.cfg.Logf("alert %s pending: %s", r.Name, a.Summary)
			}
			if fire {
				e.cfg.Logf("alert %s firing: %s", r.Name, a.Summary)
				v := a.Labels["version"]
				if id, ok := incidentOf[v]; ok && v != "" {
					if err := e.join(ctx, r, a, id); err != nil {
						errs = append(errs, err)
					}
					continue
				}
				id, err := e.fire(ctx, r, a, snap)
				if err != nil {
					errs = append(errs, err)
				}
				if id != 0 && v != "" {
					incidentOf[v] = id
				}
			}
		}
	}
	for fp, a := range byFP {
		if seen[fp] {
			continue
		}
		wasFiring := a.State == "firing"
		a.State, a.ResolvedAt, a.UpdatedAt = "resolved", &now, now
		if _, err := e.st.SaveAlert(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("resolve alert %s: %w", fp, err))
			continue
		}
		e.cfg.Logf("alert %s resolved", a.Rule)
		if wasFiring {
			e.resolved(ctx, a)
		}
	}
	return errors.Join(errs...)
}

// join links a newly firing alert to the open incident of an earlier one
// about the same version: the actions were taken for that one.
func (e *Engine) join(ctx context.Context, r Rule, a store.Alert, incident int64) error {
	a.IncidentID = incident
	if _, err := e.st.SaveAlert(ctx, a); err != nil {
		return fmt.Errorf("link alert %d to incident %d: %w", a.ID, incident, err)
	}
	if in, err := e.st.Incident(ctx, incident); err == nil {
		var rep Report
		if json.Unmarshal([]byte(in.Report), &rep) == nil {
			rep.Related = append(rep.Related, Related{AlertID: a.ID, Rule: r.Name, Summary: a.Summary, Time: e.cfg.Now().UTC()})
			in.Report = mustJSON(rep)
			if _, err := e.st.SaveIncident(ctx, in); err != nil {
				return fmt.Errorf("add alert %d to incident %d: %w", a.ID, incident, err)
			}
		}
	}
	e.cfg.Logf("alert %s joins incident #%d (same version, already acted on)", r.Name, incident)
	_ = e.act.Send(ctx, e.notification(a, "firing", incident))
	return nil
}

// fire takes a rule's actions for a newly firing alert and returns the
// incident it opened (0 for none).
func (e *Engine) fire(ctx context.Context, r Rule, a store.Alert, snap *monitor.Snapshot) (int64, error) {
	rep := Report{Alert: a, Rule: r.Name, Summary: a.Summary, Metrics: snap, Versions: map[string]string{"before": e.act.Production()}}
	do := func(act Action, ok bool, detail string) {
		rep.Actions = append(rep.Actions, ActionResult{Action: act, Time: e.cfg.Now().UTC(), OK: ok, Detail: detail})
		e.cfg.Logf("alert %s action %s ok=%v: %s", r.Name, act, ok, detail)
	}
	reason := fmt.Sprintf("alert %s (#%d): %s", r.Name, a.ID, a.Summary)
	incident := has(r.Actions, Incident) || r.Severity == "critical"
	var in store.Incident
	var errs []error
	if incident {
		// The incident exists before anything is done, so a crash
		// part-way leaves a record of what was started. If it cannot be
		// opened the actions are still taken: the alert is firing now
		// and will not fire again.
		opened, err := e.st.SaveIncident(ctx, store.Incident{AlertID: a.ID, Rule: r.Name, Title: r.Summary, Severity: r.Severity,
			Status: "open", Report: mustJSON(rep), OpenedAt: e.cfg.Now().UTC()})
		if err != nil {
			errs = append(errs, fmt.Errorf("open incident for %s: %w", a.Fingerprint, err))
		} else {
			in = opened
			a.IncidentID = in.ID
			if _, err := e.st.SaveAlert(ctx, a); err != nil {
				errs = append(errs, fmt.Errorf("link incident to alert %d: %w", a.ID, err))
			}
			reason = fmt.Sprintf("alert %s (incident #%d): %s", r.Name, in.ID, a.Summary)
		}
	}
	for _, act := range r.Actions {
		switch act {
		case Rollback:
			e.rollback(ctx, a, reason, &rep, do)
		case Oversight:
			do(act, e.setMode(ctx, "oversight", true, reason) == nil, "every answer review_required until an admin clears it")
		case Caching:
			do(act, e.setMode(ctx, "caching", true, reason) == nil, "answer cache switched on")
		case ScaleUp:
			do(act, e.setMode(ctx, "scale_up", true, reason) == nil, "medserve_scale_up_requested = 1 until the alert resolves")
		case Compliance:
			do(act, e.setMode(ctx, "compliance", true, reason) == nil, "answers wait for their audit event to reach the store")
		}
	}
	rep.Versions["after"] = e.act.Production()
	page := has(r.Actions, Page) || r.Severity == "critical"
	n := e.notification(a, "firing", in.ID)
	n.Page, n.Actions = page, rep.Actions
	if err := e.act.Send(ctx, n); err != nil {
		do(map[bool]Action{true: Page, false: Notify}[page], false, err.Error())
	} else {
		do(map[bool]Action{true: Page, false: Notify}[page], true, "webhook delivered (or none configured); logged")
	}
	if in.ID != 0 {
		in.Report = mustJSON(rep)
		if _, err := e.st.SaveIncident(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("write incident %d report: %w", in.ID, err))
		}
	}
	return in.ID, errors.Join(errs...)
}

// rollback happens at most once per incident (it is one action of one
// firing), never more often than the cool-down allows, and only when the
// alert is about the version in production: a failing canary is not
// fixed by rolling production back.
func (e *Engine) rollback(ctx context.Context, a store.Alert, reason string, rep *Report, do func(Action, bool, string)) {
	prod := e.act.Production()
	if v := a.Labels["version"]; v != "" && v != prod {
		// A canary that fails is not fixed by rolling production back:
		// it stops answering patients instead.
		if err := e.act.RetireCanary(ctx, v, reason); err != nil {
			do(Rollback, false, fmt.Sprintf("not rolled back: the alert is about %s, production is %s; retiring it failed: %v", v, prod, err))
			return
		}
		do(Rollback, true, fmt.Sprintf("canary %s retired: its patients go to production %s", v, prod))
		return
	}
	if last, ok := e.lastRollback(ctx); ok && e.cfg.Now().Sub(last) < e.cfg.RollbackCoolDown {
		do(Rollback, false, fmt.Sprintf("not rolled back: cool-down (last automatic rollback %s, cool-down %s)", last.Format(time.RFC3339), e.cfg.RollbackCoolDown))
		return
	}
	from, to, err := e.act.Rollback(ctx, reason)
	if err != nil {
		do(Rollback, false, "not rolled back: "+err.Error())
		return
	}
	rep.RolledBack = true
	do(Rollback, true, fmt.Sprintf("production %s → %s", from, to))
}

// lastRollback finds the last automatic rollback in the incident reports
// (the engine's memory lives in the store, so a new leader keeps the
// cool-down).
func (e *Engine) lastRollback(ctx context.Context) (time.Time, bool) {
	ins, err := e.st.Incidents(ctx, 100)
	if err != nil {
		return time.Time{}, false
	}
	var last time.Time
	for _, in := range ins {
		var rep Report
		if json.Unmarshal([]byte(in.Report), &rep) != nil {
			continue
		}
		for _, a := range rep.Actions {
			if a.Action == Rollback && a.OK && a.Time.After(last) {
				last = a.Time
			}
		}
	}
	return last, !last.IsZero()
}

func (e *Engine) setMode(ctx context.Context, name string, on bool, reason string) error {
	if err := e.st.SetMode(ctx, store.Mode{Name: name, Enabled: on, Reason: reason, Actor: "alert-engine", UpdatedAt: e.cfg.Now().UTC()}); err != nil {
		e.cfg.Logf("alerts: set mode %s: %v", name, err)
		return err
	}
	return nil
}

// resolved notifies and ends what only lasts while the alert fires (the
// scale-up signal). Oversight stays until an admin clears it: a person
// decides the model is safe again, not a quiet window.
func (e *Engine) resolved(ctx context.Context, a store.Alert) {
	for _, r := range e.cfg.Rules {
		if r.Name == a.Rule && has(r.Actions, ScaleUp) {
			_ = e.setMode(ctx, "scale_up", false, fmt.Sprintf("alert %s (#%d) resolved", a.Rule, a.ID))
		}
	}
	if a.IncidentID != 0 {
		if in, err := e.st.Incident(ctx, a.IncidentID); err == nil {
			var rep Report
			if json.Unmarshal([]byte(in.Report), &rep) == nil {
				t := e.cfg.Now().UTC()
				rep.Resolved = &t
				in.Report = mustJSON(rep)
				_, _ = e.st.SaveIncident(ctx, in)
			}
		}
	}
	_ = e.act.Send(ctx, e.notification(a, "resolved", a.IncidentID))
}

// notification says what an alert is, for the webhook.
func (e *Engine) notification(a store.Alert, status string, incident int64) Notification {
	return Notification{Status: status, Rule: a.Rule, Severity: a.Severity, Summary: a.Summary, Labels: a.Labels,
		Value: a.Value, Threshold: a.Threshold, AlertID: a.ID, IncidentID: incident, Time: e.cfg.Now().UTC()}
}

func has(as []Action, a Action) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func describe(labels map[string]string) string {
	var parts []string
	for _, k := range []string{"version", "domain", "feature"} {
		if v := labels[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return "value"
	}
	return strings.Join(parts, " ")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}
