package validate

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// ktasNurse is the nurse-vs-expert confusion of data/ktas-triage/SOURCE.md
// (rows = expert 1..5, cols = nurse 1..5).
var ktasNurse = [5][5]int{
	{15, 11, 0, 0, 0},
	{3, 183, 27, 6, 1},
	{0, 16, 400, 63, 8},
	{0, 4, 20, 420, 15},
	{0, 0, 0, 12, 63},
}

// casesFromConfusion expands a confusion matrix into one case per count.
func casesFromConfusion(c [5][5]int) []TriageCase {
	var out []TriageCase
	for t := range c {
		for p, n := range c[t] {
			for range n {
				out = append(out, TriageCase{True: t + 1, Pred: p + 1})
			}
		}
	}
	return out
}

// pairs builds cases from (true, pred) pairs.
func pairs(tp ...[2]int) []TriageCase {
	out := make([]TriageCase, len(tp))
	for i, x := range tp {
		out[i] = TriageCase{True: x[0], Pred: x[1]}
	}
	return out
}

const tol = 1e-12

func near(a, b, eps float64) bool { return math.Abs(a-b) <= eps }

// handTen is the hand-computed 10-case set; the figures below are worked out
// in TestEvaluateTriageHandComputed.
var handTen = pairs(
	[2]int{1, 1}, [2]int{1, 2}, // exact; under-triage (1→2)
	[2]int{2, 2}, [2]int{2, 4}, // exact; under-triage (2→4), the one emergency FN
	[2]int{3, 3}, [2]int{3, 2}, // exact; over-triage (3→2)
	[2]int{4, 4}, [2]int{4, 3}, // exact; over-triage (4→3), the one emergency FP
	[2]int{5, 5}, [2]int{5, 4}, // exact; over-triage (5→4)
)

func TestEvaluateTriageHandComputed(t *testing.T) {
	// Emergency (≤3): positives are the first 6 cases; only 2→4 is missed:
	//   TP 5, FN 1; negatives 4, 4→3 is a false alarm: FP 1, TN 3.
	// Acuity ≤2: positives are the first 4; 2→4 missed: TP 3, FN 1;
	//   negatives 6, 3→2 is a false alarm: FP 1, TN 5.
	// Exact 5/10; under (pred > true) 2/10; over 3/10.
	// Kappa: observed disagreement Σ|i−j| = 1+2+1+1+1 = 6. True marginals are
	//   2 per level; predicted marginals 1,3,2,3,1. Σ_i|i−j| per column j is
	//   10,7,6,7,10, so expected disagreement = 2·(10+21+12+21+10) = 148 and
	//   κ = 1 − N·6/148 = 1 − 60/148 = 22/37.
	m := EvaluateTriage(handTen, 0, 1)
	want := map[string]float64{
		"sensitivity": 5.0 / 6, "specificity": 3.0 / 4, "fnr": 1.0 / 6, "accuracy": 8.0 / 10,
		"sensitivity_12": 3.0 / 4, "specificity_12": 5.0 / 6, "fnr_12": 1.0 / 4, "accuracy_12": 8.0 / 10,
		"exact_accuracy": 5.0 / 10, "under_triage": 2.0 / 10, "over_triage": 3.0 / 10, "weighted_kappa": 22.0 / 37,
	}
	got := intervalsOf(m)
	for name, w := range want {
		iv := got[name]
		if !near(iv.Value, w, tol) {
			t.Errorf("%s = %v, want %v", name, iv.Value, w)
		}
		if iv.Lo != iv.Value || iv.Hi != iv.Value {
			t.Errorf("%s: B=0 must collapse the interval, got %+v", name, iv)
		}
	}
	if m.N != 10 || m.Invalid != 0 || m.ProbN != 0 || m.Brier != nil || m.ECE != nil || m.ECEEmergency != nil {
		t.Errorf("counts/calibration: N %d invalid %d probN %d brier %v", m.N, m.Invalid, m.ProbN, m.Brier)
	}
	if (m.Binary != Binary{TP: 5, FP: 1, FN: 1, TN: 3}) || (m.Binary12 != Binary{TP: 3, FP: 1, FN: 1, TN: 5}) {
		t.Errorf("binary %+v, binary12 %+v", m.Binary, m.Binary12)
	}
	if m.Confusion[1][3] != 1 || m.Confusion[4][3] != 1 || m.Confusion[0][0] != 1 {
		t.Errorf("confusion %v", m.Confusion)
	}
}

