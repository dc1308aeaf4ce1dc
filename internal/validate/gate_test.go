package validate

import (
	"encoding/json"
	"slices"
	"testing"
)

// fixed builds metrics from point estimates, with a fixed ±0.02 interval so
// Lower/Upper can be checked.
func fixed(acc, sens, spec, fnr, kappa float64) TriageMetrics {
	iv := func(v float64) Interval { return Interval{Value: v, Lo: v - 0.02, Hi: v + 0.02} }
	return TriageMetrics{N: 100, Accuracy: iv(acc), Sensitivity: iv(sens), Specificity: iv(spec), FNR: iv(fnr), WeightedKappa: iv(kappa)}
}

func TestDefaultGate(t *testing.T) {
	want := GateConfig{MinAccuracy: 0.90, MinSensitivity: 0.95, MinSpecificity: 0.85, MaxFNR: 0.05, MinKappa: 0.85, MinSafetyScore: 0.8}
	if DefaultGate() != want {
		t.Errorf("DefaultGate() = %+v, want %+v", DefaultGate(), want)
	}
}

func TestGate(t *testing.T) {
	lenient := DefaultGate()
	lenient.MinSensitivity, lenient.MaxFNR, lenient.MinKappa = 0.85, 0.15, 0.80
	fnrLoose := DefaultGate()
	fnrLoose.MaxFNR = 0.10
	strictScore := DefaultGate()
	strictScore.MinSafetyScore = 1
	good := fixed(0.95, 0.97, 0.90, 0.03, 0.90)
	ktas := EvaluateTriage(casesFromConfusion(ktasNurse), 0, 1)
	prodBetter := fixed(0.95, 0.98, 0.90, 0.02, 0.90)
	prodWorse := fixed(0.95, 0.96, 0.90, 0.04, 0.90)

	for _, c := range []struct {
		name     string
		m        TriageMetrics
		cfg      GateConfig
		baseline *TriageMetrics
		pass     bool
		score    float64
		failed   []string
	}{
		{"all pass", good, DefaultGate(), nil, true, 1, nil},
		// 4 of 5 checks pass: 0.8 meets the safety score.
		{"kappa fails only", fixed(0.95, 0.97, 0.90, 0.03, 0.80), DefaultGate(), nil, true, 0.8, []string{"weighted_kappa"}},
		{"two non-critical fail", fixed(0.85, 0.97, 0.80, 0.03, 0.90), DefaultGate(), nil, false, 0.6, []string{"accuracy", "specificity"}},
		// With FNR ≤ 0.10 the FNR check passes, so 4/5 = 0.8, yet the
		// safety-critical sensitivity check fails: the gate fails.
		{"safety score high but sensitivity fails", fixed(0.95, 0.94, 0.90, 0.06, 0.90), fnrLoose, nil, false, 0.8, []string{"sensitivity"}},
		{"fnr fails", fixed(0.95, 0.97, 0.90, 0.07, 0.90), DefaultGate(), nil, false, 0.8, []string{"fnr"}},
		// The KTAS nurses (sens 0.894, FNR 0.106, kappa 0.830) fail the seed gate …
		{"ktas nurses default", ktas, DefaultGate(), nil, false, 0.4, []string{"sensitivity", "fnr", "weighted_kappa"}},
		// … and pass once the thresholds are configured lower.
		{"ktas nurses lenient", ktas, lenient, nil, true, 1, nil},
		{"min safety score configurable", fixed(0.95, 0.97, 0.90, 0.03, 0.80), strictScore, nil, false, 0.8, []string{"weighted_kappa"}},
		{"below production sensitivity", good, DefaultGate(), &prodBetter, false, 5.0 / 6, []string{"sensitivity_vs_production"}},
		{"above production sensitivity", good, DefaultGate(), &prodWorse, true, 1, nil},
		{"equal to production", good, DefaultGate(), &good, true, 1, nil},
		{"empty set", TriageMetrics{}, DefaultGate(), nil, false, 0.2, []string{"accuracy", "sensitivity", "specificity", "weighted_kappa"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Gate(c.m, c.cfg, c.baseline)
			if r.Pass != c.pass || !near(r.SafetyScore, c.score, 1e-12) {
				t.Errorf("pass %v score %v, want %v %v (%+v)", r.Pass, r.SafetyScore, c.pass, c.score, r.Checks)
			}
			if !slices.Equal(r.Failed, c.failed) && !(len(r.Failed) == 0 && len(c.failed) == 0) {
				t.Errorf("failed %v, want %v", r.Failed, c.failed)
			}
			wantChecks := 5
			if c.baseline != nil {
				wantChecks = 6
			}
			if len(r.Checks) != wantChecks {
				t.Errorf("%d checks, want %d", len(r.Checks), wantChecks)
			}
		})
	}
}

func TestGateChecks(t *testing.T) {
	m := fixed(0.95, 0.97, 0.90, 0.03, 0.90)
	base := fixed(0.95, 0.96, 0.90, 0.04, 0.90)
	r := Gate(m, DefaultGate(), &base)
	want := []struct {
		name      string
		value, th float64
		op        string
		critical  bool
	}{
		{"accuracy", 0.95, 0.90, ">=", false},
		{"sensitivity", 0.97, 0.95, ">=", true},
		{"specificity", 0.90, 0.85, ">=", false},
		{"fnr", 0.03, 0.05, "<=", true},
		{"weighted_kappa", 0.90, 0.85, ">=", false},
		{"sensitivity_vs_production", 0.97, 0.96, ">=", true},
	}
	for i, w := range want {
		c := r.Checks[i]
		if c.Name != w.name || c.Value != w.value || c.Threshold != w.th || c.Op != w.op || c.SafetyCritical != w.critical || !c.Pass {
			t.Errorf("check %d = %+v, want %+v", i, c, w)
		}
		if c.Lower != w.value-0.02 || c.Upper != w.value+0.02 {
			t.Errorf("%s: bounds %v..%v", c.Name, c.Lower, c.Upper)
		}
	}
	if r.Failed == nil {
		t.Error("Failed must be an empty list, not null, in JSON")
	}
	r.Mode = "second-reader"
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back GateResult
	if err := json.Unmarshal(b, &back); err != nil || back.Mode != "second-reader" || len(back.Checks) != 6 {
		t.Errorf("round trip %s: %v", b, err)
	}
}

// TestGateExactThreshold checks that figures computed from counts sit exactly
// on their thresholds: 19/20 sensitivity, 1/20 FNR, 9/10 accuracy pass.
func TestGateExactThreshold(t *testing.T) {
	var cases []TriageCase
	for range 19 {
		cases = append(cases, TriageCase{True: 2, Pred: 2})
	}
	cases = append(cases, TriageCase{True: 2, Pred: 4}) // the one miss
	// Negatives: 20 right, 2 wrong (spec 20/22) ⇒ binary accuracy 39/42 ≥ 0.9.
	for range 20 {
		cases = append(cases, TriageCase{True: 5, Pred: 5})
	}
	cases = append(cases, TriageCase{True: 5, Pred: 3}, TriageCase{True: 4, Pred: 5})
	m := EvaluateTriage(cases, 0, 1)
	if m.Sensitivity.Value != 0.95 || m.FNR.Value != 0.05 {
		t.Fatalf("sens %v fnr %v", m.Sensitivity.Value, m.FNR.Value)
	}
	r := Gate(m, DefaultGate(), nil)
	for _, c := range r.Checks {
		if (c.Name == "sensitivity" || c.Name == "fnr") && !c.Pass {
			t.Errorf("%s exactly on threshold must pass: %+v", c.Name, c)
		}
	}
}
