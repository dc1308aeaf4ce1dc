package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
)

// GBTConfig configures TrainGBT. Zero values take the defaults below.
type GBTConfig struct {
	Trees           int     // boosting rounds; each round grows Classes trees; default 100
	MaxDepth        int     // maximum splits on a root-to-leaf path; default 4, at most MaxGBTDepth
	MinLeaf         int     // minimum training rows per leaf, and minimum non-zero rows for a feature to be a split candidate; default 10
	LearningRate    float64 // shrinkage applied to leaf values; default 0.1
	Bins            int     // maximum quantile bins per feature, in [2, 255]; default 32
	L2              float64 // λ in gain G²/(H+λ) and leaf −G/(H+λ); default 1
	Subsample       float64 // fraction of rows sampled (without replacement) per tree, in (0, 1]; default 1
	FeatureFraction float64 // fraction of candidate features eligible per tree, in (0, 1]; default 1
	Seed            int64   // sampling seed; 0 is a valid seed
}

// Defaults and limits for GBTConfig.
const (
	DefaultGBTTrees        = 100
	DefaultGBTMaxDepth     = 4
	DefaultGBTMinLeaf      = 10
	DefaultGBTLearningRate = 0.1
	DefaultGBTBins         = 32
	DefaultGBTL2           = 1.0
	// MaxGBTDepth bounds GBTConfig.MaxDepth.
	MaxGBTDepth = 16
	// MaxGBTTrees bounds GBTConfig.Trees (rounds).
	MaxGBTTrees = 100_000
)

func (c GBTConfig) withDefaults() (GBTConfig, error) {
	if c.Trees == 0 {
		c.Trees = DefaultGBTTrees
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = DefaultGBTMaxDepth
	}
	if c.MinLeaf == 0 {
		c.MinLeaf = DefaultGBTMinLeaf
	}
	if c.LearningRate == 0 {
		c.LearningRate = DefaultGBTLearningRate
	}
	if c.Bins == 0 {
		c.Bins = DefaultGBTBins
	}
	if c.L2 == 0 {
		c.L2 = DefaultGBTL2
	}
	if c.Subsample == 0 {
		c.Subsample = 1
	}
	if c.FeatureFraction == 0 {
		c.FeatureFraction = 1
	}
	switch {
	case c.Trees < 1 || c.Trees > MaxGBTTrees:
		return c, fmt.Errorf("%w: Trees = %d outside [1, %d]", ErrInvalidConfig, c.Trees, MaxGBTTrees)
	case c.MaxDepth < 1 || c.MaxDepth > MaxGBTDepth:
		return c, fmt.Errorf("%w: MaxDepth = %d outside [1, %d]", ErrInvalidConfig, c.MaxDepth, MaxGBTDepth)
	case c.MinLeaf < 1:
		return c, fmt.Errorf("%w: MinLeaf = %d must be ≥ 1", ErrInvalidConfig, c.MinLeaf)
	case c.Bins < 2 || c.Bins > 255:
		return c, fmt.Errorf("%w: Bins = %d outside [2, 255]", ErrInvalidConfig, c.Bins)
	case !(c.Subsample > 0 && c.Subsample <= 1):
		return c, fmt.Errorf("%w: Subsample = %v outside (0, 1]", ErrInvalidConfig, c.Subsample)
	case !(c.FeatureFraction > 0 && c.FeatureFraction <= 1):
		return c, fmt.Errorf("%w: FeatureFraction = %v outside (0, 1]", ErrInvalidConfig, c.FeatureFraction)
	}
	if err := checkPositive("LearningRate", c.LearningRate); err != nil {
		return c, err
	}
	if err := checkPositive("L2", c.L2); err != nil {
		return c, err
	}
	return c, nil
}

// gbtNode is one node of a tree in the serialised (pointer) layout. A leaf has slot < 0 and value v;
// a split sends x[used[slot]] <= v to left and everything else to left+1.
type gbtNode struct {
	slot int32
	left int32
	v    float32
}