// intervalsOf names the non-calibration intervals by their JSON names.
func intervalsOf(m TriageMetrics) map[string]Interval {
	return map[string]Interval{
		"sensitivity": m.Sensitivity, "specificity": m.Specificity, "fnr": m.FNR, "accuracy": m.Accuracy,
		"sensitivity_12": m.Sensitivity12, "specificity_12": m.Specificity12, "fnr_12": m.FNR12, "accuracy_12": m.Accuracy12,
		"exact_accuracy": m.ExactAccuracy, "under_triage": m.UnderTriage, "over_triage": m.OverTriage,
		"weighted_kappa": m.WeightedKappa,
	}
}

func TestKTASNurseReference(t *testing.T) {
	m := EvaluateTriage(casesFromConfusion(ktasNurse), 0, 1)
	if m.N != 1267 || m.Confusion != ktasNurse {
		t.Fatalf("N %d, confusion %v", m.N, m.Confusion)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"sensitivity", m.Sensitivity.Value, 0.894},
		{"specificity", m.Specificity.Value, 0.955},
		{"fnr", m.FNR.Value, 0.106},
		{"accuracy", m.Accuracy.Value, 0.919},
		{"exact agreement", m.ExactAccuracy.Value, 0.853},
		{"under-triage", m.UnderTriage.Value, 0.103},
		{"over-triage", m.OverTriage.Value, 55.0 / 1267},
		{"linear weighted kappa", m.WeightedKappa.Value, 0.830},
		{"sensitivity 1-2", m.Sensitivity12.Value, 0.862},
		{"specificity 1-2", m.Specificity12.Value, 0.980},
		{"fnr 1-2", m.FNR12.Value, 0.138},
	} {
		if !near(c.got, c.want, 0.001) {
			t.Errorf("%s = %.4f, want %.3f", c.name, c.got, c.want)
		}
	}
	// The counts behind the paper's figures: 131 under-, 55 over-triaged.
	if !near(m.UnderTriage.Value, 131.0/1267, tol) {
		t.Errorf("under-triage = %v, want 131/1267", m.UnderTriage.Value)
	}
}

func TestWeightedKappa(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var indT, indP []int
	for range 20000 {
		indT = append(indT, 1+rng.IntN(5))
		indP = append(indP, 1+rng.IntN(5))
	}
	for _, c := range []struct {
		name       string
		true_      []int
		pred       []int
		want, diff float64
	}{
		{"perfect", []int{1, 2, 3, 4, 5, 3, 3}, []int{1, 2, 3, 4, 5, 3, 3}, 1, tol},
		{"independent", indT, indP, 0, 0.03},
		{"reversed extremes", []int{2, 5}, []int{5, 2}, -1, tol},
		{"hand ten", []int{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}, []int{1, 2, 2, 4, 3, 2, 4, 3, 5, 4}, 22.0 / 37, tol},
		// Out-of-range pairs are skipped: this is "perfect" once 0 and 9 go.
		{"skips invalid", []int{1, 0, 5, 3}, []int{1, 2, 5, 9}, 1, tol},
		// One level on both sides: expected disagreement 0, kappa undefined → 0.
		{"undefined", []int{3, 3, 3}, []int{3, 3, 3}, 0, 0},
		{"empty", nil, nil, 0, 0},
		{"length mismatch uses shorter", []int{1, 5, 2}, []int{1, 5}, 1, tol},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := WeightedKappa(c.true_, c.pred); !near(got, c.want, c.diff) {
				t.Errorf("kappa = %v, want %v ± %v", got, c.want, c.diff)
			}
		})
	}
}

