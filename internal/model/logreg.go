package model

import (
	"fmt"
	"math/rand/v2"
)

// LogRegConfig configures TrainLogReg. Zero values take the defaults below.
type LogRegConfig struct {
	L2           float64 // L2 penalty (λ/2·‖W‖², bias excluded) on max-abs-scaled inputs; default 1e-4
	Epochs       int     // passes over the data; default 40
	LearningRate float64 // Adam step size; default 0.02
	Seed         int64   // shuffling seed; 0 is a valid seed
}

// Defaults for LogRegConfig.
const (
	DefaultLogRegL2           = 1e-4
	DefaultLogRegEpochs       = 40
	DefaultLogRegLearningRate = 0.02
)

// batchSize is the mini-batch size for the gradient-trained families: small
// enough for many Adam steps on ~1,000 rows, large enough to amortise the
// sparse update bookkeeping.
const batchSize = 32

// withDefaults fills zero fields and rejects out-of-range ones.
func (c LogRegConfig) withDefaults() (LogRegConfig, error) {
	if c.L2 == 0 {
		c.L2 = DefaultLogRegL2
	}
	if c.Epochs == 0 {
		c.Epochs = DefaultLogRegEpochs
	}
	if c.LearningRate == 0 {
		c.LearningRate = DefaultLogRegLearningRate
	}
	if err := checkPositive("L2", c.L2); err != nil {
		return c, err
	}
	if err := checkPositive("LearningRate", c.LearningRate); err != nil {
		return c, err
	}
	if c.Epochs < 0 || c.Epochs > 1_000_000 {
		return c, fmt.Errorf("%w: Epochs = %d outside [1, 1e6]", ErrInvalidConfig, c.Epochs)
	}
	return c, nil
}

// logRegModel is multinomial logistic regression with feature-major weights
// w[f*K+k], so one sparse entry touches K contiguous floats.
type logRegModel struct {
	cfg      LogRegConfig
	features int
	classes  int
	w        []float32 // len features*classes; input scaling already folded in
	b        []float32 // len classes
}

// TrainLogReg fits softmax regression by mini-batch Adam (batches of 32,
// reshuffled each epoch) over sparse rows, minimising the sample-weighted
// mean cross-entropy plus L2 on standardised inputs (see inputScaling).
// Adam updates are lazy: only features present in a batch (and the biases)
// move, which keeps an epoch proportional to the data's non-zeros rather
// than to Features×Classes. Deterministic for a given data set and seed.
func TrainLogReg(d Dataset, c LogRegConfig) (Model, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("logreg: %w", err)
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("logreg: %w", err)
	}
	F, K, n := d.Features, d.Classes, len(d.X)
	if F*K > MaxDenseParams {
		return nil, fmt.Errorf("logreg: %w: features×classes = %d exceeds %d", ErrInvalidData, F*K, MaxDenseParams)
	}
	sc := newInputScaling(&d)
	wbar := d.meanWeight()

	w := make([]float64, F*K)
	mw := make([]float64, F*K)
	vw := make([]float64, F*K)
	gw := make([]float64, F*K)
	b := make([]float64, K)
	mb := make([]float64, K)
	vb := make([]float64, K)
	gb := make([]float64, K)
	p := make([]float64, K)
	off := make([]float64, K)

	lazy := newLazyRows(F, 1024)

	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6c6f67726567)) // stream tag "logreg"
	batches := (n + batchSize - 1) / batchSize
	opt := newAdam(cfg.LearningRate, cfg.Epochs*batches)
	step := int32(0)

	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < n; start += batchSize {
			end := min(start+batchSize, n)
			lazy.begin()
			step++
			clear(gb)
			sc.offset(w, K, off)
			norm := 1 / (wbar * float64(end-start))
			for _, i := range order[start:end] {
				r := d.X[i]
				for k := range p {
					p[k] = b[k] - off[k]
				}
				for j, f := range r.Idx {
					xv := float64(r.Val[j]) * sc.scale[f]
					wf := w[int(f)*K : int(f)*K+K]
					wf = wf[:len(p)]
					for k := range p {
						p[k] += xv * wf[k]
					}
				}
				softmax(p)
				coef := d.weight(i) * norm
				p[d.Y[i]] -= 1
				for k := range p {
					p[k] *= coef
					gb[k] += p[k]
				}
				for j, f := range r.Idx {
					lazy.touch(f)
					xv := float64(r.Val[j]) * sc.scale[f]
					g := gw[int(f)*K : int(f)*K+K]
					g = g[:len(p)]
					for k := range g {
						g[k] += xv * p[k]
					}
				}
			}
			// Centred features get a gradient from every row, present or not.
			for _, f := range sc.dense {
				lazy.touch(f)
			}
			sc.centreGrad(gw, K, gb)
			lazy.update(&opt, w, mw, vw, gw, K, cfg.L2, step)
			opt.update(b, mb, vb, gb, 0, int(step))
		}
	}

	sc.fold(w, K, b)
	m := &logRegModel{cfg: cfg, features: F, classes: K, w: toF32(w), b: toF32(b)}
	if !allFinite32(m.w) || !allFinite32(m.b) {
		return nil, fmt.Errorf("logreg: %w: non-finite weights (lower LearningRate?)", ErrDiverged)
	}
	return m, nil
}

func allFinite32(xs []float32) bool {
	for _, v := range xs {
		if !finite32(v) {
			return false
		}
	}
	return true
}

// Family returns "logreg".
func (m *logRegModel) Family() string { return FamilyLogReg }

// Classes returns the number of classes.
func (m *logRegModel) Classes() int { return m.classes }

// Features returns the feature-space dimension.
func (m *logRegModel) Features() int { return m.features }

// Params returns Features×Classes weights plus Classes biases.
func (m *logRegModel) Params() int { return len(m.w) + len(m.b) }

// Predict touches only the row's non-zero features: O(nnz×Classes).
func (m *logRegModel) Predict(x Row, out []float64) []float64 {
	K := m.classes
	out = outBuf(out, K)
	for k := range out {
		out[k] = float64(m.b[k])
	}
	n := min(len(x.Idx), len(x.Val))
	for j := 0; j < n; j++ {
		f := x.Idx[j]
		if uint32(f) >= uint32(m.features) {
			continue
		}
		v := x.Val[j]
		if !finite32(v) {
			continue
		}
		wf := m.w[int(f)*K : int(f)*K+K]
		wf = wf[:len(out)]
		xv := float64(v)
		for k := range out {
			out[k] += xv * float64(wf[k])
		}
	}
	softmax(out)
	return out
}
