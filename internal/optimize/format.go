package optimize

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"medserve/internal/model"
)

// The optimized runtimes have a file format of their own (model.opt.json in
// a candidate version): a JSON document like the model package's, with
// arrays as little-endian bytes in base64 — int8 codes and scales where the
// stock format has float32, compressed sparse rows for pruned layers.
const (
	FormatName    = "medserve.optimized"
	FormatVersion = 1
)

// Kinds of optimized model.
const (
	KindGBTInt8   = "gbt-int8"   // quantized trees (q8Forest)
	KindNetInt8   = "net-int8"   // quantized logreg/MLP (q8Net)
	KindNetSparse = "net-sparse" // magnitude-pruned logreg/MLP (sparseNet)
	KindNetFloat  = "net-float"  // compact float logreg/MLP (floatNet)
)

// ErrFormat reports bytes that are not an optimized model.
var ErrFormat = errors.New("invalid optimized model encoding")

type optEnvelope struct {
	Format   string        `json:"format"`
	Version  int           `json:"version"`
	Kind     string        `json:"kind"`
	Classes  int           `json:"classes"`
	Features int           `json:"features"`
	Params   int           `json:"params"`
	Forest   *q8ForestWire `json:"forest,omitempty"`
	Net      *netWire      `json:"net,omitempty"`
}

type q8ForestWire struct {
	Base      []byte `json:"base"`       // float32 per class
	Used      []byte `json:"used"`       // uvarint deltas of the used features
	ThrCount  []byte `json:"thr_count"`  // uint8 per slot
	Thr       []byte `json:"thr"`        // float32, ascending per slot
	Depth     int    `json:"depth"`      // padded depth of every tree
	Trees     int    `json:"trees"`      // tree t adds to class t % classes
	SplitSlot []byte `json:"split_slot"` // uint16 per split
	SplitCode []byte `json:"split_code"` // uint8 per split
	Leaves    []byte `json:"leaves"`     // int8 per leaf
	Scale     []byte `json:"scale"`      // float32 per class
}

type netWire struct {
	Hidden int    `json:"hidden"` // 0 = logreg
	Used   []byte `json:"used"`   // uvarint deltas of the stored feature rows
	W1     []byte `json:"w1,omitempty"`
	S1     []byte `json:"s1,omitempty"`
	Count  []byte `json:"count,omitempty"` // sparse: uint16 entries per row
	Col    []byte `json:"col,omitempty"`   // sparse: uint16 output unit per entry
	Val    []byte `json:"val,omitempty"`   // sparse: float32 per entry
	B1     []byte `json:"b1"`
	W2     []byte `json:"w2,omitempty"`
	S2     []byte `json:"s2,omitempty"`
	B2     []byte `json:"b2,omitempty"`
}

// Marshal encodes a model built by this package (not a stock model: those
// are model.Marshal's).
func Marshal(m model.Model) ([]byte, error) {
	env := optEnvelope{Format: FormatName, Version: FormatVersion, Classes: m.Classes(), Features: m.Features(), Params: m.Params()}
	switch m := m.(type) {
	case *q8Forest:
		env.Kind = KindGBTInt8
		w := &q8ForestWire{Base: f32Bytes(m.base), Used: deltas(m.used), Thr: f32Bytes(m.thr), Depth: m.depth, Trees: m.trees,
			Leaves: make([]byte, len(m.leaves)), Scale: f32Bytes(m.scale), SplitCode: make([]byte, len(m.splits)), SplitSlot: make([]byte, 2*len(m.splits))}
		w.ThrCount = make([]byte, len(m.used))
		for s := range m.used {
			w.ThrCount[s] = byte(m.thrOff[s+1] - m.thrOff[s])
		}
		for i, sp := range m.splits {
			binary.LittleEndian.PutUint16(w.SplitSlot[2*i:], sp.slot)
			w.SplitCode[i] = sp.code
		}
		for i, c := range m.leaves {
			w.Leaves[i] = byte(c)
		}
		env.Forest = w
	case *q8Net:
		env.Kind = KindNetInt8
		env.Net = &netWire{Hidden: m.hidden, Used: deltas(m.used), W1: i8Bytes(m.q1), S1: f32Bytes(m.s1), B1: f32Bytes(m.b1),
			W2: i8Bytes(m.q2), S2: f32Bytes(m.s2), B2: f32Bytes(m.b2)}
	case *sparseNet:
		env.Kind = KindNetSparse
		w := &netWire{Hidden: m.hidden, Used: deltas(m.used), Count: make([]byte, 2*len(m.used)), Col: make([]byte, 2*len(m.col)),
			Val: f32Bytes(m.val), B1: f32Bytes(m.b1), W2: f32Bytes(m.w2), B2: f32Bytes(m.b2)}
		for s := range m.used {
			binary.LittleEndian.PutUint16(w.Count[2*s:], uint16(m.off[s+1]-m.off[s]))
		}
		for i, c := range m.col {
			binary.LittleEndian.PutUint16(w.Col[2*i:], c)
		}
		env.Net = w
	case *floatNet:
		env.Kind = KindNetFloat
		env.Net = &netWire{Hidden: m.hidden, Used: deltas(m.used), W1: f32Bytes(m.w1), B1: f32Bytes(m.b1), W2: f32Bytes(m.w2), B2: f32Bytes(m.b2)}
	default:
		return nil, fmt.Errorf("optimize: marshal: unsupported model type %T", m)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("optimize: marshal %s: %w", env.Kind, err)
	}
	return b, nil
}

