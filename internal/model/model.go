// Package model holds medserve's triage model families — multinomial
// logistic regression, a one-hidden-layer MLP and histogram gradient-boosted
// trees — with deterministic training on sparse, sample-weighted rows,
// allocation-light inference and a versioned JSON serialisation.
//
// Class weighting (under-triage costing more than over-triage) is the
// caller's business: it arrives as per-row sample weights in Dataset.W.
package model

import (
	"errors"
	"fmt"
	"math"
)

// Family names returned by Model.Family and written as the serialisation tag.
const (
	FamilyLogReg = "logreg"
	FamilyMLP    = "mlp"
	FamilyGBT    = "gbt"
)

// Size limits shared by training and Unmarshal. They exist so that a
// corrupt or hostile model file cannot make Unmarshal allocate without bound.
const (
	// MaxFeatures bounds Dataset.Features and a model's feature space.
	MaxFeatures = 1 << 22
	// MaxClasses bounds Dataset.Classes.
	MaxClasses = 256
	// MaxDenseParams bounds Features×Classes (logreg) and Features×Hidden
	// (mlp), the dense feature-major first layer held in memory.
	MaxDenseParams = 1 << 25
)

// Sentinel errors; every returned error wraps one of them with context.
var (
	// ErrInvalidData reports a malformed Dataset.
	ErrInvalidData = errors.New("invalid dataset")
	// ErrInvalidConfig reports an out-of-range training configuration.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrFormat reports bytes that are not a model this package can load.
	ErrFormat = errors.New("invalid model encoding")
	// ErrDiverged reports training that produced non-finite parameters.
	ErrDiverged = errors.New("training diverged")
)

// Row is one example in sparse form: strictly increasing feature indexes and their values.
type Row struct {
	Idx []int32
	Val []float32
}

// Dataset is a training set. Y holds class indexes 0..Classes-1. W holds per-row sample weights (nil = all 1).
type Dataset struct {
	X        []Row
	Y        []int
	W        []float64
	Features int // dimension of the feature space
	Classes  int
}

// Model predicts class probabilities. Implementations are immutable after training and safe for concurrent use.
type Model interface {
	Family() string // "logreg", "mlp", "gbt"
	Classes() int
	Features() int
	// Predict writes class probabilities (summing to 1) into out (len ≥ Classes) and returns out[:Classes].
	// A shorter out is replaced by a fresh slice. Indexes outside [0, Features)
	// and non-finite values are ignored (treated as absent), so Predict never panics.
	Predict(x Row, out []float64) []float64
	Params() int // number of parameters (for size reports)
}

// Validate checks d without training: lengths, label range, index order and
// range, finite values, and non-negative finite weights with a positive sum.
func (d *Dataset) Validate() error {
	if d.Classes < 2 || d.Classes > MaxClasses {
		return fmt.Errorf("%w: classes %d outside [2, %d]", ErrInvalidData, d.Classes, MaxClasses)
	}
	if d.Features <= 0 || d.Features > MaxFeatures {
		return fmt.Errorf("%w: features %d outside [1, %d]", ErrInvalidData, d.Features, MaxFeatures)
	}
	n := len(d.X)
	if n == 0 {
		return fmt.Errorf("%w: no rows", ErrInvalidData)
	}
	if len(d.Y) != n {
		return fmt.Errorf("%w: %d rows but %d labels", ErrInvalidData, n, len(d.Y))
	}
	if d.W != nil && len(d.W) != n {
		return fmt.Errorf("%w: %d rows but %d weights", ErrInvalidData, n, len(d.W))
	}
	sum := 0.0
	for i, r := range d.X {
		if err := validateRow(r, d.Features); err != nil {
			return fmt.Errorf("%w: row %d: %w", ErrInvalidData, i, err)
		}
		if y := d.Y[i]; y < 0 || y >= d.Classes {
			return fmt.Errorf("%w: row %d: label %d outside [0, %d)", ErrInvalidData, i, y, d.Classes)
		}
		if d.W != nil {
			w := d.W[i]
			if !(w >= 0) || math.IsInf(w, 1) {
				return fmt.Errorf("%w: row %d: weight %v is not finite and non-negative", ErrInvalidData, i, w)
			}
			sum += w
		}
	}
	if d.W != nil && !(sum > 0 && !math.IsInf(sum, 1)) {
		return fmt.Errorf("%w: sample weights sum to %v", ErrInvalidData, sum)
	}
	return nil
}