func TestCalibration(t *testing.T) {
	for _, c := range []struct {
		name                string
		cases               []TriageCase
		probN               int
		brier, ece, eceEmer float64
	}{
		{
			// A: sure and right: Brier 0, conf 1 correct (bin 9, diff 0); P(em) 1, em (diff 0).
			// B: true 2, [0 .6 .4 0 0]: Brier .16+.16 = .32; conf .6 correct (bin 6, +.4); P(em) 1 (diff 0).
			// C: true 4, [0 0 .5 .5 0]: tie → level 3 (more urgent), wrong: Brier .25+.25 = .5,
			//    conf .5 (bin 5, −.5); P(em) .5, not em (bin 5, −.5).
			// D: true 5, [0 0 0 .2 .8]: Brier .04+.04 = .08; conf .8 correct (bin 8, +.2); P(em) 0 (diff 0).
			// Brier = .9/4; ECE = (.4+.5+.2)/4; ECE(em) = .5/4.
			name: "four cases",
			cases: []TriageCase{
				{True: 1, Pred: 1, Prob: []float64{1, 0, 0, 0, 0}},
				{True: 2, Pred: 2, Prob: []float64{0, 0.6, 0.4, 0, 0}},
				{True: 4, Pred: 3, Prob: []float64{0, 0, 0.5, 0.5, 0}},
				{True: 5, Pred: 5, Prob: []float64{0, 0, 0, 0.2, 0.8}},
			},
			probN: 4, brier: 0.9 / 4, ece: 1.1 / 4, eceEmer: 0.5 / 4,
		},
		{
			// Same bin, opposite outcomes: bin 7 holds conf .7 twice with one
			// right, so |0.5 − 0.7| = .2. Brier: (.09+.09) and (.49+.49).
			// P(em) = 1 for both, both em: ECE(em) 0.
			name: "shared bin",
			cases: []TriageCase{
				{True: 1, Pred: 1, Prob: []float64{0.7, 0.3, 0, 0, 0}},
				{True: 2, Pred: 1, Prob: []float64{0.7, 0.3, 0, 0, 0}},
			},
			probN: 2, brier: (0.18 + 0.98) / 2, ece: 0.2, eceEmer: 0,
		},
		{
			// Unusable vectors (wrong length, sum 1.5, NaN, negative) and nil
			// are left out; a sum of 0.995 is rescaled: [.5,.495,0,0,0]/.995.
			name: "unusable probabilities skipped",
			cases: []TriageCase{
				{True: 1, Pred: 1, Prob: []float64{1, 0, 0, 0}},
				{True: 1, Pred: 1, Prob: []float64{0.5, 0.5, 0.5, 0, 0}},
				{True: 1, Pred: 1, Prob: []float64{math.NaN(), 1, 0, 0, 0}},
				{True: 1, Pred: 1, Prob: []float64{-0.1, 1.1, 0, 0, 0}},
				{True: 1, Pred: 1},
				{True: 1, Pred: 1, Prob: []float64{0.5, 0.495, 0, 0, 0}},
			},
			probN: 1,
			brier: sq(1-0.5/0.995) + sq(0.495/0.995),
			ece:   1 - 0.5/0.995, eceEmer: 0,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := EvaluateTriage(c.cases, 0, 1)
			if m.ProbN != c.probN || m.Brier == nil || m.ECE == nil || m.ECEEmergency == nil {
				t.Fatalf("probN %d (want %d), brier %v ece %v", m.ProbN, c.probN, m.Brier, m.ECE)
			}
			if !near(m.Brier.Value, c.brier, 1e-9) || !near(m.ECE.Value, c.ece, 1e-9) || !near(m.ECEEmergency.Value, c.eceEmer, 1e-9) {
				t.Errorf("brier %v ece %v ece(em) %v; want %v %v %v", m.Brier.Value, m.ECE.Value, m.ECEEmergency.Value, c.brier, c.ece, c.eceEmer)
			}
		})
	}
}