// gbtModel is a multiclass boosted ensemble: tree t adds to class t%K.
type gbtModel struct {
	cfg      GBTConfig
	features int
	classes  int
	base     []float32 // initial log-prior score per class
	used     []int32   // features referenced by splits, ascending; nodes address them by position ("slot")
	nodes    []gbtNode
	roots    []int32 // first node of each tree; a tree's nodes run up to the next root
	slotOf   []int32 // derived: feature → slot or -1, length max(used)+1
	scratch  *sync.Pool
	flat     flatForest // derived inference layout; depth 0 = walk nodes instead
}

// flatForest stores every tree as a complete binary tree of one depth,
// leaves that end early padded with always-left splits. Inference then runs
// exactly depth steps per tree and picks the child with integer arithmetic
// on order-preserving keys instead of a float compare-and-branch, so the
// CPU neither mispredicts the data-dependent walk nor stalls between trees.
type flatForest struct {
	depth  int
	splits []flatSplit // (2^depth − 1) per tree, heap order
	leaves []float32   // 2^depth per tree
}

type flatSplit struct {
	slot int32
	key  int32 // orderKey(threshold)
}

// orderKey maps a non-NaN float32 to an int32 with the same order (x ≤ y ⇔
// orderKey(x) ≤ orderKey(y)); −0 maps like +0 so that it compares as IEEE
// does. Zero maps to 0, so a zeroed scratch reads as absent features.
func orderKey(x float32) int32 {
	if x == 0 {
		return 0
	}
	b := int32(math.Float32bits(x))
	if b < 0 {
		return b ^ 0x7fffffff
	}
	return b
}

// maxFlatDepth bounds the padded layout's size (2^depth per tree); deeper
// ensembles fall back to walking the nodes.
const maxFlatDepth = 8

// TrainGBT fits histogram gradient-boosted trees on the softmax loss: each
// round computes class probabilities once, then grows one tree per class on
// gradients g = w(p−y) and hessians h = w·p(1−p), with gain G²/(H+λ) and
// leaf −G/(H+λ)·lr. Absent features are value 0 and binned like any value.
// Deterministic for a given data set and seed.
func TrainGBT(d Dataset, c GBTConfig) (Model, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("gbt: %w", err)
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("gbt: %w", err)
	}
	t := newGBTTrainer(&d, cfg)
	m, err := t.train()
	if err != nil {
		return nil, fmt.Errorf("gbt: %w", err)
	}
	return m, nil
}

// gbtTrainer holds the binned data and scratch for one training run.
// Candidate features get dense "slots" in ascending feature order; their
// bins are numbered globally so one flat histogram covers all of them.
type gbtTrainer struct {
	d    *Dataset
	cfg  GBTConfig
	n, K int

	slotFeat []int32     // slot → feature
	thr      [][]float32 // slot → ascending thresholds; bin(x) = #thresholds < x
	zeroBin  []int32     // slot → local bin holding the value 0
	binOff   []int32     // slot → first global bin; len slots+1
	binSlot  []int32     // global bin → slot

	// Row-major entries whose bin differs from the zero bin; the zero
	// bin's statistics are recovered as node total minus the other bins,
	// which is what makes histogram building O(non-zeros).
	rowOff []int32
	rowBin []int32 // global bin
	// The same entries column-major, for partitioning a node on a split.
	colOff []int32
	colRow []int32
	colBin []int32 // local bin

	grad, hess []float64
	leafVal    []float64 // per row: value of the leaf it reached in the current tree
	rowMark    []uint32
	rowTmpBin  []int32
	partStamp  uint32
	slotMark   []uint32
	histStamp  uint32
	allowed    []bool // nil = every slot eligible
	free       []*gbtHist
	tree       []trainNode
	tmp        []int32
}

// gbtHist accumulates gradient, hessian and row count per global bin; only
// slots in touched have non-zero entries (so clearing costs what filling did).
type gbtHist struct {
	g, h    []float64
	c       []int32
	touched []int32
}

type trainNode struct {
	slot  int32 // -1 for a leaf
	bin   int32 // split: local bins ≤ bin go left
	left  int32 // index of the left child within the tree; right is left+1
	value float64
}

