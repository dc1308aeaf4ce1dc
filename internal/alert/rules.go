// Package alert evaluates the alert rules of SPEC section 11 against the
// monitor's snapshots and acts: it rolls back, switches on human oversight,
// caching or compliance mode, opens incidents and pages. State (alerts,
// incidents, modes) lives in the store, so whichever replica holds the
// engine's lock carries on where another left off.
package alert

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"medserve/internal/monitor"
)

// Action is something a firing rule does.
type Action string

// Actions, following the seed's mapping (SPEC section 11).
const (
	Rollback   Action = "rollback"        // to the last validated version
	Oversight  Action = "oversight"       // every answer review_required
	Caching    Action = "enable_caching"  // switch the answer cache on
	ScaleUp    Action = "scale_up"        // signal (metric and webhook)
	Compliance Action = "compliance_mode" // refuse what cannot be audited at once
	Incident   Action = "incident"        // open an incident with a report
	Page       Action = "page"            // the webhook, for a person to act
	Notify     Action = "notify"          // log and webhook, for information
)

// Observation is one label set's value of a rule's figure.
type Observation struct {
	Labels    map[string]string
	Value     float64
	Threshold float64
	Samples   int  // what the figure rests on
	Breached  bool // the condition holds
}

// Rule is one alert rule.
type Rule struct {
	Name     string
	Severity string // warning or critical
	Summary  string // what it means, for a person
	Window   string // the window its figure is computed over (documentation)
	For      time.Duration
	Actions  []Action
	// Observe returns the rule's observations; only those with enough
	// samples are returned (a rule cannot fire on too little data).
	Observe func(s *monitor.Snapshot) []Observation
}

// clinicalActions: a model that has become less accurate or less safe
// than validated goes back to the last validated version and a person
// reviews every answer until a clinician has looked.
var clinicalActions = []Action{Rollback, Oversight, Incident, Notify}