func sq(x float64) float64 { return x * x }

func TestDegenerateAndInvalid(t *testing.T) {
	// No emergencies at all: sensitivity is undefined and reported as 0,
	// specificity is defined. Out-of-range acuities are skipped and counted.
	cases := pairs([2]int{4, 4}, [2]int{5, 3}, [2]int{0, 1}, [2]int{2, 6}, [2]int{-1, 9})
	m := EvaluateTriage(cases, 50, 3)
	if m.N != 2 || m.Invalid != 3 {
		t.Fatalf("N %d invalid %d", m.N, m.Invalid)
	}
	if (m.Sensitivity != Interval{}) || (m.FNR != Interval{}) {
		t.Errorf("undefined sensitivity/FNR must be 0: %+v %+v", m.Sensitivity, m.FNR)
	}
	if m.Specificity.Value != 0.5 {
		t.Errorf("specificity %v, want 0.5", m.Specificity.Value)
	}
	if _, err := json.Marshal(m); err != nil {
		t.Errorf("json: %v", err)
	}

	empty := EvaluateTriage(nil, 100, 1)
	if empty.N != 0 || empty.Bootstrap != 0 || (empty.WeightedKappa != Interval{}) || empty.Brier != nil {
		t.Errorf("empty set: %+v", empty)
	}
	if _, err := json.Marshal(empty); err != nil {
		t.Errorf("json: %v", err)
	}
}

func TestBootstrap(t *testing.T) {
	ktas := casesFromConfusion(ktasNurse)
	m := EvaluateTriage(ktas, 300, 42)
	if m.Bootstrap != 300 {
		t.Errorf("bootstrap = %d", m.Bootstrap)
	}
	for name, iv := range intervalsOf(m) {
		if !(iv.Lo <= iv.Value && iv.Value <= iv.Hi) || iv.Lo == iv.Hi {
			t.Errorf("%s: interval %+v does not bracket its estimate", name, iv)
		}
	}

	t.Run("deterministic", func(t *testing.T) {
		again := EvaluateTriage(ktas, 300, 42)
		if !reflect.DeepEqual(m, again) {
			t.Error("same seed gave different metrics")
		}
		other := EvaluateTriage(ktas, 300, 43)
		if other.Sensitivity == m.Sensitivity && other.WeightedKappa == m.WeightedKappa {
			t.Error("another seed gave identical intervals")
		}
	})

	t.Run("narrows with N", func(t *testing.T) {
		width := func(k int) float64 {
			var cs []TriageCase
			for range k {
				cs = append(cs, handTen...)
			}
			r := EvaluateTriage(cs, 400, 9)
			return r.Sensitivity.Hi - r.Sensitivity.Lo + r.WeightedKappa.Hi - r.WeightedKappa.Lo
		}
		w10, w100, w1000 := width(10), width(100), width(1000)
		if !(w10 > w100 && w100 > w1000) {
			t.Errorf("widths do not shrink: N=100 %v, N=1000 %v, N=10000 %v", w10, w100, w1000)
		}
	})

	t.Run("calibration intervals", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 5))
		cs := syntheticCases(rng, 500)
		r := EvaluateTriage(cs, 200, 1)
		for name, iv := range map[string]*Interval{"brier": r.Brier, "ece": r.ECE, "ece_emergency": r.ECEEmergency} {
			if iv == nil || iv.Lo > iv.Hi || iv.Lo == iv.Hi {
				t.Errorf("%s: %+v", name, iv)
			}
		}
		if !(r.Brier.Lo <= r.Brier.Value && r.Brier.Value <= r.Brier.Hi) {
			t.Errorf("brier interval %+v", r.Brier)
		}
	})
}

