package alert

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"medserve/internal/monitor"
	"medserve/internal/validate"
)

const (
	prod   = "triage/v2"
	canary = "triage/v3"
	gone   = "triage/v1" // retired: has feedback, does not serve
)

func fp(v float64) *float64 { return &v }

// snap is a snapshot with prod and canary serving, the seed's targets and
// MinSamples 30; entries are added by the cases.
func snap(entries ...monitor.ClinicalEntry) *monitor.Snapshot {
	s := &monitor.Snapshot{MinSamples: 30, Serving: []string{prod, canary},
		Targets: map[string]monitor.Targets{prod: monitor.SeedTargets(), canary: monitor.SeedTargets()}, Clinical: entries}
	return s
}

func entry(version, domain string, c monitor.Clinical) monitor.ClinicalEntry {
	return monitor.ClinicalEntry{Key: monitor.Key{Version: version, Domain: domain}, Clinical: &c}
}

func with(s *monitor.Snapshot, f func(*monitor.Snapshot)) *monitor.Snapshot { f(s); return s }

func ruleNamed(t *testing.T, name string) Rule {
	t.Helper()
	for _, r := range DefaultRules() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %s", name)
	return Rule{}
}

// obs is an expected observation: labels as "k=v,k=v", value, threshold, breached.
type obs struct {
	labels    string
	value     float64
	threshold float64
	breached  bool
}