func newGBTTrainer(d *Dataset, cfg GBTConfig) *gbtTrainer {
	n, F := len(d.X), d.Features
	t := &gbtTrainer{d: d, cfg: cfg, n: n, K: d.Classes}

	nnz := make([]int32, F)
	for _, r := range d.X {
		for j, f := range r.Idx {
			if r.Val[j] != 0 {
				nnz[f]++
			}
		}
	}
	// Gather each candidate's non-zero values column-wise to bin it.
	candOff := make([]int32, F+1)
	for f := 0; f < F; f++ {
		c := int32(0)
		if int(nnz[f]) >= cfg.MinLeaf {
			c = nnz[f]
		}
		candOff[f+1] = candOff[f] + c
	}
	vals := make([]float32, candOff[F])
	fill := slices.Clone(candOff[:F])
	for _, r := range d.X {
		for j, f := range r.Idx {
			if v := r.Val[j]; v != 0 && int(nnz[f]) >= cfg.MinLeaf {
				vals[fill[f]] = v
				fill[f]++
			}
		}
	}
	slotOf := make([]int32, F)
	for f := 0; f < F; f++ {
		slotOf[f] = -1
		col := vals[candOff[f]:candOff[f+1]]
		if len(col) == 0 {
			continue
		}
		slices.Sort(col)
		th := quantileThresholds(col, n-len(col), cfg.Bins)
		if len(th) == 0 {
			continue // constant feature: nothing to split on
		}
		slotOf[f] = int32(len(t.slotFeat))
		t.slotFeat = append(t.slotFeat, int32(f))
		t.thr = append(t.thr, th)
		zb, _ := slices.BinarySearch(th, 0)
		t.zeroBin = append(t.zeroBin, int32(zb))
	}
	S := len(t.slotFeat)
	t.binOff = make([]int32, S+1)
	for s := 0; s < S; s++ {
		t.binOff[s+1] = t.binOff[s] + int32(len(t.thr[s])+1)
	}
	t.binSlot = make([]int32, t.binOff[S])
	for s := 0; s < S; s++ {
		for b := t.binOff[s]; b < t.binOff[s+1]; b++ {
			t.binSlot[b] = int32(s)
		}
	}

	// Bin every stored entry once; entries in the zero bin are dropped.
	t.rowOff = make([]int32, n+1)
	colCount := make([]int32, S+1)
	type entry struct{ slot, bin int32 }
	var ents []entry
	for i, r := range d.X {
		for j, f := range r.Idx {
			s := slotOf[f]
			v := r.Val[j]
			if s < 0 || v == 0 {
				continue
			}
			b, _ := slices.BinarySearch(t.thr[s], v)
			if int32(b) == t.zeroBin[s] {
				continue
			}
			ents = append(ents, entry{s, int32(b)})
			colCount[s+1]++
		}
		t.rowOff[i+1] = int32(len(ents))
	}
	t.rowBin = make([]int32, len(ents))
	for e, x := range ents {
		t.rowBin[e] = t.binOff[x.slot] + x.bin
	}
	t.colOff = make([]int32, S+1)
	for s := 0; s < S; s++ {
		t.colOff[s+1] = t.colOff[s] + colCount[s+1]
	}
	t.colRow = make([]int32, len(ents))
	t.colBin = make([]int32, len(ents))
	pos := slices.Clone(t.colOff[:S])
	for i := 0; i < n; i++ {
		for e := t.rowOff[i]; e < t.rowOff[i+1]; e++ {
			x := ents[e]
			t.colRow[pos[x.slot]] = int32(i)
			t.colBin[pos[x.slot]] = x.bin
			pos[x.slot]++
		}
	}

	t.grad = make([]float64, n)
	t.hess = make([]float64, n)
	t.leafVal = make([]float64, n)
	t.rowMark = make([]uint32, n)
	t.rowTmpBin = make([]int32, n)
	t.slotMark = make([]uint32, S)
	t.tmp = make([]int32, 0, n)
	return t
}