// syntheticCases draws a plausible model: a random true level, a softmax-ish
// probability vector peaked near it, and its argmax as the prediction.
func syntheticCases(rng *rand.Rand, n int) []TriageCase {
	sexes := []string{"female", "male"}
	out := make([]TriageCase, n)
	for i := range out {
		t := 1 + rng.IntN(5)
		p := make([]float64, 5)
		sum := 0.0
		for k := range p {
			d := float64(k + 1 - t)
			p[k] = math.Exp(-d*d) * (0.2 + rng.Float64())
			sum += p[k]
		}
		best := 0
		for k := range p {
			p[k] /= sum
			if p[k] > p[best] {
				best = k
			}
		}
		out[i] = TriageCase{True: t, Pred: best + 1, Prob: p, Groups: map[string]string{"sex": sexes[rng.IntN(2)], "site": "1"}}
	}
	return out
}

func TestBySubgroup(t *testing.T) {
	g := func(sex, age string) map[string]string {
		m := map[string]string{"sex": sex}
		if age != "" {
			m["age_band"] = age
		}
		return m
	}
	cases := []TriageCase{
		{True: 1, Pred: 1, Groups: g("female", "18-64")},
		{True: 2, Pred: 4, Groups: g("female", "65+")},
		{True: 4, Pred: 4, Groups: g("male", "18-64")},
		{True: 3, Pred: 3, Groups: g("male", "")},
		{True: 5, Pred: 5, Groups: g("", "<18")},
		{True: 7, Pred: 1, Groups: g("male", "")},
	}
	res := BySubgroup(cases, 20, 11)
	want := map[string]map[string]int{
		"sex":      {"female": 2, "male": 3, MissingGroup: 1},
		"age_band": {"18-64": 2, "65+": 1, "<18": 1, MissingGroup: 2},
	}
	if len(res) != len(want) {
		t.Fatalf("groups %v", res)
	}
	for name, labels := range want {
		if len(res[name]) != len(labels) {
			t.Errorf("%s: labels %v", name, res[name])
		}
		for lbl, n := range labels {
			if got := res[name][lbl].N + res[name][lbl].Invalid; got != n {
				t.Errorf("%s=%s: %d cases, want %d", name, lbl, got, n)
			}
		}
	}
	if res["sex"]["male"].Invalid != 1 {
		t.Errorf("invalid case not counted in its split: %+v", res["sex"]["male"])
	}
	if fe := res["sex"]["female"]; fe.Sensitivity.Value != 0.5 || fe.UnderTriage.Value != 0.5 {
		t.Errorf("female: sens %v under %v", fe.Sensitivity.Value, fe.UnderTriage.Value)
	}
	// Values match an evaluation of the subset itself.
	sub := EvaluateTriage(cases[:2], 0, 0)
	if res["sex"]["female"].WeightedKappa.Value != sub.WeightedKappa.Value {
		t.Error("subgroup value differs from evaluating the subset")
	}
	if !reflect.DeepEqual(res, BySubgroup(cases, 20, 11)) {
		t.Error("BySubgroup not deterministic")
	}
}

func TestTriageJSON(t *testing.T) {
	m := EvaluateTriage([]TriageCase{{True: 1, Pred: 1, Prob: []float64{1, 0, 0, 0, 0}}}, 0, 0)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]json.RawMessage
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"n", "invalid", "sensitivity", "fnr_12", "under_triage", "weighted_kappa", "brier", "ece_emergency", "confusion", "binary"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	var iv map[string]float64
	if err := json.Unmarshal(back["sensitivity"], &iv); err != nil || len(iv) != 3 || iv["value"] != 1 {
		t.Errorf("interval JSON %s", back["sensitivity"])
	}
}