// Unmarshal loads a model written by Marshal, validating every length,
// index and value so that arbitrary bytes give an error, never a panic.
func Unmarshal(b []byte) (model.Model, error) {
	var env optEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("optimize: unmarshal: %w: %w", ErrFormat, err)
	}
	m, err := env.decode()
	if err != nil {
		return nil, fmt.Errorf("optimize: unmarshal %q: %w", env.Kind, err)
	}
	return m, nil
}

func (env *optEnvelope) decode() (model.Model, error) {
	if env.Format != FormatName || env.Version != FormatVersion {
		return nil, fmt.Errorf("%w: format %q version %d, want %q version %d", ErrFormat, env.Format, env.Version, FormatName, FormatVersion)
	}
	K, F := env.Classes, env.Features
	if K < 2 || K > model.MaxClasses || F < 1 || F > model.MaxFeatures || env.Params < 0 {
		return nil, fmt.Errorf("%w: classes %d, features %d, params %d out of range", ErrFormat, K, F, env.Params)
	}
	switch {
	case env.Kind == KindGBTInt8 && env.Forest != nil && env.Net == nil:
		return decodeForest(env.Forest, F, K, env.Params)
	case (env.Kind == KindNetInt8 || env.Kind == KindNetSparse || env.Kind == KindNetFloat) && env.Net != nil && env.Forest == nil:
		return decodeNet(env.Kind, env.Net, F, K, env.Params)
	}
	return nil, fmt.Errorf("%w: kind %q without its body", ErrFormat, env.Kind)
}

func decodeForest(w *q8ForestWire, F, K, params int) (model.Model, error) {
	used, err := undeltas(w.Used, F)
	if err != nil {
		return nil, err
	}
	if len(used) > math.MaxUint16 || len(w.ThrCount) != len(used) {
		return nil, fmt.Errorf("%w: %d used features with %d threshold counts", ErrFormat, len(used), len(w.ThrCount))
	}
	D, T := w.Depth, w.Trees
	if D < 1 || D > maxQ8Depth || T < 0 || T%K != 0 || T/K > model.MaxGBTTrees {
		return nil, fmt.Errorf("%w: depth %d, %d trees", ErrFormat, D, T)
	}
	ni, nl := 1<<D-1, 1<<D
	m := &q8Forest{features: F, classes: K, params: params, used: used, depth: D, trees: T, thrOff: make([]int32, len(used)+1)}
	if m.base, err = decodeFinite(w.Base, K, "base"); err != nil {
		return nil, err
	}
	if m.scale, err = decodeFinite(w.Scale, K, "scale"); err != nil {
		return nil, err
	}
	total := 0
	for s, c := range w.ThrCount {
		total += int(c)
		m.thrOff[s+1] = int32(total)
	}
	if m.thr, err = decodeFinite(w.Thr, total, "thr"); err != nil {
		return nil, err
	}
	for s := range used {
		th := m.thr[m.thrOff[s]:m.thrOff[s+1]]
		for i := 1; i < len(th); i++ {
			if !(th[i-1] < th[i]) {
				return nil, fmt.Errorf("%w: thresholds of slot %d not ascending", ErrFormat, s)
			}
		}
	}
	if len(w.SplitSlot) != 2*T*ni || len(w.SplitCode) != T*ni || len(w.Leaves) != T*nl {
		return nil, fmt.Errorf("%w: split and leaf arrays do not match %d trees of depth %d", ErrFormat, T, D)
	}
	m.splits = make([]q8Split, T*ni)
	for i := range m.splits {
		s := binary.LittleEndian.Uint16(w.SplitSlot[2*i:])
		if int(s) >= max(len(used), 1) {
			return nil, fmt.Errorf("%w: split %d reads slot %d of %d", ErrFormat, i, s, len(used))
		}
		m.splits[i] = q8Split{slot: s, code: w.SplitCode[i]}
	}
	m.leaves = make([]int8, len(w.Leaves))
	for i, c := range w.Leaves {
		m.leaves[i] = int8(c)
	}
	m.zero = make([]uint8, len(used))
	for s := range used {
		m.zero[s] = m.code(int32(s), 0)
	}
	m.init()
	return m, nil
}