// quantileThresholds returns at most maxBins-1 ascending cut points for a
// feature whose non-zero values are sorted and which is zero in zeros
// further rows. Bins hold roughly equal row counts; each distinct
// value stays whole, and after a heavy value (typically 0) the remaining
// rows are re-divided among the remaining bins.
func quantileThresholds(sorted []float32, zeros, maxBins int) []float32 {
	type vc struct {
		v float32
		c int
	}
	dist := make([]vc, 0, min(len(sorted)+1, 4*maxBins))
	addZero := func() {
		if zeros > 0 {
			dist = append(dist, vc{0, zeros})
			zeros = 0
		}
	}
	for _, v := range sorted {
		if v > 0 {
			addZero()
		}
		if k := len(dist); k > 0 && dist[k-1].v == v {
			dist[k-1].c++
		} else {
			dist = append(dist, vc{v, 1})
		}
	}
	addZero()
	if len(dist) < 2 {
		return nil
	}
	var th []float32
	if len(dist) <= maxBins {
		for j := 0; j+1 < len(dist); j++ {
			th = append(th, between(dist[j].v, dist[j+1].v))
		}
		return th
	}
	total := 0
	for _, x := range dist {
		total += x.c
	}
	remaining := maxBins
	consumed, acc := 0, 0
	target := float64(total) / float64(remaining)
	cut := func(j int) { // close the current bin after dist[j]
		th = append(th, between(dist[j].v, dist[j+1].v))
		consumed += acc
		acc = 0
		remaining--
		target = float64(total-consumed) / float64(remaining)
	}
	for j := 0; j+1 < len(dist) && remaining > 1; j++ {
		// A value heavier than a bin (typically the implicit 0) gets a bin
		// of its own rather than swallowing its lighter neighbours.
		if j > 0 && acc > 0 && float64(dist[j].c) >= target {
			cut(j - 1)
			if remaining == 1 {
				break
			}
		}
		acc += dist[j].c
		if float64(acc) >= target {
			cut(j)
		}
	}
	return th
}

// between returns a float32 threshold t with a ≤ t < b, the midpoint when
// it is representable: values seen in training then fall on the same side
// at inference as in the histogram, and unseen values in the gap split evenly.
func between(a, b float32) float32 {
	t := float32((float64(a) + float64(b)) / 2)
	if t < a || t >= b {
		return a
	}
	return t
}

