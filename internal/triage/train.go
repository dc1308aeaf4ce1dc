package triage

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"medserve/internal/model"
)

// Example is one training or evaluation row: features, the safety floor,
// the nurse's level and the expert's (ground truth).
type Example struct {
	Row    model.Row
	Floor  int
	Nurse  int
	Expert int
}

// TrainConfig configures a model family and its decision policy.
type TrainConfig struct {
	Family string `json:"family"` // logreg, mlp, gbt
	Seed   int64  `json:"seed"`
	// InnerFolds is the number of folds used inside the training rows to
	// get out-of-fold probabilities for tuning the policy.
	InnerFolds int `json:"inner_folds"`
	// Target sensitivities the thresholds are tuned to, on the training
	// rows' out-of-fold predictions: acuity 1–3 and acuity 1–2.
	Sensitivity   float64 `json:"sensitivity"`
	Sensitivity12 float64 `json:"sensitivity12"`
	// SecondReader12 is the acuity 1–2 target in second-reader mode,
	// where the nurse's level already carries most of the specificity.
	SecondReader12 float64 `json:"second_reader12"`
	// ClassWeights multiply the loss of each true acuity 1..5: missing an
	// urgent patient costs more than over-triaging a well one.
	ClassWeights [5]float64         `json:"class_weights"`
	LogReg       model.LogRegConfig `json:"logreg"`
	MLP          model.MLPConfig    `json:"mlp"`
	GBT          model.GBTConfig    `json:"gbt"`
}

// DefaultTrainConfig is the shipped configuration for a family.
func DefaultTrainConfig(family string) TrainConfig {
	return TrainConfig{
		Family: family, Seed: 20261125, InnerFolds: 5, Sensitivity: 0.96, Sensitivity12: 0.90, SecondReader12: 0.95,
		ClassWeights: [5]float64{3, 2, 1.5, 1, 1},
		LogReg:       model.LogRegConfig{L2: 1e-3, Epochs: 60, LearningRate: 0.05},
		MLP:          model.MLPConfig{Hidden: 32, L2: 1e-3, Epochs: 60, LearningRate: 0.003, Dropout: 0.2},
		GBT:          model.GBTConfig{Trees: 120, MaxDepth: 3, MinLeaf: 8, LearningRate: 0.08, Bins: 32, L2: 1, Subsample: 0.8, FeatureFraction: 0.5},
	}
}

// Trained is a fitted model with its decision policy.
type Trained struct {
	Family string
	Model  model.Model
	Policy Policy
}

func (cfg TrainConfig) train(d model.Dataset, seed int64) (model.Model, error) {
	switch cfg.Family {
	case "logreg":
		c := cfg.LogReg
		c.Seed = seed
		return model.TrainLogReg(d, c)
	case "mlp":
		c := cfg.MLP
		c.Seed = seed
		return model.TrainMLP(d, c)
	case "gbt":
		c := cfg.GBT
		c.Seed = seed
		return model.TrainGBT(d, c)
	}
	return nil, fmt.Errorf("unknown model family %q (want logreg, mlp or gbt)", cfg.Family)
}

func (cfg TrainConfig) dataset(ex []Example, dim int) model.Dataset {
	d := model.Dataset{Features: dim, Classes: 5, X: make([]model.Row, len(ex)), Y: make([]int, len(ex)), W: make([]float64, len(ex))}
	for i, e := range ex {
		d.X[i], d.Y[i] = e.Row, e.Expert-1
		d.W[i] = cfg.ClassWeights[e.Expert-1]
		if d.W[i] <= 0 {
			d.W[i] = 1
		}
	}
	return d
}

// Folds assigns each example to one of k folds, stratified by the expert
// level, deterministically for a seed.
func Folds(ex []Example, k int, seed int64) []int {
	fold := make([]int, len(ex))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	for level := 1; level <= 5; level++ {
		var idx []int
		for i, e := range ex {
			if e.Expert == level {
				idx = append(idx, i)
			}
		}
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		for j, i := range idx {
			fold[i] = j % k
		}
	}
	return fold
}

// OutOfFold trains on k−1 folds and predicts the held-out fold, for every
// fold: each example's probabilities come from a model that never saw it.
func OutOfFold(ex []Example, dim int, cfg TrainConfig, k int, seed int64) ([][]float64, error) {
	fold := Folds(ex, k, seed)
	probs := make([][]float64, len(ex))
	for f := 0; f < k; f++ {
		var train []Example
		for i, e := range ex {
			if fold[i] != f {
				train = append(train, e)
			}
		}
		m, err := cfg.train(cfg.dataset(train, dim), seed+int64(f))
		if err != nil {
			return nil, fmt.Errorf("fold %d: %w", f, err)
		}
		for i, e := range ex {
			if fold[i] == f {
				probs[i] = slices.Clone(m.Predict(e.Row, make([]float64, 5)))
			}
		}
	}
	return probs, nil
}