// DefaultRules are the seed's rules and thresholds.
func DefaultRules() []Rule {
	atLeast := func(v, t float64) bool { return v < t }
	atMost := func(v, t float64) bool { return v > t }
	return []Rule{
		{Name: "ResponseTimeWarning", Severity: "warning", Window: "runtime", For: time.Minute, Actions: []Action{Notify},
			Summary: "95th percentile response time above 2000 ms",
			Observe: latency(2, func(r monitor.Runtime) monitor.Rate { return r.Over2s })},
		{Name: "ResponseTimeCritical", Severity: "critical", Window: "runtime", For: time.Minute, Actions: []Action{ScaleUp, Caching, Notify},
			Summary: "95th percentile response time above 5000 ms",
			Observe: latency(5, func(r monitor.Runtime) monitor.Rate { return r.Over5s })},
		{Name: "AccuracyDegraded", Severity: "critical", Window: "clinical", For: 5 * time.Minute, Actions: clinicalActions,
			Summary: "triage accuracy below target",
			Observe: clinical(func(c *monitor.Clinical) monitor.Rate { return c.Accuracy },
				func(t monitor.Targets, _ string) float64 { return t.Accuracy }, atLeast, true)},
		{Name: "DomainAccuracyDegraded", Severity: "warning", Window: "clinical", For: 5 * time.Minute, Actions: clinicalActions,
			Summary: "accuracy in a medical domain below 95 % of its target",
			Observe: clinical(func(c *monitor.Clinical) monitor.Rate { return c.Accuracy },
				func(t monitor.Targets, d string) float64 { return t.DomainAccuracy[d] }, atLeast, false)},
		{Name: "SensitivityDegraded", Severity: "critical", Window: "clinical", For: 0, Actions: clinicalActions,
			Summary: "sensitivity for urgent patients (acuity 1–3) below 0.95",
			Observe: clinical(func(c *monitor.Clinical) monitor.Rate { return c.Sensitivity },
				func(t monitor.Targets, _ string) float64 { return t.Sensitivity }, atLeast, true)},
		{Name: "FalseNegativeRateHigh", Severity: "critical", Window: "clinical", For: 0, Actions: clinicalActions,
			Summary: "false-negative rate for urgent patients above 0.05",
			Observe: clinical(func(c *monitor.Clinical) monitor.Rate { return c.FNR },
				func(t monitor.Targets, _ string) float64 { return t.FNR }, atMost, true)},
		{Name: "CriticalSymptomMissed", Severity: "critical", Window: "clinical", For: 0, Actions: clinicalActions,
			Summary: "answers with an affirmed red-flag symptom given acuity 3 or less urgent",
			Observe: criticalMiss()},
		{Name: "EscalationAccuracyLow", Severity: "critical", Window: "clinical", For: 0, Actions: clinicalActions,
			Summary: "patients confirmed acuity 1–2 not answered 1–2",
			Observe: clinical(func(c *monitor.Clinical) monitor.Rate { return c.EscalationAccuracy },
				func(t monitor.Targets, _ string) float64 { return t.Escalation }, atLeast, true)},
		{Name: "InteractionDetectionLow", Severity: "warning", Window: "clinical", For: 5 * time.Minute, Actions: []Action{Notify},
			Summary: "confirmed drug interactions the answer did not alert on",
			Observe: clinical(func(c *monitor.Clinical) monitor.Rate { return c.InteractionDetection },
				func(t monitor.Targets, _ string) float64 { return t.InteractionDetection }, atLeast, true)},
		{Name: "SafetyScoreLow", Severity: "critical", Window: "clinical", For: 0, Actions: []Action{Rollback, Page, Incident},
			Summary: "the production version fails validation-gate checks on live feedback (safety score below 0.90)",
			Observe: safety(0.90)},
		{Name: "ComplianceBelowTarget", Severity: "critical", Window: "compliance", For: 0, Actions: []Action{Compliance, Incident, Notify},
			Summary: "stored queries without an audit event",
			Observe: compliance()},
		{Name: "MemoryHigh", Severity: "warning", Window: "runtime", For: 5 * time.Minute, Actions: []Action{Notify},
			Summary: "resident memory above 8192 MB",
			Observe: gauge(func(r monitor.Runtime) *float64 { return r.MemoryMB }, 8192)},
		{Name: "CPUHigh", Severity: "warning", Window: "runtime", For: 5 * time.Minute, Actions: []Action{Notify},
			Summary: "CPU above 85 % of what the replica may use",
			Observe: gauge(func(r monitor.Runtime) *float64 { return r.CPUUtilization }, 0.85)},
		{Name: "CacheHitRateLow", Severity: "warning", Window: "runtime", For: 15 * time.Minute, Actions: []Action{Notify},
			Summary: "cache hit rate below 0.60",
			Observe: cacheHit(0.60)},
		{Name: "InputDrift", Severity: "warning", Window: "runtime", For: 15 * time.Minute, Actions: []Action{Notify},
			Summary: "the inputs no longer look like the training data (PSI above 0.25): feedback will show it late",
			Observe: drift(0.25)},
	}
}

// minRuntimeAnswers is the fewest answers a runtime rate rests on.
const minRuntimeAnswers = 100

// latency fires when more than 5 % of answers are slower than bound, which
// is exactly "the 95th percentile is above bound".
func latency(bound float64, over func(monitor.Runtime) monitor.Rate) func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		r := over(s.Runtime)
		share, ok := r.Value()
		if !ok || r.Den < minRuntimeAnswers {
			return nil
		}
		v := share
		if s.Runtime.P95Seconds != nil {
			v = *s.Runtime.P95Seconds * 1000
		}
		return []Observation{{Labels: map[string]string{}, Value: v, Threshold: bound * 1000, Samples: r.Den, Breached: share > 0.05}}
	}
}