func validateRow(r Row, features int) error {
	if len(r.Idx) != len(r.Val) {
		return fmt.Errorf("%d indexes but %d values", len(r.Idx), len(r.Val))
	}
	prev := int32(-1)
	for j, f := range r.Idx {
		if f < 0 || int(f) >= features {
			return fmt.Errorf("index %d outside [0, %d)", f, features)
		}
		if f <= prev {
			return fmt.Errorf("indexes not strictly increasing at position %d (%d after %d)", j, f, prev)
		}
		prev = f
		if v := r.Val[j]; !finite32(v) {
			return fmt.Errorf("feature %d has non-finite value %v", f, v)
		}
	}
	return nil
}

// weight returns the sample weight of row i (1 when W is nil).
func (d *Dataset) weight(i int) float64 {
	if d.W == nil {
		return 1
	}
	return d.W[i]
}

// meanWeight is the average sample weight; losses are normalised by it so
// that scaling every weight by a constant leaves training unchanged.
func (d *Dataset) meanWeight() float64 {
	if d.W == nil {
		return 1
	}
	s := 0.0
	for _, w := range d.W {
		s += w
	}
	return s / float64(len(d.W))
}

// finite32 reports whether v is neither NaN nor ±Inf (v-v is NaN for both).
func finite32(v float32) bool { return v-v == 0 }

// outBuf returns out[:k], or a fresh slice when out is too small: Predict
// must not panic on a short buffer.
func outBuf(out []float64, k int) []float64 {
	if cap(out) < k {
		return make([]float64, k)
	}
	return out[:k]
}

// softmax turns logits into probabilities in place. It is total on purpose:
// NaN logits get probability 0 and +Inf logits share all the mass, so a
// model whose arithmetic overflows still returns a distribution.
func softmax(z []float64) {
	m := math.Inf(-1)
	for _, v := range z {
		if v > m { // false for NaN
			m = v
		}
	}
	switch {
	case math.IsInf(m, 1):
		c := 0.0
		for _, v := range z {
			if math.IsInf(v, 1) {
				c++
			}
		}
		for i, v := range z {
			if math.IsInf(v, 1) {
				z[i] = 1 / c
			} else {
				z[i] = 0
			}
		}
		return
	case math.IsInf(m, -1): // every logit is -Inf or NaN: nothing to prefer
		for i := range z {
			z[i] = 1 / float64(len(z))
		}
		return
	}
	s := 0.0
	for i, v := range z {
		if v != v {
			z[i] = 0
			continue
		}
		e := math.Exp(v - m)
		z[i] = e
		s += e // ≥ 1 because the maximum contributes exp(0)
	}
	for i := range z {
		z[i] /= s
	}
}

// Argmax returns the index of the largest probability (the first on ties), or -1 for an empty slice.
func Argmax(p []float64) int {
	best := -1
	for i, v := range p {
		if best < 0 || v > p[best] {
			best = i
		}
	}
	return best
}

// inputScaling is how the gradient-trained families see the inputs:
// x' = (x − mu)·scale. Sparse features (non-zero in under half the rows)
// keep mu = 0 and scale = 1/max|x|, so absent stays 0 and a row still costs
// only its non-zeros. Dense-ish features (vitals, scores) are standardised
// — centred with mean and scaled by 1/std, absent counted as 0 — since raw
// vitals (heart rate ≈ 80) against an L2 penalty would otherwise be
// regularised away. Centring shifts every row by −Σ w·mu·scale over the
// dense features, one K- (or H-) vector per weight update, and the whole
// transform folds into the first-layer weights and bias after training, so
// inference pays nothing.
type inputScaling struct {
	scale []float64 // per feature
	dense []int32   // centred features, ascending
	mu    []float64 // per feature; non-zero only for dense ones
}

func newInputScaling(d *Dataset) inputScaling {
	F, n := d.Features, float64(len(d.X))
	s := inputScaling{scale: make([]float64, F), mu: make([]float64, F)}
	cnt := make([]int, F)
	sum := make([]float64, F)
	sq := make([]float64, F)
	maxAbs := make([]float64, F)
	for _, r := range d.X {
		for j, f := range r.Idx {
			v := float64(r.Val[j])
			if v == 0 {
				continue
			}
			cnt[f]++
			sum[f] += v
			sq[f] += v * v
			maxAbs[f] = max(maxAbs[f], math.Abs(v))
		}
	}
	for f := range s.scale {
		s.scale[f] = 1
		if maxAbs[f] == 0 {
			continue
		}
		s.scale[f] = 1 / maxAbs[f]
		if 2*cnt[f] < len(d.X) {
			continue
		}
		mu := sum[f] / n
		sd := math.Sqrt(max(sq[f]/n-mu*mu, 0))
		if sd <= 1e-6*maxAbs[f] { // (near-)constant: centring would divide by ~0
			continue
		}
		s.scale[f] = 1 / sd
		s.mu[f] = mu
		s.dense = append(s.dense, int32(f))
	}
	return s
}