func (t *gbtTrainer) train() (*gbtModel, error) {
	n, K, cfg := t.n, t.K, t.cfg
	d := t.d
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x676274)) // stream tag "gbt"

	// Start from the weighted class log-priors so early trees model
	// structure rather than the base rate.
	prior := make([]float64, K)
	totalW := 0.0
	for i := 0; i < n; i++ {
		prior[d.Y[i]] += d.weight(i)
		totalW += d.weight(i)
	}
	base := make([]float32, K)
	for k := range prior {
		base[k] = float32(math.Log(max(prior[k]/totalW, 1e-6)))
	}
	scores := make([]float64, n*K)
	for i := 0; i < n; i++ {
		for k := 0; k < K; k++ {
			scores[i*K+k] = float64(base[k])
		}
	}
	probs := make([]float64, n*K)

	S := len(t.slotFeat)
	sampled := make([]bool, n)
	perm := make([]int32, n)
	slotPerm := make([]int32, S)
	rows := make([]int32, 0, n)
	if cfg.FeatureFraction < 1 {
		t.allowed = make([]bool, S)
	}
	nSample := max(1, int(math.Round(float64(n)*cfg.Subsample)))
	nAllowed := min(S, max(1, int(math.Round(float64(S)*cfg.FeatureFraction))))

	var nodes []gbtNode
	var roots []int32
	var nodeSlot []int32 // slot (not yet feature) of each split node, -1 for leaves

	for round := 0; round < cfg.Trees; round++ {
		copy(probs, scores)
		for i := 0; i < n; i++ {
			softmax(probs[i*K : i*K+K])
		}
		for k := 0; k < K; k++ {
			for i := 0; i < n; i++ {
				p := probs[i*K+k]
				w := d.weight(i)
				y := 0.0
				if d.Y[i] == k {
					y = 1
				}
				t.grad[i] = w * (p - y)
				t.hess[i] = w * p * (1 - p)
			}
			// Row subsample: partial Fisher–Yates, then ascending order so
			// histogram sums run in a fixed, cache-friendly order.
			rows = rows[:0]
			if nSample < n {
				for i := range perm {
					perm[i] = int32(i)
				}
				for i := 0; i < nSample; i++ {
					j := i + rng.IntN(n-i)
					perm[i], perm[j] = perm[j], perm[i]
				}
				rows = append(rows, perm[:nSample]...)
				slices.Sort(rows)
				clear(sampled)
				for _, r := range rows {
					sampled[r] = true
				}
			} else {
				for i := 0; i < n; i++ {
					rows = append(rows, int32(i))
				}
			}
			if t.allowed != nil {
				for s := range slotPerm {
					slotPerm[s] = int32(s)
				}
				clear(t.allowed)
				for i := 0; i < nAllowed; i++ {
					j := i + rng.IntN(S-i)
					slotPerm[i], slotPerm[j] = slotPerm[j], slotPerm[i]
					t.allowed[slotPerm[i]] = true
				}
			}

			t.growTree(rows)

			for i := 0; i < n; i++ {
				v := t.leafVal[i]
				if nSample < n && !sampled[i] {
					v = t.walkRaw(d.X[i])
				}
				scores[i*K+k] += v
			}
			off := int32(len(nodes))
			roots = append(roots, off)
			for _, tn := range t.tree {
				if tn.slot < 0 {
					nodes = append(nodes, gbtNode{slot: -1, v: float32(tn.value)})
					nodeSlot = append(nodeSlot, -1)
				} else {
					nodes = append(nodes, gbtNode{left: off + tn.left, v: t.thr[tn.slot][tn.bin]})
					nodeSlot = append(nodeSlot, tn.slot)
				}
			}
		}
	}

	// Keep only the features some split reads, so inference scratch and the
	// serialised model scale with the ensemble, not with the feature space.
	usedSlot := make([]int32, S)
	for s := range usedSlot {
		usedSlot[s] = -1
	}
	for _, s := range nodeSlot {
		if s >= 0 {
			usedSlot[s] = 0
		}
	}
	var used []int32
	for s, u := range usedSlot {
		if u == 0 {
			usedSlot[s] = int32(len(used))
			used = append(used, t.slotFeat[s])
		}
	}
	for i, s := range nodeSlot {
		if s >= 0 {
			nodes[i].slot = usedSlot[s]
		}
	}
	for _, nd := range nodes {
		if !finite32(nd.v) {
			return nil, fmt.Errorf("%w: non-finite leaf value", ErrDiverged)
		}
	}
	return newGBTModel(cfg, d.Features, K, base, used, nodes, roots), nil
}

// growTree grows one depth-limited tree on rows into t.tree and records in
// t.leafVal the (shrunk) leaf value reached by each of those rows.
func (t *gbtTrainer) growTree(rows []int32) {
	t.tree = append(t.tree[:0], trainNode{})
	G, H := t.sums(rows)
	var hs *gbtHist
	if t.cfg.MaxDepth > 0 && len(rows) >= 2*t.cfg.MinLeaf {
		hs = t.build(rows)
	}
	t.split(0, rows, 0, hs, G, H)
}

func (t *gbtTrainer) sums(rows []int32) (g, h float64) {
	for _, r := range rows {
		g += t.grad[r]
		h += t.hess[r]
	}
	return g, h
}