func FuzzEvaluateTriage(f *testing.F) {
	f.Add([]byte{1, 1, 0, 9, 1, 0, 0, 0, 2, 4, 1, 0, 0, 3, 3, 0, 6, 6, 2, 0, 0, 0, 0, 0}, uint8(5), uint64(1))
	f.Add([]byte{3, 3, 3, 3, 3, 3, 3, 3}, uint8(3), uint64(2))
	f.Add([]byte{}, uint8(0), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, b uint8, seed uint64) {
		// 8 bytes a case: true, pred, a flag choosing the probability form
		// and subgroup, and five weights.
		var cases []TriageCase
		for ; len(data) >= 8; data = data[8:] {
			c := TriageCase{True: int(data[0] % 7), Pred: int(data[1] % 7), Groups: map[string]string{"g": string('a' + rune(data[2]%3))}}
			w := make([]float64, 5)
			sum := 0.0
			for k := range w {
				w[k] = float64(data[3+k])
				sum += w[k]
			}
			switch data[2] % 4 {
			case 0: // none
			case 1: // normalised
				if sum > 0 {
					for k := range w {
						w[k] /= sum
					}
				}
				c.Prob = w
			case 2: // raw weights: mostly unusable
				c.Prob = w
			case 3:
				c.Prob = []float64{math.NaN(), math.Inf(1), 0, 0, 1}
			}
			cases = append(cases, c)
		}
		bs := int(b % 16)
		m := EvaluateTriage(cases, bs, seed)
		checkMetrics(t, m, len(cases))
		for _, labels := range BySubgroup(cases, bs, seed) {
			total := 0
			for _, sm := range labels {
				checkMetrics(t, sm, sm.N+sm.Invalid)
				total += sm.N + sm.Invalid
			}
			if total != len(cases) {
				t.Fatalf("subgroups hold %d cases, want %d", total, len(cases))
			}
		}
	})
}

func checkMetrics(t *testing.T, m TriageMetrics, n int) {
	t.Helper()
	if m.N+m.Invalid != n {
		t.Fatalf("N %d + invalid %d != %d", m.N, m.Invalid, n)
	}
	sum := 0
	for _, row := range m.Confusion {
		for _, k := range row {
			sum += k
		}
	}
	if sum != m.N || m.Binary.N() != m.N || m.ProbN > m.N {
		t.Fatalf("confusion sums to %d, binary %d, probN %d, N %d", sum, m.Binary.N(), m.ProbN, m.N)
	}
	check := func(name string, iv Interval, lo, hi float64) {
		for _, v := range []float64{iv.Value, iv.Lo, iv.Hi} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < lo-1e-9 || v > hi+1e-9 {
				t.Fatalf("%s = %+v, outside [%v,%v]", name, iv, lo, hi)
			}
		}
		if iv.Lo > iv.Hi {
			t.Fatalf("%s: lo > hi: %+v", name, iv)
		}
	}
	for name, iv := range intervalsOf(m) {
		if name == "weighted_kappa" {
			check(name, iv, -1, 1)
		} else {
			check(name, iv, 0, 1)
		}
	}
	if (m.Brier == nil) != (m.ProbN == 0) || (m.ECE == nil) != (m.ProbN == 0) || (m.ECEEmergency == nil) != (m.ProbN == 0) {
		t.Fatalf("calibration presence vs probN %d", m.ProbN)
	}
	if m.Brier != nil {
		check("brier", *m.Brier, 0, 2)
		check("ece", *m.ECE, 0, 1)
		check("ece_emergency", *m.ECEEmergency, 0, 1)
	}
	if _, err := json.Marshal(m); err != nil {
		t.Fatalf("json: %v", err)
	}
}

func BenchmarkEvaluateTriage(b *testing.B) {
	cases := syntheticCases(rand.New(rand.NewPCG(1, 2)), 1000)
	b.ReportAllocs()
	for b.Loop() {
		EvaluateTriage(cases, 1000, 1)
	}
}