// Fit trains a model on all examples and tunes its policy on out-of-fold
// predictions of those same examples (never on rows outside them).
func Fit(ex []Example, dim int, cfg TrainConfig) (*Trained, error) {
	if len(ex) < 10*cfg.InnerFolds {
		return nil, fmt.Errorf("fit %s: %d examples are too few", cfg.Family, len(ex))
	}
	oof, err := OutOfFold(ex, dim, cfg, cfg.InnerFolds, cfg.Seed+1000)
	if err != nil {
		return nil, fmt.Errorf("fit %s: %w", cfg.Family, err)
	}
	m, err := cfg.train(cfg.dataset(ex, dim), cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("fit %s: %w", cfg.Family, err)
	}
	return &Trained{Family: cfg.Family, Model: m, Policy: TunePolicy(ex, oof, cfg.Sensitivity, cfg.Sensitivity12, cfg.SecondReader12)}, nil
}

// TunePolicy picks, for each mode, the highest thresholds that still reach
// the target sensitivities on the given (out-of-fold) probabilities. The
// highest such threshold gives the best specificity at that sensitivity.
func TunePolicy(ex []Example, probs [][]float64, sens3, sens12, srSens12 float64) Policy {
	var pol Policy
	cands3, cands2 := thresholds(probs, 3), thresholds(probs, 2)
	sensAt := func(level func(i int) int, positive int) float64 {
		tp, pos := 0, 0
		for i, e := range ex {
			if e.Expert <= positive {
				pos++
				if level(i) <= positive {
					tp++
				}
			}
		}
		if pos == 0 {
			return 1
		}
		return float64(tp) / float64(pos)
	}
	pick := func(cands []float64, ok func(t float64) bool) float64 {
		// cands run from high to low; sensitivity only grows as τ falls.
		for _, t := range cands {
			if ok(t) {
				return t
			}
		}
		return 0
	}
	alone := func(t3, t2 float64) func(int) int {
		return func(i int) int { return min(levelFor(probs[i], t3, t2), ex[i].Floor) }
	}
	second := func(t4, t5, t2 float64) func(int) int {
		return func(i int) int {
			p := Policy{TauSR3: t4, TauSR5: t5, TauSR2: t2}
			return p.Decide(probs[i], Floor{Acuity: ex[i].Floor}, ex[i].Nurse).Acuity
		}
	}
	pol.Tau3 = pick(cands3, func(t float64) bool { return sensAt(alone(t, 2), 3) >= sens3 })
	pol.Tau2 = pick(cands2, func(t float64) bool { return sensAt(alone(pol.Tau3, t), 2) >= sens12 })
	// Second reader: the pair of thresholds (nurse 4, nurse 5) with the
	// fewest false alarms among those reaching the target sensitivity.
	grid := coarse(cands3, 60)
	bestFP := -1
	for _, t4 := range grid {
		for _, t5 := range grid {
			lv := second(t4, t5, 2)
			if sensAt(lv, 3) < sens3 {
				continue
			}
			fp := 0
			for i, e := range ex {
				if e.Expert > 3 && lv(i) <= 3 {
					fp++
				}
			}
			if bestFP < 0 || fp < bestFP {
				bestFP, pol.TauSR3, pol.TauSR5 = fp, t4, t5
			}
		}
	}
	if bestFP < 0 {
		pol.TauSR3, pol.TauSR5 = 0, 0
	}
	pol.TauSR2 = pick(cands2, func(t float64) bool { return sensAt(second(pol.TauSR3, pol.TauSR5, t), 2) >= srSens12 })
	return pol
}

// coarse keeps at most n evenly spaced values of a sorted list (and its
// last, lowest value), to bound a grid search.
func coarse(vals []float64, n int) []float64 {
	if len(vals) <= n {
		return vals
	}
	out := make([]float64, 0, n+1)
	for i := 0; i < n; i++ {
		out = append(out, vals[i*len(vals)/n])
	}
	return append(out, vals[len(vals)-1])
}

// thresholds lists the distinct values of P(acuity ≤ level), high to low,
// with 2 first (a threshold no probability reaches).
func thresholds(probs [][]float64, level int) []float64 {
	vals := []float64{2}
	for _, p := range probs {
		var s float64
		for k := 0; k < level; k++ {
			s += p[k]
		}
		vals = append(vals, s)
	}
	slices.Sort(vals)
	slices.Reverse(vals)
	return slices.Compact(vals)
}
