package optimize

import (
	"fmt"
	"math"
	"math/rand/v2"

	"medserve/internal/model"
)

// fitSpec configures fitNet: plain fine-tuning on the hard labels
// (Alpha 0) or knowledge distillation from soft targets.
type fitSpec struct {
	Epochs       int
	LearningRate float64
	L2           float64 // on the weight matrices in max-abs-scaled input space, as the stock trainers
	Temperature  float64 // T of the soft targets (used when Alpha > 0)
	Alpha        float64 // weight of the distillation term, in [0, 1]
	Seed         int64
}

// fitBatch is the mini-batch size, as in the model package.
const fitBatch = 32

// kdLoss returns one row's loss and writes its gradient with respect to the
// student's logits z into g:
//
//	L = α·T²·KL(qT ‖ softmax(z/T)) + (1−α)·CE(y, softmax(z))
//	∂L/∂z = α·T·(softmax(z/T) − qT) + (1−α)·(softmax(z) − onehot(y))
//
// qT is the teacher's distribution at temperature T (nil when α = 0). The
// T² factor keeps the soft term's gradient on the scale of the hard one.
func kdLoss(z, qT []float64, y int, T, alpha float64, g []float64) float64 {
	K := len(z)
	loss := 0.0
	// Hard term.
	copy(g, z)
	softmax(g[:K])
	if alpha < 1 {
		loss += (1 - alpha) * -math.Log(max(g[y], 1e-300))
		for k := range K {
			g[k] *= 1 - alpha
		}
		g[y] -= 1 - alpha
	} else {
		clear(g[:K])
	}
	if alpha > 0 {
		var pT [model.MaxClasses]float64
		for k := range K {
			pT[k] = z[k] / T
		}
		softmax(pT[:K])
		kl := 0.0
		for k := range K {
			if qT[k] > 0 {
				kl += qT[k] * (math.Log(qT[k]) - math.Log(max(pT[k], 1e-300)))
			}
			g[k] += alpha * T * (pT[k] - qT[k])
		}
		loss += alpha * T * T * kl
	}
	return loss
}

// softTargets turns teacher probabilities into the distribution at
// temperature T: softmax(log q / T).
func softTargets(q []float64, T float64) []float64 {
	out := make([]float64, len(q))
	for k, p := range q {
		out[k] = math.Log(max(p, 1e-12)) / T
	}
	softmax(out)
	return out
}

// slotRow is a training row restricted to a net's used features, with the
// values already max-abs scaled.
type slotRow struct {
	slot []int32
	val  []float64
}

// netTrainer fits a net's weights in float64, in the max-abs scaled input
// space x' = x·scale (so weights are w/scale while training, folded back
// at the end), by mini-batch Adam on the sample-weighted mean loss.
type netTrainer struct {
	K, W, H        int
	w1, b1, w2, b2 []float64
	g1, gb1        []float64
	g2, gb2        []float64
	mask1, mask2   []bool // nil = every weight free; false = held at 0
	scale          []float64
	rows           []slotRow
	y              []int
	wt             []float64
	qT             [][]float64
	spec           fitSpec
	wbar           float64
	// scratch
	a, h, dh []float64
	z, gz    []float64
}

func newNetTrainer(n *net, d *model.Dataset, qT [][]float64, spec fitSpec) *netTrainer {
	W, K := n.width(), n.classes
	t := &netTrainer{K: K, W: W, H: n.hidden, spec: spec, y: d.Y, wt: d.W, qT: qT}
	ix := newFeatIndex(n.used)
	t.scale = make([]float64, len(n.used))
	t.rows = make([]slotRow, len(d.X))
	for i, r := range d.X {
		for j, f := range r.Idx {
			v := float64(r.Val[j])
			if s := ix.slot(f); s >= 0 && v != 0 && !math.IsNaN(v) && !math.IsInf(v, 0) {
				t.rows[i].slot = append(t.rows[i].slot, s)
				t.rows[i].val = append(t.rows[i].val, v)
				t.scale[s] = max(t.scale[s], math.Abs(v))
			}
		}
	}
	for s, m := range t.scale {
		if m == 0 {
			t.scale[s] = 1
		} else {
			t.scale[s] = 1 / m
		}
	}
	for _, r := range t.rows {
		for j, s := range r.slot {
			r.val[j] *= t.scale[s]
		}
	}
	t.w1 = make([]float64, len(n.w1))
	for i, v := range n.w1 {
		t.w1[i] = float64(v) / t.scale[i/W]
	}
	t.b1 = f64s(n.b1)
	t.w2, t.b2 = f64s(n.w2), f64s(n.b2)
	t.g1, t.gb1 = make([]float64, len(t.w1)), make([]float64, len(t.b1))
	t.g2, t.gb2 = make([]float64, len(t.w2)), make([]float64, len(t.b2))
	t.a, t.h, t.dh = make([]float64, W), make([]float64, W), make([]float64, W)
	t.z, t.gz = make([]float64, K), make([]float64, K)
	t.wbar = 0
	for i := range d.X {
		t.wbar += t.weight(i)
	}
	t.wbar /= float64(len(d.X))
	return t
}

func (t *netTrainer) weight(i int) float64 {
	if t.wt == nil {
		return 1
	}
	return t.wt[i]
}

