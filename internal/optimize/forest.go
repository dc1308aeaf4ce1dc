package optimize

import (
	"math"
	"slices"
	"sort"

	"medserve/internal/model"
)

// forestRows holds training rows as dense vectors over a forest's used
// features (absent = 0), so trees can route them without searching.
type forestRows struct {
	S    int
	vals []float32 // row-major, len(rows)×S
}

func newForestRows(f *forest, d *model.Dataset) forestRows {
	S := len(f.used)
	ix := newFeatIndex(f.used)
	fr := forestRows{S: S, vals: make([]float32, len(d.X)*S)}
	for i, r := range d.X {
		for j, feat := range r.Idx {
			if s := ix.slot(feat); s >= 0 && finite32(r.Val[j]) {
				fr.vals[i*S+int(s)] = r.Val[j]
			}
		}
	}
	return fr
}

// leaf returns the index of the leaf row i reaches in t.
func (fr *forestRows) leaf(t *tree, i int) int32 {
	x := fr.vals[i*fr.S : i*fr.S+fr.S]
	n := int32(0)
	for {
		nd := t.nodes[n]
		if nd.slot < 0 {
			return n
		}
		n = nd.left
		if x[nd.slot] > nd.v {
			n++
		}
	}
}

// roundImportance is, per boosting round, the weighted mean over the rows
// of the absolute logit change its K trees make: a round whose trees barely
// move any row's scores is the cheapest to lose.
func roundImportance(f *forest, fr *forestRows, d *model.Dataset) []float64 {
	K := f.classes
	R := len(f.trees) / K
	imp := make([]float64, R)
	sw := 0.0
	for i := range d.X {
		sw += rowWeight(d, i)
	}
	for t := range f.trees {
		tr := &f.trees[t]
		s := 0.0
		for i := range d.X {
			s += rowWeight(d, i) * math.Abs(float64(tr.nodes[fr.leaf(tr, i)].v))
		}
		imp[t/K] += s / sw
	}
	return imp
}

// dropRounds removes whole boosting rounds, least important first, until
// at least the share frac of the forest's parameters is gone (keeping at
// least one round), and returns how many rounds it removed. Boosting is
// additive, so any subset of rounds is still a valid ensemble.
func dropRounds(f *forest, imp []float64, frac float64) int {
	K := f.classes
	R := len(imp)
	if frac <= 0 || R < 2 {
		return 0
	}
	roundParams := make([]int, R)
	for t, tr := range f.trees {
		for _, nd := range tr.nodes {
			if nd.slot < 0 {
				roundParams[t/K]++
			} else {
				roundParams[t/K] += 2
			}
		}
	}
	goal := frac * float64(f.params())
	order := make([]int, R)
	for r := range order {
		order[r] = r
	}
	// Least important first; ties drop the later round (it was fitted to
	// the residual of the earlier ones).
	sort.SliceStable(order, func(a, b int) bool {
		if imp[order[a]] != imp[order[b]] {
			return imp[order[a]] < imp[order[b]]
		}
		return order[a] > order[b]
	})
	gone := make([]bool, R)
	removed, drop := 0, 0
	for _, r := range order[:R-1] {
		if float64(removed) >= goal {
			break
		}
		gone[r] = true
		removed += roundParams[r]
		drop++
	}
	var kept []tree
	for t, tr := range f.trees {
		if !gone[t/K] {
			kept = append(kept, tr)
		}
	}
	f.trees = kept
	return drop
}

// refitLeaves re-estimates every leaf value with one Newton step per tree,
// in boosting order, on the softmax loss the trees were grown on: the
// kept trees then correct the residual of the kept trees before them,
// not of the rounds that were removed. Structure is unchanged.
func refitLeaves(f *forest, fr *forestRows, d *model.Dataset) {
	cfg := f.cfg
	lr, lambda := cfg.LearningRate, cfg.L2
	if lr == 0 {
		lr = model.DefaultGBTLearningRate
	}
	if lambda == 0 {
		lambda = model.DefaultGBTL2
	}
	K, n := f.classes, len(d.X)
	scores := make([]float64, n*K)
	for i := 0; i < n; i++ {
		for k := 0; k < K; k++ {
			scores[i*K+k] = float64(f.base[k])
		}
	}
	probs := make([]float64, n*K)
	leafOf := make([]int32, n)
	for r := 0; r < len(f.trees)/K; r++ {
		copy(probs, scores)
		for i := 0; i < n; i++ {
			softmax(probs[i*K : i*K+K])
		}
		for k := 0; k < K; k++ {
			tr := &f.trees[r*K+k]
			G := make([]float64, len(tr.nodes))
			H := make([]float64, len(tr.nodes))
			for i := 0; i < n; i++ {
				l := fr.leaf(tr, i)
				leafOf[i] = l
				p, w := probs[i*K+k], rowWeight(d, i)
				y := 0.0
				if d.Y[i] == k {
					y = 1
				}
				G[l] += w * (p - y)
				H[l] += w * p * (1 - p)
			}
			for l := range tr.nodes {
				if tr.nodes[l].slot < 0 {
					tr.nodes[l].v = float32(-G[l] / (H[l] + lambda) * lr)
				}
			}
			for i := 0; i < n; i++ {
				scores[i*K+k] += float64(tr.nodes[leafOf[i]].v)
			}
		}
	}
}

func rowWeight(d *model.Dataset, i int) float64 {
	if d.W == nil {
		return 1
	}
	return d.W[i]
}

// maxLogitDiff is the largest absolute difference between the log
// probabilities two models give the rows: a direct measure of what a
// transformation changed.
func maxLogitDiff(a, b model.Model, rows []model.Row) float64 {
	pa, pb := make([]float64, a.Classes()), make([]float64, b.Classes())
	worst := 0.0
	for _, r := range rows {
		a.Predict(r, pa)
		b.Predict(r, pb)
		for k := range pa {
			worst = max(worst, math.Abs(math.Log(max(pa[k], 1e-300))-math.Log(max(pb[k], 1e-300))))
		}
	}
	return worst
}

// sortedAbs returns |xs| ascending.
func sortedAbs(xs []float32) []float32 {
	out := make([]float32, len(xs))
	for i, v := range xs {
		out[i] = float32(math.Abs(float64(v)))
	}
	slices.Sort(out)
	return out
}