// split turns node ni (holding rows, with histogram hs or nil when it
// cannot split) into a leaf or a split with two recursively grown children.
func (t *gbtTrainer) split(ni int32, rows []int32, depth int, hs *gbtHist, G, H float64) {
	cfg := t.cfg
	slot, bin := int32(-1), int32(0)
	if hs != nil {
		slot, bin = t.bestSplit(hs, G, H, int32(len(rows)))
	}
	if slot < 0 {
		v := -G / (H + cfg.L2) * cfg.LearningRate
		t.tree[ni] = trainNode{slot: -1, value: v}
		for _, r := range rows {
			t.leafVal[r] = v
		}
		if hs != nil {
			t.release(hs)
		}
		return
	}
	nl := t.partition(rows, slot, bin)
	left, right := rows[:nl], rows[nl:]
	li := int32(len(t.tree))
	t.tree = append(t.tree, trainNode{}, trainNode{})
	t.tree[ni] = trainNode{slot: slot, bin: bin, left: li}

	// Histogram of the smaller child by scanning it, of the larger by
	// subtracting from the parent: halves the dominant cost.
	canSplit := func(r []int32) bool { return depth+1 < cfg.MaxDepth && len(r) >= 2*cfg.MinLeaf }
	small, large := left, right
	if len(left) > len(right) {
		small, large = right, left
	}
	needSmall, needLarge := canSplit(small), canSplit(large)
	var hSmall, hLarge *gbtHist
	if needSmall || needLarge {
		hSmall = t.build(small)
	}
	if needLarge {
		t.subtract(hs, hSmall)
		hLarge = hs
	} else {
		t.release(hs)
	}
	if !needSmall && hSmall != nil {
		t.release(hSmall)
		hSmall = nil
	}
	hl, hr := hSmall, hLarge
	if len(left) > len(right) {
		hl, hr = hLarge, hSmall
	}
	gl, hhl := t.sums(left)
	gr, hhr := t.sums(right)
	t.split(li, left, depth+1, hl, gl, hhl)
	t.split(li+1, right, depth+1, hr, gr, hhr)
}

// bestSplit scans the touched, eligible features' bins for the split of
// highest gain that leaves MinLeaf rows on each side. Ties go to the lower
// feature, then the lower bin, so the choice never depends on scan order.
func (t *gbtTrainer) bestSplit(hs *gbtHist, G, H float64, C int32) (int32, int32) {
	lambda := t.cfg.L2
	minLeaf := int32(t.cfg.MinLeaf)
	parent := G * G / (H + lambda)
	// A child whose hessian is a negligible share of the parent's carries
	// no information (zero-weight or saturated rows); floating-point
	// residue from histogram subtraction must not make it look useful.
	minHess := 1e-9 * H
	bestSlot, bestBin, bestGain := int32(-1), int32(0), 1e-12
	for _, s := range hs.touched {
		if t.allowed != nil && !t.allowed[s] {
			continue
		}
		lo, hi := t.binOff[s], t.binOff[s+1]
		z := lo + t.zeroBin[s]
		var sg, sh float64
		var sc int32
		for b := lo; b < hi; b++ {
			sg += hs.g[b]
			sh += hs.h[b]
			sc += hs.c[b]
		}
		var lg, lh float64
		var lc int32
		for b := lo; b < hi-1; b++ {
			if b == z {
				lg += G - sg
				lh += H - sh
				lc += C - sc
			} else {
				lg += hs.g[b]
				lh += hs.h[b]
				lc += hs.c[b]
			}
			if lc < minLeaf {
				continue
			}
			if C-lc < minLeaf {
				break
			}
			rg, rh := G-lg, H-lh
			if lh <= minHess || rh <= minHess {
				continue
			}
			gain := lg*lg/(lh+lambda) + rg*rg/(rh+lambda) - parent
			if gain > bestGain || (gain == bestGain && bestSlot >= 0 && s < bestSlot) {
				bestSlot, bestBin, bestGain = s, b-lo, gain
			}
		}
	}
	return bestSlot, bestBin
}

// partition stably reorders rows so those with bin(slot) ≤ bin come first
// and returns their count.
func (t *gbtTrainer) partition(rows []int32, slot, bin int32) int {
	t.partStamp++
	st := t.partStamp
	for e := t.colOff[slot]; e < t.colOff[slot+1]; e++ {
		r := t.colRow[e]
		t.rowMark[r] = st
		t.rowTmpBin[r] = t.colBin[e]
	}
	z := t.zeroBin[slot]
	nl := 0
	tmp := t.tmp[:0]
	for _, r := range rows {
		b := z
		if t.rowMark[r] == st {
			b = t.rowTmpBin[r]
		}
		if b <= bin {
			rows[nl] = r
			nl++
		} else {
			tmp = append(tmp, r)
		}
	}
	copy(rows[nl:], tmp)
	t.tmp = tmp
	return nl
}

