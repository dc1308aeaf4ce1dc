package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// MLPConfig configures TrainMLP. Zero values take the defaults below.
type MLPConfig struct {
	Hidden       int     // hidden ReLU units; default 64, at most MaxHidden
	L2           float64 // L2 penalty on both weight matrices (biases excluded); default 1e-4
	Epochs       int     // passes over the data; default 30
	LearningRate float64 // Adam step size; default 0.005
	Dropout      float64 // hidden-unit drop probability in training, in [0, 1); default 0 (off)
	Seed         int64   // initialisation, shuffling and dropout seed; 0 is a valid seed
}

// Defaults and limits for MLPConfig.
const (
	DefaultMLPHidden       = 64
	DefaultMLPL2           = 1e-4
	DefaultMLPEpochs       = 30
	DefaultMLPLearningRate = 0.005
	// MaxHidden bounds MLPConfig.Hidden.
	MaxHidden = 4096
)

// stackHidden is the hidden width up to which Predict keeps its activations
// in a stack array; wider models borrow a scratch slice from a pool.
const stackHidden = 256

func (c MLPConfig) withDefaults() (MLPConfig, error) {
	if c.Hidden == 0 {
		c.Hidden = DefaultMLPHidden
	}
	if c.L2 == 0 {
		c.L2 = DefaultMLPL2
	}
	if c.Epochs == 0 {
		c.Epochs = DefaultMLPEpochs
	}
	if c.LearningRate == 0 {
		c.LearningRate = DefaultMLPLearningRate
	}
	if c.Hidden < 1 || c.Hidden > MaxHidden {
		return c, fmt.Errorf("%w: Hidden = %d outside [1, %d]", ErrInvalidConfig, c.Hidden, MaxHidden)
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
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return c, fmt.Errorf("%w: Dropout = %v outside [0, 1)", ErrInvalidConfig, c.Dropout)
	}
	return c, nil
}

// mlpModel is input → ReLU(hidden) → softmax. The first layer is stored
// feature-major (w1[f*H+j]) so a sparse row costs nnz×H multiply-adds.
type mlpModel struct {
	cfg      MLPConfig
	features int
	classes  int
	hidden   int
	w1       []float32 // features*hidden; input scaling folded in
	b1       []float32 // hidden
	w2       []float32 // hidden*classes, unit-major
	b2       []float32 // classes
	scratch  *sync.Pool
}

// TrainMLP fits a one-hidden-layer ReLU network with softmax output by
// mini-batch Adam (batches of 32) on the sample-weighted mean cross-entropy
// plus L2, on standardised inputs, with optional inverted dropout on the
// hidden layer. First-layer Adam updates are lazy, as in TrainLogReg. Weights of features
// that never occur in training stay exactly zero, so unseen hashed n-grams
// at inference add nothing rather than random noise. Deterministic for a
// given data set and seed.
func TrainMLP(d Dataset, c MLPConfig) (Model, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("mlp: %w", err)
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("mlp: %w", err)
	}
	F, K, H, n := d.Features, d.Classes, cfg.Hidden, len(d.X)
	if F*H > MaxDenseParams {
		return nil, fmt.Errorf("mlp: %w: features×hidden = %d exceeds %d", ErrInvalidConfig, F*H, MaxDenseParams)
	}
	sc := newInputScaling(&d)
	wbar := d.meanWeight()
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6d6c70)) // stream tag "mlp"

	// He initialisation with the mean row nnz as fan-in: only non-zero
	// inputs feed a unit, so the nominal fan-in (Features) would start
	// every unit near zero. Features are visited in ascending order so the
	// draws do not depend on anything but the data and the seed.
	present := make([]bool, F)
	for _, r := range d.X {
		for _, f := range r.Idx {
			present[f] = true
		}
	}
	w1 := make([]float64, F*H)
	std1 := math.Sqrt(2 / meanNNZ(&d))
	for f, ok := range present {
		if ok {
			for j := 0; j < H; j++ {
				w1[f*H+j] = rng.NormFloat64() * std1
			}
		}
	}
	w2 := make([]float64, H*K)
	std2 := math.Sqrt(1 / float64(H)) // Glorot-style for the linear output layer
	for i := range w2 {
		w2[i] = rng.NormFloat64() * std2
	}
	b1 := make([]float64, H)
	b2 := make([]float64, K)

	m1, v1, g1 := make([]float64, F*H), make([]float64, F*H), make([]float64, F*H)
	mb1, vb1, gb1 := make([]float64, H), make([]float64, H), make([]float64, H)
	m2, v2, g2 := make([]float64, H*K), make([]float64, H*K), make([]float64, H*K)
	mb2, vb2, gb2 := make([]float64, K), make([]float64, K), make([]float64, K)

	off1 := make([]float64, H)
	z1 := make([]float64, H)
	hid := make([]float64, H)
	mask := make([]float64, H)
	dz1 := make([]float64, H)
	p := make([]float64, K)

	lazy := newLazyRows(F, 4096)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	keep := 1 - cfg.Dropout
	batches := (n + batchSize - 1) / batchSize
	opt := newAdam(cfg.LearningRate, cfg.Epochs*batches)
	step := int32(0)

	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < n; start += batchSize {
			end := min(start+batchSize, n)
			lazy.begin()
			step++
			sc.offset(w1, H, off1)
			clear(gb1)
			clear(g2)
			clear(gb2)
			norm := 1 / (wbar * float64(end-start))
			for _, i := range order[start:end] {
				r := d.X[i]
				// Forward.
				for u := range z1 {
					z1[u] = b1[u] - off1[u]
				}
				for j, f := range r.Idx {
					xv := float64(r.Val[j]) * sc.scale[f]
					axpy64(z1, w1[int(f)*H:int(f)*H+H], xv)
				}
				for u, z := range z1 {
					mask[u] = 1
					if cfg.Dropout > 0 {
						if rng.Float64() < cfg.Dropout {
							mask[u] = 0
						} else {
							mask[u] = 1 / keep
						}
					}
					if z > 0 {
						hid[u] = z * mask[u]
					} else {
						hid[u] = 0
					}
				}
				copy(p, b2)
				for u, h := range hid {
					if h == 0 {
						continue
					}
					row := w2[u*K : u*K+K]
					row = row[:len(p)]
					for k := range p {
						p[k] += h * row[k]
					}
				}
				softmax(p)
				// Backward: dL/dlogits = w_i (p - onehot) / normaliser.
				coef := d.weight(i) * norm
				p[d.Y[i]] -= 1
				for k := range p {
					p[k] *= coef
					gb2[k] += p[k]
				}
				for u, h := range hid {
					row := w2[u*K : u*K+K]
					row = row[:len(p)]
					g := g2[u*K : u*K+K]
					g = g[:len(p)]
					dh := 0.0
					for k, dk := range p {
						if h != 0 {
							g[k] += h * dk
						}
						dh += row[k] * dk
					}
					if z1[u] > 0 {
						dz1[u] = dh * mask[u]
					} else {
						dz1[u] = 0
					}
					gb1[u] += dz1[u]
				}
				for j, f := range r.Idx {
					lazy.touch(f)
					xv := float64(r.Val[j]) * sc.scale[f]
					axpy64(g1[int(f)*H:int(f)*H+H], dz1, xv)
				}
			}
			for _, f := range sc.dense {
				lazy.touch(f)
			}
			sc.centreGrad(g1, H, gb1)
			lazy.update(&opt, w1, m1, v1, g1, H, cfg.L2, step)
			opt.update(b1, mb1, vb1, gb1, 0, int(step))
			opt.update(w2, m2, v2, g2, cfg.L2, int(step))
			opt.update(b2, mb2, vb2, gb2, 0, int(step))
		}
	}

	sc.fold(w1, H, b1)
	m := newMLPModel(cfg, F, K, H, toF32(w1), toF32(b1), toF32(w2), toF32(b2))
	for _, xs := range [][]float32{m.w1, m.b1, m.w2, m.b2} {
		if !allFinite32(xs) {
			return nil, fmt.Errorf("mlp: %w: non-finite weights (lower LearningRate?)", ErrDiverged)
		}
	}
	return m, nil
}

