package optimize

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"medserve/internal/model"
)

// quantizeColumns quantizes a row-major matrix of the given width with one
// symmetric scale per column: scale_u = max_i |w[i,u]| / 127 and code =
// round(w/scale), so |w − code·scale| ≤ scale/2. Columns are the output
// units of a feature-major layer (w1[f*H+u]), i.e. the rows of the usual
// output-major weight matrix: "one scale per output row".
func quantizeColumns(w []float32, width int) ([]int8, []float32) {
	scale := make([]float32, width)
	for i := 0; i < len(w); i += width {
		for u, v := range w[i : i+width] {
			scale[u] = max(scale[u], float32(math.Abs(float64(v))))
		}
	}
	for u := range scale {
		scale[u] /= 127
	}
	q := make([]int8, len(w))
	for i := range w {
		q[i] = quantize(w[i], scale[i%width])
	}
	return q, scale
}

// quantize maps v to round(v/scale) clamped to [-127, 127]; a zero scale
// (an all-zero row) maps everything to 0.
func quantize(v, scale float32) int8 {
	if scale == 0 {
		return 0
	}
	c := math.Round(float64(v) / float64(scale))
	return int8(max(-127, min(127, c)))
}

// dequantizeColumns is the inverse of quantizeColumns.
func dequantizeColumns(q []int8, scale []float32) []float32 {
	w := make([]float32, len(q))
	for i, c := range q {
		w[i] = float32(c) * scale[i%len(scale)]
	}
	return w
}

// q8Split is one split of a quantized tree: go right when the row's code
// for the slot exceeds code. Padding splits use code 255, never exceeded.
type q8Split struct {
	slot uint16
	code uint8
}

// q8Forest is a GBT whose split thresholds are 8-bit codes into one sorted
// table per feature and whose leaves are int8 with one scale per class, so
// a row is scored with integer compares and int32 accumulation. The codes
// are exact: a trained GBT has at most Bins−1 distinct thresholds per
// feature, and x ≤ thr[b] ⇔ code(x) ≤ b where code(x) counts the
// thresholds below x. Only the leaves lose precision.
type q8Forest struct {
	features, classes int
	params            int
	base              []float32
	used              []int32
	idx               featIndex
	thrOff            []int32 // per slot, into thr; len(used)+1
	thr               []float32
	zero              []uint8 // per slot: the code of an absent feature (value 0)
	depth             int
	trees             int
	splits            []q8Split // (2^depth − 1) per tree, heap order
	leaves            []int8    // 2^depth per tree
	scale             []float32 // per class
	pool              *sync.Pool
}

// maxQ8Depth bounds the padded layout, as the stock flat forest does.
const maxQ8Depth = 8