func (t *gbtTrainer) newHist() *gbtHist {
	if k := len(t.free); k > 0 {
		h := t.free[k-1]
		t.free = t.free[:k-1]
		return h
	}
	nb := len(t.binSlot)
	return &gbtHist{g: make([]float64, nb), h: make([]float64, nb), c: make([]int32, nb)}
}

// build accumulates the histogram of rows over their non-zero-bin entries.
func (t *gbtTrainer) build(rows []int32) *gbtHist {
	hs := t.newHist()
	t.histStamp++
	st := t.histStamp
	hg, hh, hc := hs.g, hs.h, hs.c
	for _, r := range rows {
		g, h := t.grad[r], t.hess[r]
		for _, b := range t.rowBin[t.rowOff[r]:t.rowOff[r+1]] {
			hg[b] += g
			hh[b] += h
			hc[b]++
			if s := t.binSlot[b]; t.slotMark[s] != st {
				t.slotMark[s] = st
				hs.touched = append(hs.touched, s)
			}
		}
	}
	return hs
}

// subtract turns parent into the histogram of parent minus child. The
// child's touched slots are a subset of the parent's, so parent.touched
// stays a valid superset.
func (t *gbtTrainer) subtract(parent, child *gbtHist) {
	for _, s := range child.touched {
		for b := t.binOff[s]; b < t.binOff[s+1]; b++ {
			parent.g[b] -= child.g[b]
			parent.h[b] -= child.h[b]
			parent.c[b] -= child.c[b]
		}
	}
}

// release clears the touched bins and returns hs to the free list.
func (t *gbtTrainer) release(hs *gbtHist) {
	for _, s := range hs.touched {
		lo, hi := t.binOff[s], t.binOff[s+1]
		clear(hs.g[lo:hi])
		clear(hs.h[lo:hi])
		clear(hs.c[lo:hi])
	}
	hs.touched = hs.touched[:0]
	t.free = append(t.free, hs)
}

// walkRaw evaluates the current tree on a raw row, for rows left out of the
// subsample; bin(x) ≤ b ⇔ x ≤ thr[b], so it agrees with the binned path.
func (t *gbtTrainer) walkRaw(r Row) float64 {
	i := int32(0)
	for {
		nd := t.tree[i]
		if nd.slot < 0 {
			return nd.value
		}
		x := float32(0)
		if j, ok := slices.BinarySearch(r.Idx, t.slotFeat[nd.slot]); ok {
			x = r.Val[j]
		}
		if x <= t.thr[nd.slot][nd.bin] {
			i = nd.left
		} else {
			i = nd.left + 1
		}
	}
}

func newGBTModel(cfg GBTConfig, F, K int, base []float32, used []int32, nodes []gbtNode, roots []int32) *gbtModel {
	m := &gbtModel{cfg: cfg, features: F, classes: K, base: base, used: used, nodes: nodes, roots: roots}
	size := 0
	if len(used) > 0 {
		size = int(used[len(used)-1]) + 1
	}
	m.slotOf = make([]int32, size)
	for i := range m.slotOf {
		m.slotOf[i] = -1
	}
	for s, f := range used {
		m.slotOf[f] = int32(s)
	}
	nu := max(len(used), 1) // padded splits read slot 0 even when nothing is used
	m.scratch = &sync.Pool{New: func() any { s := make([]int32, nu); return &s }}
	m.flat = flatten(nodes, roots)
	return m
}

