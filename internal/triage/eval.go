package triage

import (
	"fmt"
	"slices"

	"medserve/internal/validate"
)

// Examples featurizes KTAS cases once; the features do not depend on any
// training data, so the same rows serve every fold without leakage.
func Examples(f *Featurizer, cases []Case) []Example {
	ex := make([]Example, len(cases))
	for i, c := range cases {
		p := f.Prepare(c.Query)
		ex[i] = Example{Row: p.Row, Floor: p.Floor.Acuity, Nurse: c.Nurse, Expert: c.Expert}
	}
	return ex
}

// Outcome is one case's out-of-fold result.
type Outcome struct {
	Probs  []float64 `json:"probs"`
	Floor  int       `json:"floor"`
	Alone  int       `json:"alone"`
	Second int       `json:"second_reader"`
	Model  int       `json:"model"` // the model's own level in model-alone mode
}

// ModeReport is one mode's metrics, by subgroup too, and its gate.
type ModeReport struct {
	Mode      string                                       `json:"mode"`
	Metrics   validate.TriageMetrics                       `json:"metrics"`
	Subgroups map[string]map[string]validate.TriageMetrics `json:"subgroups"`
	Gate      *validate.GateResult                         `json:"gate,omitempty"`
}

// FamilyReport is the cross-validated result of one model family.
type FamilyReport struct {
	Family       string      `json:"family"`
	Config       TrainConfig `json:"config"`
	Alone        ModeReport  `json:"model_alone"`
	SecondReader ModeReport  `json:"second_reader"`
	Policies     []Policy    `json:"fold_policies"`
	// BelowFloor counts model-alone answers less urgent than the safety
	// floor: by construction it must be 0.
	BelowFloor int `json:"below_floor"`
}

// CrossValidate runs stratified k-fold cross-validation of one family: for
// each fold the model and its policy are fitted on the other folds only,
// then the held-out fold is answered in both modes.
func CrossValidate(ex []Example, dim int, cfg TrainConfig, k int, seed int64) ([]Outcome, []Policy, error) {
	fold := Folds(ex, k, seed)
	out := make([]Outcome, len(ex))
	var pols []Policy
	for f := 0; f < k; f++ {
		var train []Example
		for i, e := range ex {
			if fold[i] != f {
				train = append(train, e)
			}
		}
		c := cfg
		c.Seed = cfg.Seed + int64(f)*7919
		tr, err := Fit(train, dim, c)
		if err != nil {
			return nil, nil, fmt.Errorf("fold %d: %w", f, err)
		}
		pols = append(pols, tr.Policy)
		for i, e := range ex {
			if fold[i] != f {
				continue
			}
			p := slices.Clone(tr.Model.Predict(e.Row, make([]float64, 5)))
			fl := Floor{Acuity: e.Floor}
			alone := tr.Policy.Decide(p, fl, 0)
			second := tr.Policy.Decide(p, fl, e.Nurse)
			out[i] = Outcome{Probs: p, Floor: e.Floor, Alone: alone.Acuity, Second: second.Acuity, Model: alone.ModelAcuity}
		}
	}
	return out, pols, nil
}

// Groups are the subgroup labels of a case: sex, age band, site, arrival.
func Groups(c Case) map[string]string {
	g := map[string]string{"sex": c.Query.Sex, "site": c.Site, "arrival": c.Query.Arrival}
	if g["arrival"] == "" {
		g["arrival"] = "unknown"
	}
	switch {
	case c.Query.Age == nil:
		g["age_band"] = "unknown"
	case *c.Query.Age < 18:
		g["age_band"] = "<18"
	case *c.Query.Age < 65:
		g["age_band"] = "18-64"
	default:
		g["age_band"] = ">=65"
	}
	return g
}

// Modes scores predictions against the expert level: pred(i) gives case
// i's answer, probs(i) its probabilities (nil for the nurse).
func Mode(name string, cases []Case, pred func(i int) int, probs func(i int) []float64, bootstrap int, seed uint64) ModeReport {
	tc := make([]validate.TriageCase, len(cases))
	for i, c := range cases {
		tc[i] = validate.TriageCase{True: c.Expert, Pred: pred(i), Groups: Groups(c)}
		if probs != nil {
			tc[i].Prob = probs(i)
		}
	}
	return ModeReport{Mode: name, Metrics: validate.EvaluateTriage(tc, bootstrap, seed), Subgroups: validate.BySubgroup(tc, bootstrap, seed)}
}

// EvaluateFamily cross-validates one family and reports both modes with
// their gates. The second-reader mode is the primary one (SPEC section 6).
func EvaluateFamily(cases []Case, ex []Example, dim int, cfg TrainConfig, k int, seed int64, bootstrap int, gate validate.GateConfig) (FamilyReport, []Outcome, error) {
	out, pols, err := CrossValidate(ex, dim, cfg, k, seed)
	if err != nil {
		return FamilyReport{}, nil, fmt.Errorf("cross-validate %s: %w", cfg.Family, err)
	}
	r := FamilyReport{Family: cfg.Family, Config: cfg, Policies: pols}
	probs := func(i int) []float64 { return out[i].Probs }
	r.Alone = Mode("model-alone", cases, func(i int) int { return out[i].Alone }, probs, bootstrap, uint64(seed))
	r.SecondReader = Mode("second-reader", cases, func(i int) int { return out[i].Second }, probs, bootstrap, uint64(seed))
	ga := validate.Gate(r.Alone.Metrics, gate, nil)
	ga.Mode = "model-alone"
	gs := validate.Gate(r.SecondReader.Metrics, gate, nil)
	gs.Mode = "second-reader"
	r.Alone.Gate, r.SecondReader.Gate = &ga, &gs
	for _, o := range out {
		if o.Alone > o.Floor {
			r.BelowFloor++
		}
	}
	return r, out, nil
}