func newMLPModel(cfg MLPConfig, F, K, H int, w1, b1, w2, b2 []float32) *mlpModel {
	m := &mlpModel{cfg: cfg, features: F, classes: K, hidden: H, w1: w1, b1: b1, w2: w2, b2: b2}
	if H > stackHidden {
		m.scratch = &sync.Pool{New: func() any { s := make([]float32, H); return &s }}
	}
	return m
}

// Family returns "mlp".
func (m *mlpModel) Family() string { return FamilyMLP }

// Classes returns the number of classes.
func (m *mlpModel) Classes() int { return m.classes }

// Features returns the feature-space dimension.
func (m *mlpModel) Features() int { return m.features }

// Params returns the number of weights and biases of both layers.
func (m *mlpModel) Params() int { return len(m.w1) + len(m.b1) + len(m.w2) + len(m.b2) }

// Predict costs nnz×Hidden + Hidden×Classes multiply-adds and allocates
// nothing for Hidden ≤ 256.
func (m *mlpModel) Predict(x Row, out []float64) []float64 {
	H, K := m.hidden, m.classes
	out = outBuf(out, K)
	var stack [stackHidden]float32
	var h []float32
	var pooled *[]float32
	if H <= stackHidden {
		h = stack[:H]
	} else {
		pooled = m.scratch.Get().(*[]float32)
		h = (*pooled)[:H]
	}
	copy(h, m.b1)
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
		axpy32(h, m.w1[int(f)*H:int(f)*H+H], v)
	}
	for k := range out {
		out[k] = float64(m.b2[k])
	}
	for u, hv := range h {
		if !(hv > 0) { // ReLU; also drops NaN from overflowed sums
			continue
		}
		row := m.w2[u*K : u*K+K]
		row = row[:len(out)]
		a := float64(hv)
		for k := range out {
			out[k] += a * float64(row[k])
		}
	}
	if pooled != nil {
		m.scratch.Put(pooled)
	}
	softmax(out)
	return out
}

// axpy32 computes h += v·w (len(w) ≥ len(h)), unrolled by four: the
// first-layer accumulation is Predict's hot loop.
func axpy32(h, w []float32, v float32) {
	w = w[:len(h)]
	u := 0
	for ; u+4 <= len(h); u += 4 {
		hh := h[u : u+4 : u+4]
		ww := w[u : u+4 : u+4]
		hh[0] += v * ww[0]
		hh[1] += v * ww[1]
		hh[2] += v * ww[2]
		hh[3] += v * ww[3]
	}
	for ; u < len(h); u++ {
		h[u] += v * w[u]
	}
}

// axpy64 is axpy32 for training's float64 vectors.
func axpy64(h, w []float64, v float64) {
	w = w[:len(h)]
	u := 0
	for ; u+4 <= len(h); u += 4 {
		hh := h[u : u+4 : u+4]
		ww := w[u : u+4 : u+4]
		hh[0] += v * ww[0]
		hh[1] += v * ww[1]
		hh[2] += v * ww[2]
		hh[3] += v * ww[3]
	}
	for ; u < len(h); u++ {
		h[u] += v * w[u]
	}
}