// quantizeForest builds the int8 form of f.
func quantizeForest(f *forest) (*q8Forest, error) {
	if len(f.used) > math.MaxUint16 {
		return nil, fmt.Errorf("int8 gbt: %d used features exceed %d slots", len(f.used), math.MaxUint16)
	}
	D := max(1, f.depth())
	if D > maxQ8Depth {
		return nil, fmt.Errorf("int8 gbt: depth %d exceeds %d", D, maxQ8Depth)
	}
	K := f.classes
	// Per-feature threshold tables.
	tables := make([][]float32, len(f.used))
	for _, t := range f.trees {
		for _, nd := range t.nodes {
			if nd.slot >= 0 {
				tables[nd.slot] = append(tables[nd.slot], nd.v)
			}
		}
	}
	m := &q8Forest{features: f.features, classes: K, params: f.params(), base: slices.Clone(f.base), used: slices.Clone(f.used),
		depth: D, trees: len(f.trees), thrOff: make([]int32, len(f.used)+1), zero: make([]uint8, len(f.used)), scale: make([]float32, K)}
	for s, th := range tables {
		slices.Sort(th)
		th = slices.Compact(th)
		if len(th) > 255 {
			return nil, fmt.Errorf("int8 gbt: feature %d has %d distinct thresholds (at most 255 fit a code)", f.used[s], len(th))
		}
		tables[s] = th
		m.thr = append(m.thr, th...)
		m.thrOff[s+1] = int32(len(m.thr))
	}
	for s := range m.zero {
		m.zero[s] = m.code(int32(s), 0)
	}
	// One leaf scale per class: the trees of a class accumulate into one
	// int32, so they must share it.
	for i, t := range f.trees {
		for _, nd := range t.nodes {
			if nd.slot < 0 {
				m.scale[i%K] = max(m.scale[i%K], float32(math.Abs(float64(nd.v))))
			}
		}
	}
	for k := range m.scale {
		m.scale[k] /= 127
	}
	ni, nl := 1<<D-1, 1<<D
	m.splits = make([]q8Split, len(f.trees)*ni)
	m.leaves = make([]int8, len(f.trees)*nl)
	var fill func(t int, tr tree, node int32, j, d int)
	fill = func(t int, tr tree, node int32, j, d int) {
		nd := tr.nodes[node]
		if d == D {
			m.leaves[t*nl+j-ni] = quantize(nd.v, m.scale[t%K])
			return
		}
		if nd.slot < 0 {
			m.splits[t*ni+j] = q8Split{slot: 0, code: 255}
			fill(t, tr, node, 2*j+1, d+1)
			fill(t, tr, node, 2*j+2, d+1)
			return
		}
		th := tables[nd.slot]
		b, _ := slices.BinarySearch(th, nd.v)
		m.splits[t*ni+j] = q8Split{slot: uint16(nd.slot), code: uint8(b)}
		fill(t, tr, nd.left, 2*j+1, d+1)
		fill(t, tr, nd.left+1, 2*j+2, d+1)
	}
	for t, tr := range f.trees {
		fill(t, tr, 0, 0, 0)
	}
	m.init()
	return m, nil
}

// init derives the lookup index and scratch pool.
func (m *q8Forest) init() {
	m.idx = newFeatIndex(m.used)
	S := max(len(m.used), 1)
	m.pool = &sync.Pool{New: func() any { s := make([]uint8, S); return &s }}
}

