package monitor

import (
	"encoding/json"
	"math"
	"testing"

	"medserve/internal/store"
	"medserve/internal/validate"
)

func boolp(b bool) *bool { return &b }

// outcome is one feedback row: the answer's acuity and the true one.
func outcome(version, domain string, pred, truth int) store.Outcome {
	return store.Outcome{ModelVersion: version, Domain: domain, Acuity: pred, TrueAcuity: truth}
}

func withInteraction(o store.Outcome, alerts int, confirmed *bool) store.Outcome {
	o.InteractionAlerts, o.InteractionConfirmed = alerts, confirmed
	return o
}

func TestClinicalFigures(t *testing.T) {
	const v1, v2, v3 = "triage/v1", "triage/v2", "triage/v3"
	outs := []store.Outcome{
		// cardiology, v1: (pred, true)
		withInteraction(outcome(v1, "cardiology", 1, 1), 1, boolp(true)),  // TP, exact, escalated
		withInteraction(outcome(v1, "cardiology", 4, 2), 0, boolp(true)),  // FN, under-triage, not escalated, interaction missed
		withInteraction(outcome(v1, "cardiology", 2, 3), 2, boolp(false)), // TP, over-triage; interaction not confirmed: not counted
		outcome(v1, "cardiology", 4, 4),                                   // TN, exact; interaction not assessed
		outcome(v1, "cardiology", 3, 5),                                   // FP
		// neurology, v1
		outcome(v1, "neurology", 2, 2), // TP, exact, escalated
		outcome(v1, "neurology", 5, 5), // TN, exact
		outcome(v1, "neurology", 3, 2), // TP, under-triage, not escalated (true 2 answered 3)
		// invalid acuities: skipped everywhere
		outcome(v1, "neurology", 3, 0),
		outcome(v1, "neurology", 6, 3),
		outcome(v1, "cardiology", 0, 1),
		outcome(v1, "cardiology", 1, 6),
		// v2: one sample (no kappa)
		outcome(v2, "general", 3, 3),
		// v3: every answer and every truth at one level: kappa undefined
		outcome(v3, "general", 4, 4),
		outcome(v3, "general", 4, 4),
	}
	type want struct {
		samples                                                     int
		acc, exact, sens, spec, fnr, under, escalation, interaction Rate
		kappa                                                       *float64
	}
	kappa := func(v float64) *float64 { return &v }
	tests := []struct {
		key  Key
		want want
	}{
		{Key{v1, "cardiology"}, want{5, Rate{3, 5}, Rate{2, 5}, Rate{2, 3}, Rate{1, 2}, Rate{1, 3}, Rate{1, 5}, Rate{1, 2}, Rate{1, 2},
			// Σ|t−p| = 5, expected disagreement 37 (hand-computed): 1 − 5·5/37
			kappa(12.0 / 37)}},
		{Key{v1, "neurology"}, want{3, Rate{3, 3}, Rate{2, 3}, Rate{2, 2}, Rate{1, 1}, Rate{0, 2}, Rate{1, 3}, Rate{1, 2}, Rate{0, 0},
			// Σ|t−p| = 1, expected disagreement 13: 1 − 3·1/13
			kappa(10.0 / 13)}},
		{Key{v1, AllDomains}, want{8, Rate{6, 8}, Rate{4, 8}, Rate{4, 5}, Rate{2, 3}, Rate{1, 5}, Rate{2, 8}, Rate{2, 4}, Rate{1, 2},
			// Σ|t−p| = 6, expected disagreement 96 (hand-computed): 1 − 8·6/96
			kappa(0.5)}},
		{Key{v2, "general"}, want{1, Rate{1, 1}, Rate{1, 1}, Rate{1, 1}, Rate{0, 0}, Rate{0, 1}, Rate{0, 1}, Rate{0, 0}, Rate{0, 0}, nil}},
		{Key{v2, AllDomains}, want{1, Rate{1, 1}, Rate{1, 1}, Rate{1, 1}, Rate{0, 0}, Rate{0, 1}, Rate{0, 1}, Rate{0, 0}, Rate{0, 0}, nil}},
		{Key{v3, AllDomains}, want{2, Rate{2, 2}, Rate{2, 2}, Rate{0, 0}, Rate{2, 2}, Rate{0, 0}, Rate{0, 2}, Rate{0, 0}, Rate{0, 0}, nil}},
	}
	figs := ClinicalFigures(outs)
	if len(figs) != 7 { // v1: cardiology, neurology, all; v2: general, all; v3: general, all
		t.Errorf("ClinicalFigures gave %d keys, want 7: %v", len(figs), keysOf(figs))
	}
	for _, tc := range tests {
		t.Run(tc.key.Version+"/"+tc.key.Domain, func(t *testing.T) {
			c := figs[tc.key]
			if c == nil {
				t.Fatalf("no figures for %v", tc.key)
			}
			w := tc.want
			if c.Samples != w.samples {
				t.Errorf("Samples = %d, want %d", c.Samples, w.samples)
			}
			for _, f := range []struct {
				name      string
				got, want Rate
			}{
				{"accuracy", c.Accuracy, w.acc}, {"exact", c.ExactAccuracy, w.exact}, {"sensitivity", c.Sensitivity, w.sens},
				{"specificity", c.Specificity, w.spec}, {"fnr", c.FNR, w.fnr}, {"undertriage", c.UnderTriage, w.under},
				{"escalation", c.EscalationAccuracy, w.escalation}, {"interaction", c.InteractionDetection, w.interaction},
				{"critical miss (answers only)", c.CriticalMiss, Rate{}},
			} {
				if f.got != f.want {
					t.Errorf("%s = %d/%d, want %d/%d", f.name, f.got.Num, f.got.Den, f.want.Num, f.want.Den)
				}
			}
			switch {
			case w.kappa == nil && c.WeightedKappa != nil:
				t.Errorf("WeightedKappa = %v, want nil", *c.WeightedKappa)
			case w.kappa != nil && c.WeightedKappa == nil:
				t.Errorf("WeightedKappa = nil, want %v", *w.kappa)
			case w.kappa != nil && math.Abs(*c.WeightedKappa-*w.kappa) > 1e-12:
				t.Errorf("WeightedKappa = %v, want %v", *c.WeightedKappa, *w.kappa)
			}
			// The gate reads the same cases.
			m := c.Metrics()
			if m.N != w.samples || m.Invalid != 0 {
				t.Errorf("Metrics N = %d (invalid %d), want %d valid", m.N, m.Invalid, w.samples)
			}
			if v, ok := w.acc.Value(); ok && math.Abs(m.Accuracy.Value-v) > 1e-12 {
				t.Errorf("Metrics accuracy = %v, want %v", m.Accuracy.Value, v)
			}
		})
	}
}