// clinical observes one figure for every serving version, over all
// domains (overall) or per domain.
func clinical(fig func(*monitor.Clinical) monitor.Rate, target func(monitor.Targets, string) float64,
	breached func(v, t float64) bool, overall bool) func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		var out []Observation
		for _, e := range s.Clinical {
			if !serving(s, e.Version) || (e.Domain == monitor.AllDomains) != overall {
				continue
			}
			r := fig(e.Clinical)
			v, ok := r.Value()
			// The minimum-sample rule counts feedback rows, not only the
			// figure's denominator, so a window with 30 samples of which
			// 2 are urgent cannot act on a sensitivity of 1/2.
			if !ok || e.Samples < s.MinSamples {
				continue
			}
			t := target(s.Targets[e.Version], e.Domain)
			if t == 0 {
				continue // no target for this domain
			}
			out = append(out, Observation{Labels: map[string]string{"version": e.Version, "domain": e.Domain},
				Value: v, Threshold: t, Samples: e.Samples, Breached: breached(v, t)})
		}
		return out
	}
}

// criticalMiss is counted on answers (red-flag findings), not feedback:
// the minimum is on red-flag answers.
func criticalMiss() func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		var out []Observation
		for _, e := range s.Clinical {
			if !serving(s, e.Version) || e.Domain != monitor.AllDomains {
				continue
			}
			v, ok := e.CriticalMiss.Value()
			if !ok || e.CriticalMiss.Den < s.MinSamples {
				continue
			}
			t := s.Targets[e.Version].CriticalMiss
			out = append(out, Observation{Labels: map[string]string{"version": e.Version, "domain": e.Domain},
				Value: v, Threshold: t, Samples: e.CriticalMiss.Den, Breached: v > t})
		}
		return out
	}
}

func safety(threshold float64) func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		if s.Safety.Score == nil {
			return nil
		}
		return []Observation{{Labels: map[string]string{"version": s.Safety.Version}, Value: *s.Safety.Score,
			Threshold: threshold, Samples: s.Safety.Samples, Breached: *s.Safety.Score < threshold}}
	}
}

func compliance() func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		if s.Compliance.Score == nil {
			return nil
		}
		return []Observation{{Labels: map[string]string{}, Value: *s.Compliance.Score, Threshold: 1,
			Samples: int(s.Compliance.Queries), Breached: *s.Compliance.Score < 1}}
	}
}

func gauge(fig func(monitor.Runtime) *float64, threshold float64) func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		v := fig(s.Runtime)
		if v == nil {
			return nil
		}
		return []Observation{{Labels: map[string]string{}, Value: *v, Threshold: threshold, Samples: 1, Breached: *v > threshold}}
	}
}

func cacheHit(threshold float64) func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		r := s.Runtime.CacheHitRate
		v, ok := r.Value()
		if !ok || r.Den < minRuntimeAnswers {
			return nil
		}
		return []Observation{{Labels: map[string]string{}, Value: v, Threshold: threshold, Samples: r.Den, Breached: v < threshold}}
	}
}

func drift(threshold float64) func(*monitor.Snapshot) []Observation {
	return func(s *monitor.Snapshot) []Observation {
		if s.Drift.Answers < minRuntimeAnswers {
			return nil
		}
		var out []Observation
		for f, v := range s.Drift.PSI {
			out = append(out, Observation{Labels: map[string]string{"feature": f}, Value: v, Threshold: threshold,
				Samples: s.Drift.Answers, Breached: v > threshold})
		}
		return out
	}
}

func serving(s *monitor.Snapshot, version string) bool {
	for _, v := range s.Serving {
		if v == version {
			return true
		}
	}
	return false
}

// fingerprint identifies a rule's alert for one label set.
func fingerprint(rule string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(rule)
	for _, k := range keys {
		fmt.Fprintf(&b, ",%s=%s", k, labels[k])
	}
	return b.String()
}
