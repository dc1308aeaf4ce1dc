package optimize

import "math"

// featIndex maps a feature index to its slot among a model's used
// features. Up to 32,766 used features it is a dense table of int16 over
// the feature range they span — one load per lookup, half the bytes of the
// stock runtimes' int32 table; beyond that, an open-addressing hash table
// of about twice their count.
type featIndex struct {
	dense  []int16 // feature → slot+1, 0 = not read
	hashed bool
	keys   []int32 // -1 = empty
	slots  []int32
	shift  uint32
}

func newFeatIndex(used []int32) featIndex {
	top := int32(-1)
	for _, f := range used {
		top = max(top, f)
	}
	if len(used) < math.MaxInt16 {
		ix := featIndex{dense: make([]int16, top+1)}
		for s, f := range used {
			ix.dense[f] = int16(s + 1)
		}
		return ix
	}
	size, bits := 2, uint32(1)
	for size < 2*len(used) {
		size *= 2
		bits++
	}
	ix := featIndex{hashed: true, keys: make([]int32, size), slots: make([]int32, size), shift: 32 - bits}
	for i := range ix.keys {
		ix.keys[i] = -1
	}
	mask := uint32(size - 1)
	for s, f := range used {
		h := ix.hash(f)
		for ix.keys[h] >= 0 {
			h = (h + 1) & mask
		}
		ix.keys[h], ix.slots[h] = f, int32(s)
	}
	return ix
}

func (ix *featIndex) hash(f int32) uint32 { return (uint32(f) * 0x9e3779b1) >> ix.shift }

// slot returns f's slot, or -1 when the model does not read f.
func (ix *featIndex) slot(f int32) int32 {
	if !ix.hashed {
		if uint32(f) < uint32(len(ix.dense)) {
			return int32(ix.dense[f]) - 1
		}
		return -1
	}
	if f < 0 {
		return -1
	}
	mask := uint32(len(ix.keys) - 1)
	for h := ix.hash(f); ; h = (h + 1) & mask {
		switch ix.keys[h] {
		case f:
			return ix.slots[h]
		case -1:
			return -1
		}
	}
}

// bytes is the index's memory footprint.
func (ix *featIndex) bytes() int { return 2*len(ix.dense) + 8*len(ix.keys) }

// finite32 reports whether v is neither NaN nor ±Inf.
func finite32(v float32) bool { return v-v == 0 }

// softmax turns logits into probabilities in place, as the model package
// does: NaN logits get 0, +Inf logits share the mass.
func softmax(z []float64) {
	m := math.Inf(-1)
	for _, v := range z {
		if v > m {
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
	case math.IsInf(m, -1):
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
		s += e
	}
	for i := range z {
		z[i] /= s
	}
}

func outBuf(out []float64, k int) []float64 {
	if cap(out) < k {
		return make([]float64, k)
	}
	return out[:k]
}