// offset computes out[u] = Σ_dense w[f*width+u]·mu_f·scale_f, the shift
// that centring applies to every row's first-layer pre-activation.
func (s *inputScaling) offset(w []float64, width int, out []float64) {
	clear(out)
	for _, f := range s.dense {
		c := s.mu[f] * s.scale[f]
		row := w[int(f)*width : int(f)*width+width]
		for u := range out {
			out[u] += c * row[u]
		}
	}
}

// centreGrad adds the centring term of the gradient of the dense features,
// −mu_f·scale_f·Σ_rows dz (gb is that row sum: the bias gradient).
func (s *inputScaling) centreGrad(g []float64, width int, gb []float64) {
	for _, f := range s.dense {
		c := s.mu[f] * s.scale[f]
		row := g[int(f)*width : int(f)*width+width]
		for u := range row {
			row[u] -= c * gb[u]
		}
	}
}

// fold rewrites trained weights w (scaled space) and bias b into raw-input
// form: w'_f = w_f·scale_f, b' = b − Σ_dense w_f·mu_f·scale_f.
func (s *inputScaling) fold(w []float64, width int, b []float64) {
	off := make([]float64, width)
	s.offset(w, width, off)
	for u := range b {
		b[u] -= off[u]
	}
	for f, sc := range s.scale {
		row := w[f*width : f*width+width]
		for u := range row {
			row[u] *= sc
		}
	}
}

// meanNNZ is the average number of stored entries per row (at least 1); it
// is the effective fan-in of a sparse first layer.
func meanNNZ(d *Dataset) float64 {
	t := 0
	for _, r := range d.X {
		t += len(r.Idx)
	}
	m := float64(t) / float64(len(d.X))
	if m < 1 {
		return 1
	}
	return m
}

// checkPositive validates a config value that must be finite and > 0 after defaults.
func checkPositive(name string, v float64) error {
	if !(v > 0) || math.IsInf(v, 1) {
		return fmt.Errorf("%w: %s = %v must be finite and > 0", ErrInvalidConfig, name, v)
	}
	return nil
}

// adam holds Adam's hyper-parameters and bias corrections by step count.
type adam struct {
	lr, b1, b2, eps float64
	c1, c2          []float64 // [t] = 1/(1-b1^t), 1/(1-b2^t), t = 1..steps
}

func newAdam(lr float64, steps int) adam {
	a := adam{lr: lr, b1: 0.9, b2: 0.999, eps: 1e-8, c1: make([]float64, steps+1), c2: make([]float64, steps+1)}
	p1, p2 := 1.0, 1.0
	for t := 1; t <= steps; t++ {
		p1 *= a.b1
		p2 *= a.b2
		a.c1[t] = 1 / (1 - p1)
		a.c2[t] = 1 / (1 - p2)
	}
	return a
}

// update applies one Adam step to w given gradient g (plus l2·w), using and
// refreshing moments m and v; t is the number of updates these parameters
// have had, this one included. All four slices have the same length.
func (a *adam) update(w, m, v, g []float64, l2 float64, t int) {
	m = m[:len(w)]
	v = v[:len(w)]
	g = g[:len(w)]
	// Locals keep the hyper-parameters in registers: the stores to m and v
	// would otherwise force reloads through a.
	b1, b2, eps := a.b1, a.b2, a.eps
	step, c2 := a.lr*a.c1[t], a.c2[t]
	for i := range w {
		gi := g[i] + l2*w[i]
		mi := b1*m[i] + (1-b1)*gi
		vi := b2*v[i] + (1-b2)*gi*gi
		m[i], v[i] = mi, vi
		w[i] -= step * mi / (math.Sqrt(vi*c2) + eps)
	}
}

func toF32(xs []float64) []float32 {
	out := make([]float32, len(xs))
	for i, v := range xs {
		out[i] = float32(v)
	}
	return out
}
