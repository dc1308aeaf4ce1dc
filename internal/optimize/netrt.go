package optimize

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"medserve/internal/model"
)

// floatNet is a float32 logreg or MLP over the used feature rows only,
// found through a featIndex: the compact runtime of a distilled student.
// For an MLP its arithmetic is the stock runtime's (float32 hidden layer,
// float64 output), so its predictions equal the stock model's; a logreg
// sums its logits in float32 instead of float64.
type floatNet struct {
	features, classes, hidden int
	params                    int
	used                      []int32
	idx                       featIndex
	w1, b1, w2, b2            []float32
	pool                      *sync.Pool
}

func newFloatNet(n *net) *floatNet {
	m := &floatNet{features: n.features, classes: n.classes, hidden: n.hidden, params: n.params(), used: slices.Clone(n.used),
		w1: slices.Clone(n.w1), b1: slices.Clone(n.b1), w2: slices.Clone(n.w2), b2: slices.Clone(n.b2)}
	m.init()
	return m
}

func (m *floatNet) width() int {
	if m.hidden > 0 {
		return m.hidden
	}
	return m.classes
}

func (m *floatNet) init() {
	m.idx = newFeatIndex(m.used)
	W := m.width()
	m.pool = &sync.Pool{New: func() any { s := make([]float32, W); return &s }}
}

// Family reports logreg or mlp.
func (m *floatNet) Family() string { return netFamily(m.hidden) }

// Classes returns the number of classes.
func (m *floatNet) Classes() int { return m.classes }

// Features returns the feature-space dimension.
func (m *floatNet) Features() int { return m.features }

// Params counts the stored weights and biases.
func (m *floatNet) Params() int { return m.params }

// Predict costs nnz×width multiply-adds plus the output layer.
func (m *floatNet) Predict(x model.Row, out []float64) []float64 {
	W := m.width()
	out = outBuf(out, m.classes)
	hp := m.pool.Get().(*[]float32)
	h := (*hp)[:W]
	copy(h, m.b1)
	n := min(len(x.Idx), len(x.Val))
	for j := 0; j < n; j++ {
		v := x.Val[j]
		if !finite32(v) {
			continue
		}
		if s := m.idx.slot(x.Idx[j]); s >= 0 {
			axpy32(h, m.w1[int(s)*W:int(s)*W+W], v)
		}
	}
	outputLayer(h, m.hidden, m.w2, m.b2, out)
	m.pool.Put(hp)
	softmax(out)
	return out
}

// sparseNet is a magnitude-pruned logreg or MLP: the first layer is stored
// as compressed sparse rows (per used feature, the surviving output units
// and weights), the small output layer densely with its zeros.
type sparseNet struct {
	features, classes, hidden int
	params                    int
	used                      []int32
	idx                       featIndex
	off                       []int32 // per slot into col/val; len(used)+1
	col                       []uint16
	val                       []float32
	b1, w2, b2                []float32
	pool                      *sync.Pool
}

func newSparseNet(n *net) (*sparseNet, error) {
	W := n.width()
	if W > math.MaxUint16+1 {
		return nil, fmt.Errorf("sparse net: width %d exceeds %d", W, math.MaxUint16+1)
	}
	m := &sparseNet{features: n.features, classes: n.classes, hidden: n.hidden, b1: slices.Clone(n.b1), w2: slices.Clone(n.w2), b2: slices.Clone(n.b2)}
	m.off = []int32{0}
	for i, f := range n.used {
		row := n.w1[i*W : i*W+W]
		nz := 0
		for u, v := range row {
			if v != 0 {
				m.col = append(m.col, uint16(u))
				m.val = append(m.val, v)
				nz++
			}
		}
		if nz == 0 {
			continue
		}
		m.used = append(m.used, f)
		m.off = append(m.off, int32(len(m.val)))
	}
	m.params = len(m.val) + len(m.b1) + len(m.b2)
	for _, v := range m.w2 {
		if v != 0 {
			m.params++
		}
	}
	m.init()
	return m, nil
}

func (m *sparseNet) width() int {
	if m.hidden > 0 {
		return m.hidden
	}
	return m.classes
}

func (m *sparseNet) init() {
	m.idx = newFeatIndex(m.used)
	W := m.width()
	m.pool = &sync.Pool{New: func() any { s := make([]float32, W); return &s }}
}

// Family reports logreg or mlp.
func (m *sparseNet) Family() string { return netFamily(m.hidden) }

// Classes returns the number of classes.
func (m *sparseNet) Classes() int { return m.classes }

// Features returns the feature-space dimension.
func (m *sparseNet) Features() int { return m.features }

// Params counts the non-zero weights and the biases.
func (m *sparseNet) Params() int { return m.params }

// Predict touches only the surviving weights of the row's features.
func (m *sparseNet) Predict(x model.Row, out []float64) []float64 {
	W := m.width()
	out = outBuf(out, m.classes)
	hp := m.pool.Get().(*[]float32)
	h := (*hp)[:W]
	copy(h, m.b1)
	n := min(len(x.Idx), len(x.Val))
	for j := 0; j < n; j++ {
		v := x.Val[j]
		if !finite32(v) {
			continue
		}
		s := m.idx.slot(x.Idx[j])
		if s < 0 {
			continue
		}
		lo, hi := m.off[s], m.off[s+1]
		cols, vals := m.col[lo:hi], m.val[lo:hi]
		vals = vals[:len(cols)]
		for e, u := range cols {
			h[u] += v * vals[e]
		}
	}
	outputLayer(h, m.hidden, m.w2, m.b2, out)
	m.pool.Put(hp)
	softmax(out)
	return out
}

// outputLayer writes logits: h itself for logreg (hidden 0), else
// b2 + ReLU(h)·w2, accumulated in float64 as the stock MLP does.
func outputLayer(h []float32, hidden int, w2, b2 []float32, out []float64) {
	if hidden == 0 {
		for k := range out {
			out[k] = float64(h[k])
		}
		return
	}
	K := len(out)
	for k := range out {
		out[k] = float64(b2[k])
	}
	for u, hv := range h {
		if !(hv > 0) {
			continue
		}
		row := w2[u*K : u*K+K]
		row = row[:len(out)]
		a := float64(hv)
		for k := range out {
			out[k] += a * float64(row[k])
		}
	}
}

// axpy32 computes h += v·w, unrolled by four like the stock runtime's, so
// that the sums round identically.
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

func netFamily(hidden int) string {
	if hidden > 0 {
		return model.FamilyMLP
	}
	return model.FamilyLogReg
}