func labelString(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func TestRulesObserve(t *testing.T) {
	const n = 40 // feedback samples: above MinSamples
	all, cardio := monitor.AllDomains, "cardiology"
	tests := []struct {
		rule string
		name string
		s    *monitor.Snapshot
		want []obs
	}{
		// Response time: more than 5 % slower than the bound is p95 above it.
		{"ResponseTimeWarning", "breached", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime = monitor.Runtime{Answers: 200, P95Seconds: fp(2.5), Over2s: monitor.Rate{Num: 11, Den: 200}}
		}), []obs{{"", 2500, 2000, true}}},
		{"ResponseTimeWarning", "exactly 5 % slower: not breached", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime = monitor.Runtime{Answers: 200, P95Seconds: fp(2), Over2s: monitor.Rate{Num: 10, Den: 200}}
		}), []obs{{"", 2000, 2000, false}}},
		{"ResponseTimeWarning", "too few answers", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime = monitor.Runtime{Answers: 99, P95Seconds: fp(9), Over2s: monitor.Rate{Num: 99, Den: 99}}
		}), nil},
		{"ResponseTimeCritical", "breached", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime = monitor.Runtime{Answers: 100, P95Seconds: fp(5.5), Over5s: monitor.Rate{Num: 6, Den: 100}}
		}), []obs{{"", 5500, 5000, true}}},
		{"ResponseTimeCritical", "not breached", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime = monitor.Runtime{Answers: 100, P95Seconds: fp(4), Over5s: monitor.Rate{Num: 1, Den: 100}}
		}), []obs{{"", 4000, 5000, false}}},

		// Clinical: serving versions only, over all domains.
		{"AccuracyDegraded", "breached and not, serving only", with(snap(
			entry(prod, all, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 30, Den: n}}),
			entry(canary, all, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 36, Den: n}}),
			entry(gone, all, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 0, Den: n}}),
			entry(prod, cardio, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 0, Den: n}}),
		), func(s *monitor.Snapshot) {
			s.Targets[gone] = monitor.SeedTargets() // it has targets, yet does not serve
		}), []obs{{"domain=all,version=" + prod, 0.75, 0.85, true}, {"domain=all,version=" + canary, 0.9, 0.85, false}}},
		{"AccuracyDegraded", "below MinSamples", snap(
			entry(prod, all, monitor.Clinical{Samples: 29, Accuracy: monitor.Rate{Num: 0, Den: 29}}),
		), nil},
		{"AccuracyDegraded", "at MinSamples", snap(
			entry(prod, all, monitor.Clinical{Samples: 30, Accuracy: monitor.Rate{Num: 0, Den: 30}}),
		), []obs{{"domain=all,version=" + prod, 0, 0.85, true}}},
		{"AccuracyDegraded", "exactly on the target: not breached", snap(
			entry(prod, all, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 34, Den: n}}),
		), []obs{{"domain=all,version=" + prod, 0.85, 0.85, false}}},
		{"AccuracyDegraded", "the version's adjusted target", with(snap(
			entry(prod, all, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 32, Den: n}}),
		), func(s *monitor.Snapshot) {
			// Validated at 0.82: the target is 0.82 × 0.95 = 0.779, and 0.80 passes it.
			s.Targets[prod] = monitor.SeedTargets().AdjustTo(&validate.GateResult{Checks: []validate.GateCheck{
				{Name: validate.CheckAccuracy, Value: 0.82}}}, 0.05)
		}), []obs{{"domain=all,version=" + prod, 0.8, 0.82 * 0.95, false}}},

		{"DomainAccuracyDegraded", "per domain, against target × 0.95", snap(
			entry(prod, cardio, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 35, Den: n}}),    // 0.875 < 0.893
			entry(prod, "general", monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 35, Den: n}}), // 0.875 ≥ 0.836
			entry(prod, "pediatrics", monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 0, Den: n}}),
			entry(prod, all, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 0, Den: n}}),
			entry(gone, cardio, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 0, Den: n}}),
			entry(canary, "neurology", monitor.Clinical{Samples: 10, Accuracy: monitor.Rate{Num: 0, Den: 10}}),
		), []obs{{"domain=cardiology,version=" + prod, 0.875, 0.94 * 0.95, true}, {"domain=general,version=" + prod, 0.875, 0.88 * 0.95, false}}},
		{"DomainAccuracyDegraded", "a version validated lower", with(snap(
			entry(prod, cardio, monitor.Clinical{Samples: n, Accuracy: monitor.Rate{Num: 35, Den: n}}),
		), func(s *monitor.Snapshot) {
			s.Targets[prod] = monitor.SeedTargets().AdjustTo(&validate.GateResult{Checks: []validate.GateCheck{
				{Name: validate.CheckAccuracy, Value: 0.88}}}, 0.05)
		}), []obs{{"domain=cardiology,version=" + prod, 0.875, 0.88 * 0.95, false}}},

		// A window with 40 samples of which 2 are urgent may act on 1/2:
		// the minimum counts feedback rows.
		{"SensitivityDegraded", "breached on feedback rows", snap(
			entry(prod, all, monitor.Clinical{Samples: n, Sensitivity: monitor.Rate{Num: 1, Den: 2}}),
			entry(canary, all, monitor.Clinical{Samples: n, Sensitivity: monitor.Rate{Num: 20, Den: 20}}),
		), []obs{{"domain=all,version=" + prod, 0.5, 0.95, true}, {"domain=all,version=" + canary, 1, 0.95, false}}},
		{"SensitivityDegraded", "no urgent patients: no figure", snap(
			entry(prod, all, monitor.Clinical{Samples: n}),
		), nil},
		{"FalseNegativeRateHigh", "breached and not", snap(
			entry(prod, all, monitor.Clinical{Samples: n, FNR: monitor.Rate{Num: 2, Den: 20}}),
			entry(canary, all, monitor.Clinical{Samples: n, FNR: monitor.Rate{Num: 1, Den: 20}}),
		), []obs{{"domain=all,version=" + prod, 0.1, 0.05, true}, {"domain=all,version=" + canary, 0.05, 0.05, false}}},
		{"FalseNegativeRateHigh", "below MinSamples", snap(
			entry(prod, all, monitor.Clinical{Samples: 29, FNR: monitor.Rate{Num: 20, Den: 20}}),
		), nil},
		{"EscalationAccuracyLow", "breached and not", snap(
			entry(prod, all, monitor.Clinical{Samples: n, EscalationAccuracy: monitor.Rate{Num: 9, Den: 10}}),
			entry(canary, all, monitor.Clinical{Samples: n, EscalationAccuracy: monitor.Rate{Num: 10, Den: 10}}),
		), []obs{{"domain=all,version=" + prod, 0.9, 0.98, true}, {"domain=all,version=" + canary, 1, 0.98, false}}},
		{"InteractionDetectionLow", "breached; none confirmed: no figure", snap(
			entry(prod, all, monitor.Clinical{Samples: n, InteractionDetection: monitor.Rate{Num: 9, Den: 10}}),
			entry(canary, all, monitor.Clinical{Samples: n}),
		), []obs{{"domain=all,version=" + prod, 0.9, 0.95, true}}},

		// Critical misses rest on red-flag answers, not on feedback.
		{"CriticalSymptomMissed", "breached without feedback", snap(
			entry(prod, all, monitor.Clinical{CriticalMiss: monitor.Rate{Num: 1, Den: 50}}),
			entry(canary, all, monitor.Clinical{Samples: n, CriticalMiss: monitor.Rate{Num: 0, Den: 50}}),
			entry(prod, cardio, monitor.Clinical{CriticalMiss: monitor.Rate{Num: 50, Den: 50}}),
			entry(gone, all, monitor.Clinical{CriticalMiss: monitor.Rate{Num: 50, Den: 50}}),
		), []obs{{"domain=all,version=" + prod, 0.02, 0.01, true}, {"domain=all,version=" + canary, 0, 0.01, false}}},
		{"CriticalSymptomMissed", "too few red-flag answers", snap(
			entry(prod, all, monitor.Clinical{Samples: 1000, CriticalMiss: monitor.Rate{Num: 29, Den: 29}}),
		), nil},

		{"SafetyScoreLow", "breached", with(snap(), func(s *monitor.Snapshot) {
			s.Safety = monitor.Safety{Version: prod, Samples: n, Score: fp(0.8)}
		}), []obs{{"version=" + prod, 0.8, 0.9, true}}},
		{"SafetyScoreLow", "at the threshold", with(snap(), func(s *monitor.Snapshot) {
			s.Safety = monitor.Safety{Version: prod, Samples: n, Score: fp(0.9)}
		}), []obs{{"version=" + prod, 0.9, 0.9, false}}},
		{"SafetyScoreLow", "no score below MinSamples", with(snap(), func(s *monitor.Snapshot) {
			s.Safety = monitor.Safety{Version: prod, Samples: 3}
		}), nil},

		{"ComplianceBelowTarget", "one unaudited query", with(snap(), func(s *monitor.Snapshot) {
			s.Compliance = monitor.Compliance{Queries: 100, Unaudited: 1, Score: fp(0.99)}
		}), []obs{{"", 0.99, 1, true}}},
		{"ComplianceBelowTarget", "all audited", with(snap(), func(s *monitor.Snapshot) {
			s.Compliance = monitor.Compliance{Queries: 100, Score: fp(1)}
		}), []obs{{"", 1, 1, false}}},
		{"ComplianceBelowTarget", "no queries", snap(), nil},

		{"MemoryHigh", "breached", with(snap(), func(s *monitor.Snapshot) { s.Runtime.MemoryMB = fp(9000) }), []obs{{"", 9000, 8192, true}}},
		{"MemoryHigh", "at the threshold", with(snap(), func(s *monitor.Snapshot) { s.Runtime.MemoryMB = fp(8192) }), []obs{{"", 8192, 8192, false}}},
		{"MemoryHigh", "no figure", snap(), nil},
		{"CPUHigh", "breached", with(snap(), func(s *monitor.Snapshot) { s.Runtime.CPUUtilization = fp(0.9) }), []obs{{"", 0.9, 0.85, true}}},
		{"CPUHigh", "not breached", with(snap(), func(s *monitor.Snapshot) { s.Runtime.CPUUtilization = fp(0.5) }), []obs{{"", 0.5, 0.85, false}}},

		{"CacheHitRateLow", "breached", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime.CacheHitRate = monitor.Rate{Num: 50, Den: 200}
		}), []obs{{"", 0.25, 0.6, true}}},
		{"CacheHitRateLow", "not breached", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime.CacheHitRate = monitor.Rate{Num: 150, Den: 200}
		}), []obs{{"", 0.75, 0.6, false}}},
		{"CacheHitRateLow", "too few answers", with(snap(), func(s *monitor.Snapshot) {
			s.Runtime.CacheHitRate = monitor.Rate{Num: 0, Den: 50}
		}), nil},

		{"InputDrift", "per feature", with(snap(), func(s *monitor.Snapshot) {
			s.Drift = monitor.Drift{Answers: 200, PSI: map[string]float64{"sex": 0.3, "age": 0.05}}
		}), []obs{{"feature=age", 0.05, 0.25, false}, {"feature=sex", 0.3, 0.25, true}}},
		{"InputDrift", "too few answers", with(snap(), func(s *monitor.Snapshot) {
			s.Drift = monitor.Drift{Answers: 50, PSI: map[string]float64{"sex": 3}}
		}), nil},
	}
	for _, tc := range tests {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			r := ruleNamed(t, tc.rule)
			var got []obs
			for _, o := range r.Observe(tc.s) {
				if o.Samples <= 0 {
					t.Errorf("observation %v rests on %d samples", o.Labels, o.Samples)
				}
				got = append(got, obs{labelString(o.Labels), o.Value, o.Threshold, o.Breached})
			}
			sort.Slice(got, func(i, j int) bool { return got[i].labels < got[j].labels })
			if len(got) != len(tc.want) {
				t.Fatalf("observations = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.labels != w.labels || g.breached != w.breached || math.Abs(g.value-w.value) > 1e-9 || math.Abs(g.threshold-w.threshold) > 1e-9 {
					t.Errorf("observation %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// Every rule of SPEC section 11 is there once, with the seed's severity
// and the actions of its row in the table.
func TestDefaultRules(t *testing.T) {
	want := map[string]struct {
		severity string
		actions  []Action
	}{
		"ResponseTimeWarning":     {"warning", []Action{Notify}},
		"ResponseTimeCritical":    {"critical", []Action{ScaleUp, Caching, Notify}},
		"AccuracyDegraded":        {"critical", clinicalActions},
		"DomainAccuracyDegraded":  {"warning", clinicalActions},
		"SensitivityDegraded":     {"critical", clinicalActions},
		"FalseNegativeRateHigh":   {"critical", clinicalActions},
		"CriticalSymptomMissed":   {"critical", clinicalActions},
		"EscalationAccuracyLow":   {"critical", clinicalActions},
		"InteractionDetectionLow": {"warning", []Action{Notify}},
		"SafetyScoreLow":          {"critical", []Action{Rollback, Page, Incident}},
		"ComplianceBelowTarget":   {"critical", []Action{Compliance, Incident, Notify}},
		"MemoryHigh":              {"warning", []Action{Notify}},
		"CPUHigh":                 {"warning", []Action{Notify}},
		"CacheHitRateLow":         {"warning", []Action{Notify}},
		"InputDrift":              {"warning", []Action{Notify}},
	}
	seen := map[string]bool{}
	for _, r := range DefaultRules() {
		w, ok := want[r.Name]
		if !ok || seen[r.Name] {
			t.Errorf("unexpected or duplicate rule %s", r.Name)
			continue
		}
		seen[r.Name] = true
		if r.Severity != w.severity || !slices.Equal(r.Actions, w.actions) || r.Observe == nil || r.Summary == "" || r.For < 0 {
			t.Errorf("%s: severity %s actions %v; want %s %v", r.Name, r.Severity, r.Actions, w.severity, w.actions)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d rules, want %d", len(seen), len(want))
	}
}

func TestFingerprint(t *testing.T) {
	// Maps built in different orders, many times: the fingerprint is one.
	a := map[string]string{}
	b := map[string]string{}
	keys := []string{"version", "domain", "feature", "zone"}
	for _, k := range keys {
		a[k] = "v-" + k
	}
	for i := len(keys) - 1; i >= 0; i-- {
		b[keys[i]] = "v-" + keys[i]
	}
	want := "Rule,domain=v-domain,feature=v-feature,version=v-version,zone=v-zone"
	for range 100 {
		if got := fingerprint("Rule", a); got != want {
			t.Fatalf("fingerprint = %q, want %q", got, want)
		}
		if got := fingerprint("Rule", b); got != want {
			t.Fatalf("fingerprint (other order) = %q, want %q", got, want)
		}
	}
	tests := []struct {
		rule   string
		labels map[string]string
		want   string
	}{
		{"R", nil, "R"},
		{"R", map[string]string{}, "R"},
		{"R", map[string]string{"version": prod}, "R,version=" + prod},
	}
	for _, tc := range tests {
		if got := fingerprint(tc.rule, tc.labels); got != tc.want {
			t.Errorf("fingerprint(%s, %v) = %q, want %q", tc.rule, tc.labels, got, tc.want)
		}
	}
	// Different label values or rules never share one.
	distinct := map[string]bool{}
	for _, r := range []string{"AccuracyDegraded", "SensitivityDegraded"} {
		for _, v := range []string{prod, canary} {
			for _, d := range []string{"all", "cardiology"} {
				distinct[fingerprint(r, map[string]string{"version": v, "domain": d})] = true
			}
		}
	}
	if len(distinct) != 8 {
		t.Errorf("%d distinct fingerprints, want 8: %v", len(distinct), distinct)
	}
}