// flatten builds the flatForest of validated trees, or returns depth 0 when
// a tree is deeper than maxFlatDepth.
func flatten(nodes []gbtNode, roots []int32) flatForest {
	depth := 0
	var stack [][2]int32 // (node, depth)
	for _, r := range roots {
		stack = append(stack[:0], [2]int32{r, 0})
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			nd := nodes[top[0]]
			if nd.slot < 0 {
				depth = max(depth, int(top[1]))
				continue
			}
			if top[1] >= maxFlatDepth {
				return flatForest{}
			}
			stack = append(stack, [2]int32{nd.left, top[1] + 1}, [2]int32{nd.left + 1, top[1] + 1})
		}
	}
	if depth == 0 {
		return flatForest{} // stumps only (or no trees): the walk is as fast
	}
	ni, nl := 1<<depth-1, 1<<depth
	f := flatForest{depth: depth, splits: make([]flatSplit, len(roots)*ni), leaves: make([]float32, len(roots)*nl)}
	var fill func(t int, node int32, j, d int)
	fill = func(t int, node int32, j, d int) {
		nd := nodes[node]
		if d == depth {
			f.leaves[t*nl+j-ni] = nd.v
			return
		}
		if nd.slot < 0 {
			// x > +Inf is false for every finite x: always left, and both
			// subtrees carry this leaf's value.
			f.splits[t*ni+j] = flatSplit{slot: 0, key: orderKey(float32(math.Inf(1)))}
			fill(t, node, 2*j+1, d+1)
			fill(t, node, 2*j+2, d+1)
			return
		}
		f.splits[t*ni+j] = flatSplit{slot: nd.slot, key: orderKey(nd.v)}
		fill(t, nd.left, 2*j+1, d+1)
		fill(t, nd.left+1, 2*j+2, d+1)
	}
	for t, r := range roots {
		fill(t, r, 0, 0)
	}
	return f
}

// Family returns "gbt".
func (m *gbtModel) Family() string { return FamilyGBT }

// Classes returns the number of classes.
func (m *gbtModel) Classes() int { return m.classes }

// Features returns the feature-space dimension.
func (m *gbtModel) Features() int { return m.features }

// Params counts two per split (feature, threshold), one per leaf and one base score per class.
func (m *gbtModel) Params() int {
	p := len(m.base)
	for _, nd := range m.nodes {
		if nd.slot < 0 {
			p++
		} else {
			p += 2
		}
	}
	return p
}

// Predict scatters the row's used features into a pooled dense scratch (so
// each split reads x[f] in O(1) instead of a binary search), walks every
// tree, and resets only what it wrote.
func (m *gbtModel) Predict(x Row, out []float64) []float64 {
	K := m.classes
	out = outBuf(out, K)
	for k := range out {
		out[k] = float64(m.base[k])
	}
	sp := m.scratch.Get().(*[]int32)
	xs := *sp
	slotOf := m.slotOf
	n := min(len(x.Idx), len(x.Val))
	for j := 0; j < n; j++ {
		f := x.Idx[j]
		if uint32(f) >= uint32(len(slotOf)) {
			continue
		}
		if s := slotOf[f]; s >= 0 && finite32(x.Val[j]) {
			xs[s] = orderKey(x.Val[j])
		}
	}
	if D := m.flat.depth; D > 0 {
		m.flat.eval(xs, out, len(m.roots))
	} else {
		nodes, roots := m.nodes, m.roots
		k := 0
		for _, i := range roots {
			for {
				nd := nodes[i]
				if nd.slot < 0 {
					out[k] += float64(nd.v)
					break
				}
				i = nd.left
				if xs[nd.slot] > orderKey(nd.v) {
					i++
				}
			}
			if k++; k == K {
				k = 0
			}
		}
	}
	for j := 0; j < n; j++ {
		if f := x.Idx[j]; uint32(f) < uint32(len(slotOf)) {
			if s := slotOf[f]; s >= 0 {
				xs[s] = 0
			}
		}
	}
	m.scratch.Put(sp)
	softmax(out)
	return out
}

// eval adds every tree's leaf to out[tree % len(out)]; xs holds orderKey of
// each used feature.
func (f *flatForest) eval(xs []int32, out []float64, trees int) {
	D := f.depth
	ni, nl := 1<<D-1, 1<<D
	K := len(out)
	k := 0
	for t := 0; t < trees; t++ {
		sp := f.splits[t*ni : t*ni+ni]
		j := 0
		for range D {
			s := sp[j]
			// +1 when x > threshold: the sign bit of key − x, no branch.
			j = 2*j + 1 + int(uint64(int64(s.key)-int64(xs[s.slot]))>>63)
		}
		out[k] += float64(f.leaves[t*nl+j-ni])
		if k++; k == K {
			k = 0
		}
	}
}