func keysOf(m map[Key]*Clinical) []Key {
	var ks []Key
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestClinicalFiguresEmpty(t *testing.T) {
	if figs := ClinicalFigures(nil); len(figs) != 0 {
		t.Fatalf("ClinicalFigures(nil) = %v, want none", figs)
	}
	if figs := ClinicalFigures([]store.Outcome{outcome("v", "general", 0, 0)}); len(figs) != 0 {
		t.Fatalf("only invalid rows: got %v, want none", keysOf(figs))
	}
}

func TestRateJSON(t *testing.T) {
	tests := []struct {
		r    Rate
		want string
	}{
		{Rate{}, `{"value":null,"num":0,"den":0}`},
		{Rate{Num: 3, Den: 0}, `{"value":null,"num":3,"den":0}`},
		{Rate{Num: 1, Den: 4}, `{"value":0.25,"num":1,"den":4}`},
		{Rate{Num: 2, Den: 2}, `{"value":1,"num":2,"den":2}`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(tc.r)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("json(%+v) = %s, want %s", tc.r, b, tc.want)
		}
		// Inside a struct (by value, as Clinical holds it) the same.
		b, _ = json.Marshal(struct{ R Rate }{tc.r})
		if string(b) != `{"R":`+tc.want+`}` {
			t.Errorf("json in struct = %s", b)
		}
		// It reads back (incident reports are decoded again).
		var back Rate
		if err := json.Unmarshal([]byte(tc.want), &back); err != nil || back != tc.r {
			t.Errorf("read back %s = %+v, %v", tc.want, back, err)
		}
	}
	if v, ok := (Rate{}).Value(); ok || v != 0 {
		t.Errorf("Rate{}.Value() = %v, %v; want 0, false", v, ok)
	}
}

func TestSeedTargets(t *testing.T) {
	s := SeedTargets()
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"accuracy", s.Accuracy, 0.85}, {"sensitivity", s.Sensitivity, 0.95}, {"fnr", s.FNR, 0.05},
		{"critical miss", s.CriticalMiss, 0.01}, {"escalation", s.Escalation, 0.98}, {"interaction", s.InteractionDetection, 0.95},
		{"cardiology", s.DomainAccuracy["cardiology"], 0.94 * 0.95}, {"oncology", s.DomainAccuracy["oncology"], 0.91 * 0.95},
		{"neurology", s.DomainAccuracy["neurology"], 0.89 * 0.95}, {"emergency", s.DomainAccuracy["emergency"], 0.96 * 0.95},
		{"general", s.DomainAccuracy["general"], 0.88 * 0.95},
	} {
		if math.Abs(f.got-f.want) > 1e-12 {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if len(s.DomainAccuracy) != 5 || s.Gate != validate.DefaultGate() {
		t.Errorf("seed targets: %d domains, gate %+v", len(s.DomainAccuracy), s.Gate)
	}
	// Every call is its own copy: adjusting one never changes the seed.
	s.DomainAccuracy["cardiology"] = 0
	if SeedTargets().DomainAccuracy["cardiology"] == 0 {
		t.Error("SeedTargets shares its domain map")
	}
}

func gateOf(vals map[string]float64) *validate.GateResult {
	g := &validate.GateResult{}
	for name, v := range vals {
		g.Checks = append(g.Checks, validate.GateCheck{Name: name, Value: v})
	}
	return g
}

func TestAdjustTo(t *testing.T) {
	const tol = 0.05
	seed := SeedTargets()
	tests := []struct {
		name string
		gate *validate.GateResult
		want func() Targets
	}{
		{"no validation report: the seed's", nil, SeedTargets},
		{"validated above every seed figure: the seed's",
			gateOf(map[string]float64{validate.CheckAccuracy: 0.97, validate.CheckSensitivity: 0.99, validate.CheckSpecificity: 0.95,
				validate.CheckFNR: 0.01, validate.CheckWeightedKappa: 0.9}),
			SeedTargets},
		{"validated below: validated less the tolerance",
			gateOf(map[string]float64{validate.CheckAccuracy: 0.80, validate.CheckSensitivity: 0.90, validate.CheckSpecificity: 0.70,
				validate.CheckFNR: 0.10, validate.CheckWeightedKappa: 0.60}),
			func() Targets {
				w := SeedTargets()
				w.Accuracy, w.Sensitivity, w.FNR = 0.80*0.95, 0.90*0.95, 0.10*1.05
				for d := range w.DomainAccuracy {
					w.DomainAccuracy[d] = 0.80 * 0.95 // every seed domain target (× 0.95) is above 0.80
				}
				w.Gate.MinAccuracy, w.Gate.MinSensitivity, w.Gate.MinSpecificity = 0.80*0.95, 0.90*0.95, 0.70*0.95
				w.Gate.MaxFNR, w.Gate.MinKappa = 0.10*1.05, 0.60*0.95
				return w
			}},
		{"between: only the targets above the validated figure move",
			// validated accuracy 0.90: of the seed's accuracy targets only
			// emergency's (0.96 × 0.95 = 0.912) is above it.
			gateOf(map[string]float64{validate.CheckAccuracy: 0.90}),
			func() Targets {
				w := SeedTargets()
				w.DomainAccuracy["emergency"] = 0.90 * 0.95
				return w
			}},
		{"checks the report lacks keep the seed's",
			gateOf(map[string]float64{validate.CheckFNR: 0.08}),
			func() Targets {
				w := SeedTargets()
				w.FNR, w.Gate.MaxFNR = 0.08*1.05, 0.08*1.05
				return w
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, want := seed.AdjustTo(tc.gate, tol), tc.want()
			eq := func(name string, g, w float64) {
				if math.Abs(g-w) > 1e-12 {
					t.Errorf("%s = %v, want %v", name, g, w)
				}
			}
			eq("accuracy", got.Accuracy, want.Accuracy)
			eq("sensitivity", got.Sensitivity, want.Sensitivity)
			eq("fnr", got.FNR, want.FNR)
			eq("critical miss", got.CriticalMiss, want.CriticalMiss)
			eq("escalation", got.Escalation, want.Escalation)
			eq("interaction", got.InteractionDetection, want.InteractionDetection)
			eq("gate accuracy", got.Gate.MinAccuracy, want.Gate.MinAccuracy)
			eq("gate sensitivity", got.Gate.MinSensitivity, want.Gate.MinSensitivity)
			eq("gate specificity", got.Gate.MinSpecificity, want.Gate.MinSpecificity)
			eq("gate fnr", got.Gate.MaxFNR, want.Gate.MaxFNR)
			eq("gate kappa", got.Gate.MinKappa, want.Gate.MinKappa)
			eq("gate safety score", got.Gate.MinSafetyScore, want.Gate.MinSafetyScore)
			if len(got.DomainAccuracy) != len(want.DomainAccuracy) {
				t.Errorf("domains = %v, want %v", got.DomainAccuracy, want.DomainAccuracy)
			}
			for d, w := range want.DomainAccuracy {
				eq("domain "+d, got.DomainAccuracy[d], w)
			}
		})
	}
	// The receiver is not changed.
	seed.AdjustTo(gateOf(map[string]float64{validate.CheckAccuracy: 0.5}), tol)
	if seed.DomainAccuracy["cardiology"] != SeedTargets().DomainAccuracy["cardiology"] {
		t.Error("AdjustTo changed the receiver's domain targets")
	}
}