// code counts the thresholds of slot s below v.
func (m *q8Forest) code(s int32, v float32) uint8 {
	th := m.thr[m.thrOff[s]:m.thrOff[s+1]]
	lo, hi := 0, len(th)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if th[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return uint8(lo)
}

// toForest expands the int8 file back into float trees: leaves become
// code·scale, split codes become their thresholds, and the padding added
// for the flat layout (code 255, always left) collapses into the leaf it
// repeats, so the trees have the parent's shape. This is the
// dequantise-on-load path; cfg is the configuration to record.
func (m *q8Forest) toForest(cfg model.GBTConfig) *forest {
	K, D := m.classes, m.depth
	ni, nl := 1<<D-1, 1<<D
	f := &forest{cfg: cfg, features: m.features, classes: K, base: slices.Clone(m.base), used: slices.Clone(m.used), trees: make([]tree, m.trees)}
	for t := range f.trees {
		leaf := func(j int) treeNode {
			return treeNode{slot: -1, v: float32(m.leaves[t*nl+j-ni]) * m.scale[t%K]}
		}
		nodes := []treeNode{{}}
		var build func(at int32, j, d int)
		build = func(at int32, j, d int) {
			if d == D {
				nodes[at] = leaf(j)
				return
			}
			sp := m.splits[t*ni+j]
			if sp.code == 255 {
				for ; d < D; d++ {
					j = 2*j + 1
				}
				nodes[at] = leaf(j)
				return
			}
			// Children sit side by side (right = left+1) after the parent.
			l := int32(len(nodes))
			nodes = append(nodes, treeNode{}, treeNode{})
			nodes[at] = treeNode{slot: int32(sp.slot), left: l, v: m.thr[m.thrOff[sp.slot]+int32(sp.code)]}
			build(l, 2*j+1, d+1)
			build(l+1, 2*j+2, d+1)
		}
		build(0, 0, 0)
		f.trees[t] = tree{nodes: nodes}
	}
	return f
}

// Family reports the family the trees came from.
func (m *q8Forest) Family() string { return model.FamilyGBT }

// Classes returns the number of classes.
func (m *q8Forest) Classes() int { return m.classes }

// Features returns the feature-space dimension.
func (m *q8Forest) Features() int { return m.features }

// Params counts as the float forest does: quantization keeps every parameter.
func (m *q8Forest) Params() int { return m.params }

// Predict codes the row's used features, walks every padded tree with
// integer compares and sums int8 leaves per class in int32.
func (m *q8Forest) Predict(x model.Row, out []float64) []float64 {
	K := m.classes
	out = outBuf(out, K)
	cp := m.pool.Get().(*[]uint8)
	codes := *cp
	copy(codes, m.zero)
	n := min(len(x.Idx), len(x.Val))
	for j := 0; j < n; j++ {
		v := x.Val[j]
		if v == 0 || !finite32(v) {
			continue
		}
		if s := m.idx.slot(x.Idx[j]); s >= 0 {
			codes[s] = m.code(s, v)
		}
	}
	var stack [16]int32
	var acc []int32
	if K <= len(stack) {
		acc = stack[:K]
	} else {
		acc = make([]int32, K)
	}
	m.walk(codes, acc)
	m.pool.Put(cp)
	for k := range out {
		out[k] = float64(m.base[k]) + float64(m.scale[k])*float64(acc[k])
	}
	softmax(out)
	return out
}

// walk adds every tree's leaf code to acc[tree % classes]. Four trees are
// walked side by side: each step of a walk waits for the load before it,
// and four independent chains keep the CPU busy during those waits.
func (m *q8Forest) walk(codes []uint8, acc []int32) {
	D, K := m.depth, len(acc)
	ni, nl := 1<<D-1, 1<<D
	splits, leaves := m.splits, m.leaves
	t, k := 0, 0
	for ; t+4 <= m.trees; t += 4 {
		s0, s1 := splits[t*ni:t*ni+ni], splits[(t+1)*ni:(t+1)*ni+ni]
		s2, s3 := splits[(t+2)*ni:(t+2)*ni+ni], splits[(t+3)*ni:(t+3)*ni+ni]
		j0, j1, j2, j3 := 0, 0, 0, 0
		for range D {
			a, b, c, d := s0[j0], s1[j1], s2[j2], s3[j3]
			// +1 (right) when code(x) > the split's code: the sign bit
			// of their difference, without a branch.
			j0 = 2*j0 + 1 + int(uint32(int32(a.code)-int32(codes[a.slot]))>>31)
			j1 = 2*j1 + 1 + int(uint32(int32(b.code)-int32(codes[b.slot]))>>31)
			j2 = 2*j2 + 1 + int(uint32(int32(c.code)-int32(codes[c.slot]))>>31)
			j3 = 2*j3 + 1 + int(uint32(int32(d.code)-int32(codes[d.slot]))>>31)
		}
		for _, leaf := range [4]int8{leaves[t*nl+j0-ni], leaves[(t+1)*nl+j1-ni], leaves[(t+2)*nl+j2-ni], leaves[(t+3)*nl+j3-ni]} {
			acc[k] += int32(leaf)
			if k++; k == K {
				k = 0
			}
		}
	}
	for ; t < m.trees; t++ {
		sp := splits[t*ni : t*ni+ni]
		j := 0
		for range D {
			s := sp[j]
			j = 2*j + 1 + int(uint32(int32(s.code)-int32(codes[s.slot]))>>31)
		}
		acc[k] += int32(leaves[t*nl+j-ni])
		if k++; k == K {
			k = 0
		}
	}
}

// q8Net is a logreg or MLP with int8 weights (one scale per output unit)
// and dynamic int8 activations (one scale per row), accumulated in int32.
type q8Net struct {
	features, classes, hidden int
	params                    int
	used                      []int32
	idx                       featIndex
	q1                        []int8 // len(used)×width
	s1, b1                    []float32
	q2                        []int8 // hidden×classes
	s2, b2                    []float32
	pool                      *sync.Pool
}

type q8Scratch struct {
	slots []int32
	vals  []float32
	acc   []int32
	h     []float32
}

func quantizeNet(n *net) *q8Net {
	m := &q8Net{features: n.features, classes: n.classes, hidden: n.hidden, params: n.params(), used: slices.Clone(n.used)}
	m.q1, m.s1 = quantizeColumns(n.w1, n.width())
	m.b1 = slices.Clone(n.b1)
	if n.hidden > 0 {
		m.q2, m.s2 = quantizeColumns(n.w2, n.classes)
		m.b2 = slices.Clone(n.b2)
	}
	m.init()
	return m
}

func (m *q8Net) width() int {
	if m.hidden > 0 {
		return m.hidden
	}
	return m.classes
}

func (m *q8Net) init() {
	m.idx = newFeatIndex(m.used)
	W := m.width()
	m.pool = &sync.Pool{New: func() any {
		return &q8Scratch{acc: make([]int32, max(W, m.classes)), h: make([]float32, W)}
	}}
}

// toNet expands the int8 weights back to float: the dequantise-on-load
// path. The configurations are the ones to record.
func (m *q8Net) toNet(lr model.LogRegConfig, mlp model.MLPConfig) *net {
	n := &net{family: m.Family(), features: m.features, classes: m.classes, hidden: m.hidden, lrCfg: lr, mlpCfg: mlp,
		used: slices.Clone(m.used), w1: dequantizeColumns(m.q1, m.s1), b1: slices.Clone(m.b1), b2: slices.Clone(m.b2)}
	if m.hidden > 0 {
		n.w2 = dequantizeColumns(m.q2, m.s2)
	}
	return n
}

// Family reports logreg or mlp.
func (m *q8Net) Family() string {
	if m.hidden > 0 {
		return model.FamilyMLP
	}
	return model.FamilyLogReg
}

// Classes returns the number of classes.
func (m *q8Net) Classes() int { return m.classes }

// Features returns the feature-space dimension.
func (m *q8Net) Features() int { return m.features }

// Params counts the stored weights and biases.
func (m *q8Net) Params() int { return m.params }

// Predict quantizes the row's readable values with one scale, accumulates
// int8×int8 products in int32 per output unit and rescales once per unit;
// the hidden layer is requantized the same way for the output layer.
func (m *q8Net) Predict(x model.Row, out []float64) []float64 {
	K, W := m.classes, m.width()
	out = outBuf(out, K)
	sc := m.pool.Get().(*q8Scratch)
	sc.slots, sc.vals = sc.slots[:0], sc.vals[:0]
	maxAbs := float32(0)
	n := min(len(x.Idx), len(x.Val))
	for j := 0; j < n; j++ {
		v := x.Val[j]
		if v == 0 || !finite32(v) {
			continue
		}
		if s := m.idx.slot(x.Idx[j]); s >= 0 {
			sc.slots = append(sc.slots, s)
			sc.vals = append(sc.vals, v)
			maxAbs = max(maxAbs, float32(math.Abs(float64(v))))
		}
	}
	acc := sc.acc[:W]
	clear(acc)
	sx := maxAbs / 127
	for i, s := range sc.slots {
		qx := int32(quantize(sc.vals[i], sx))
		if qx == 0 {
			continue
		}
		row := m.q1[int(s)*W : int(s)*W+W]
		row = row[:len(acc)]
		for u := range acc {
			acc[u] += qx * int32(row[u])
		}
	}
	h := sc.h[:W]
	for u := range h {
		h[u] = float32(acc[u])*sx*m.s1[u] + m.b1[u]
	}
	if m.hidden == 0 {
		for k := range out {
			out[k] = float64(h[k])
		}
	} else {
		hmax := float32(0)
		for _, v := range h {
			hmax = max(hmax, v) // ReLU: only positive activations count
		}
		sh := hmax / 127
		acc2 := sc.acc[:K]
		clear(acc2)
		for u, v := range h {
			if !(v > 0) {
				continue
			}
			qh := int32(quantize(v, sh))
			if qh == 0 {
				continue
			}
			row := m.q2[u*K : u*K+K]
			row = row[:len(acc2)]
			for k := range acc2 {
				acc2[k] += qh * int32(row[k])
			}
		}
		for k := range out {
			out[k] = float64(float32(acc2[k])*sh*m.s2[k] + m.b2[k])
		}
	}
	m.pool.Put(sc)
	softmax(out)
	return out
}