func decodeNet(kind string, w *netWire, F, K, params int) (model.Model, error) {
	used, err := undeltas(w.Used, F)
	if err != nil {
		return nil, err
	}
	H := w.Hidden
	if H < 0 || H > model.MaxHidden {
		return nil, fmt.Errorf("%w: hidden %d outside [0, %d]", ErrFormat, H, model.MaxHidden)
	}
	W := K
	if H > 0 {
		W = H
	}
	if len(used)*W > model.MaxDenseParams {
		return nil, fmt.Errorf("%w: %d rows of width %d", ErrFormat, len(used), W)
	}
	b1, err := decodeFinite(w.B1, W, "b1")
	if err != nil {
		return nil, err
	}
	var w2, b2 []float32
	if H > 0 && kind != KindNetInt8 {
		if w2, err = decodeFinite(w.W2, H*K, "w2"); err != nil {
			return nil, err
		}
	}
	if H > 0 {
		if b2, err = decodeFinite(w.B2, K, "b2"); err != nil {
			return nil, err
		}
	}
	switch kind {
	case KindNetFloat:
		w1, err := decodeFinite(w.W1, len(used)*W, "w1")
		if err != nil {
			return nil, err
		}
		m := &floatNet{features: F, classes: K, hidden: H, params: params, used: used, w1: w1, b1: b1, w2: w2, b2: b2}
		m.init()
		return m, nil
	case KindNetInt8:
		if len(w.W1) != len(used)*W {
			return nil, fmt.Errorf("%w: w1 holds %d codes, want %d", ErrFormat, len(w.W1), len(used)*W)
		}
		m := &q8Net{features: F, classes: K, hidden: H, params: params, used: used, q1: bytesI8(w.W1), b1: b1, b2: b2}
		if m.s1, err = decodeFinite(w.S1, W, "s1"); err != nil {
			return nil, err
		}
		if H > 0 {
			if len(w.W2) != H*K {
				return nil, fmt.Errorf("%w: w2 holds %d codes, want %d", ErrFormat, len(w.W2), H*K)
			}
			m.q2 = bytesI8(w.W2)
			if m.s2, err = decodeFinite(w.S2, K, "s2"); err != nil {
				return nil, err
			}
		}
		m.init()
		return m, nil
	case KindNetSparse:
		if len(w.Count) != 2*len(used) || len(w.Col)%2 != 0 {
			return nil, fmt.Errorf("%w: sparse counts for %d rows", ErrFormat, len(used))
		}
		nnz := len(w.Col) / 2
		m := &sparseNet{features: F, classes: K, hidden: H, params: params, used: used, off: make([]int32, len(used)+1), col: make([]uint16, nnz), b1: b1, w2: w2, b2: b2}
		total := 0
		for s := range used {
			total += int(binary.LittleEndian.Uint16(w.Count[2*s:]))
			m.off[s+1] = int32(total)
		}
		if total != nnz {
			return nil, fmt.Errorf("%w: row counts sum to %d, %d entries stored", ErrFormat, total, nnz)
		}
		for i := range m.col {
			c := binary.LittleEndian.Uint16(w.Col[2*i:])
			if int(c) >= W {
				return nil, fmt.Errorf("%w: entry %d in column %d of %d", ErrFormat, i, c, W)
			}
			m.col[i] = c
		}
		if m.val, err = decodeFinite(w.Val, nnz, "val"); err != nil {
			return nil, err
		}
		m.init()
		return m, nil
	}
	return nil, fmt.Errorf("%w: kind %q", ErrFormat, kind)
}

// deltas encodes a strictly increasing list as uvarint gaps.
func deltas(xs []int32) []byte {
	b := make([]byte, 0, 2*len(xs))
	prev := int64(-1)
	for _, x := range xs {
		b = binary.AppendUvarint(b, uint64(int64(x)-prev))
		prev = int64(x)
	}
	return b
}

// undeltas decodes deltas, requiring strictly increasing values in [0, F).
func undeltas(b []byte, F int) ([]int32, error) {
	xs := []int32{}
	prev := int64(-1)
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 || d == 0 || d > uint64(F) {
			return nil, fmt.Errorf("%w: bad feature gap", ErrFormat)
		}
		b = b[n:]
		prev += int64(d)
		if prev >= int64(F) {
			return nil, fmt.Errorf("%w: feature %d outside [0, %d)", ErrFormat, prev, F)
		}
		xs = append(xs, int32(prev))
	}
	return xs, nil
}

func decodeFinite(b []byte, n int, name string) ([]float32, error) {
	if len(b) != 4*n {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrFormat, name, len(b), 4*n)
	}
	xs, _ := f32s(b, n)
	for i, v := range xs {
		if !finite32(v) {
			return nil, fmt.Errorf("%w: %s[%d] is not finite", ErrFormat, name, i)
		}
	}
	return xs, nil
}

func i8Bytes(xs []int8) []byte {
	b := make([]byte, len(xs))
	for i, v := range xs {
		b[i] = byte(v)
	}
	return b
}

func bytesI8(b []byte) []int8 {
	xs := make([]int8, len(b))
	for i, v := range b {
		xs[i] = int8(v)
	}
	return xs
}