// forward computes row i's logits into t.z (and the hidden pre-activations in t.a).
func (t *netTrainer) forward(i int) {
	r := t.rows[i]
	W, K := t.W, t.K
	copy(t.a, t.b1)
	for j, s := range r.slot {
		x := r.val[j]
		row := t.w1[int(s)*W : int(s)*W+W]
		for u := range t.a {
			t.a[u] += x * row[u]
		}
	}
	if t.H == 0 {
		copy(t.z, t.a)
		return
	}
	copy(t.z, t.b2)
	for u, a := range t.a {
		t.h[u] = max(a, 0)
		if a <= 0 {
			continue
		}
		row := t.w2[u*K : u*K+K]
		for k := range t.z {
			t.z[k] += a * row[k]
		}
	}
}

// lossGrad adds the gradient of the batch's weighted mean loss (without the
// L2 term) to the gradient buffers, which it clears first, and returns the loss.
func (t *netTrainer) lossGrad(batch []int) float64 {
	clear(t.g1)
	clear(t.gb1)
	clear(t.g2)
	clear(t.gb2)
	W, K := t.W, t.K
	norm := 1 / (t.wbar * float64(len(batch)))
	loss := 0.0
	for _, i := range batch {
		t.forward(i)
		var q []float64
		if t.qT != nil {
			q = t.qT[i]
		}
		coef := t.weight(i) * norm
		loss += coef * kdLoss(t.z, q, t.y[i], t.spec.Temperature, t.spec.Alpha, t.gz)
		for k := range t.gz {
			t.gz[k] *= coef
		}
		da := t.gz
		if t.H > 0 {
			for k, g := range t.gz {
				t.gb2[k] += g
			}
			for u, h := range t.h {
				row := t.w2[u*K : u*K+K]
				g2 := t.g2[u*K : u*K+K]
				d := 0.0
				for k, g := range t.gz {
					g2[k] += h * g
					d += row[k] * g
				}
				if t.a[u] > 0 {
					t.dh[u] = d
				} else {
					t.dh[u] = 0
				}
			}
			da = t.dh
		}
		for u, g := range da {
			t.gb1[u] += g
		}
		r := t.rows[i]
		for j, s := range r.slot {
			x := r.val[j]
			g1 := t.g1[int(s)*W : int(s)*W+W]
			for u, g := range da {
				g1[u] += x * g
			}
		}
	}
	return loss
}

// fit runs the configured epochs of Adam.
func (t *netTrainer) fit() error {
	n := len(t.rows)
	if n == 0 || t.spec.Epochs <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(t.spec.Seed), 0x6f7074)) // stream tag "opt"
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	params := [][]float64{t.w1, t.b1, t.w2, t.b2}
	grads := [][]float64{t.g1, t.gb1, t.g2, t.gb2}
	l2 := []float64{t.spec.L2, 0, t.spec.L2, 0}
	masks := [][]bool{t.mask1, nil, t.mask2, nil}
	m := make([][]float64, 4)
	v := make([][]float64, 4)
	for i, p := range params {
		m[i], v[i] = make([]float64, len(p)), make([]float64, len(p))
	}
	const b1, b2, eps = 0.9, 0.999, 1e-8
	step := 0
	for epoch := 0; epoch < t.spec.Epochs; epoch++ {
		rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < n; start += fitBatch {
			t.lossGrad(order[start:min(start+fitBatch, n)])
			step++
			c1 := 1 / (1 - math.Pow(b1, float64(step)))
			c2 := 1 / (1 - math.Pow(b2, float64(step)))
			for pi, p := range params {
				g, mm, vv, mask := grads[pi], m[pi], v[pi], masks[pi]
				for i := range p {
					if mask != nil && !mask[i] {
						continue
					}
					gi := g[i] + l2[pi]*p[i]
					mm[i] = b1*mm[i] + (1-b1)*gi
					vv[i] = b2*vv[i] + (1-b2)*gi*gi
					p[i] -= t.spec.LearningRate * c1 * mm[i] / (math.Sqrt(vv[i]*c2) + eps)
				}
			}
		}
	}
	for _, p := range params {
		for _, x := range p {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("fine-tune: non-finite weights (lower the learning rate?)")
			}
		}
	}
	return nil
}

// store folds the scaling back and writes the weights into n.
func (t *netTrainer) store(n *net) {
	W := t.W
	for i, v := range t.w1 {
		n.w1[i] = float32(v * t.scale[i/W])
	}
	for i, v := range t.b1 {
		n.b1[i] = float32(v)
	}
	for i, v := range t.w2 {
		n.w2[i] = float32(v)
	}
	for i, v := range t.b2 {
		n.b2[i] = float32(v)
	}
}

// fitNet trains n in place on d: fine-tuning when n holds trained weights,
// training from its initial weights otherwise. Weights outside the masks
// stay exactly zero.
func fitNet(n *net, d *model.Dataset, qT [][]float64, mask1, mask2 []bool, spec fitSpec) error {
	t := newNetTrainer(n, d, qT, spec)
	t.mask1, t.mask2 = mask1, mask2
	if err := t.fit(); err != nil {
		return err
	}
	t.store(n)
	return nil
}

func f64s(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = float64(v)
	}
	return out
}
