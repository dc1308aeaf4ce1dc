package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Serialisation identifiers. A reader rejects any other format or version
// rather than guess, since a silently misread triage model is worse than none.
const (
	FormatName    = "medserve.model"
	FormatVersion = 1
)

// envelope is the JSON document: common header plus exactly one family body.
// Float arrays are little-endian float32 in base64 (JSON's []byte), which is
// exact, compact and deterministic; integer arrays stay readable JSON.
type envelope struct {
	Format   string      `json:"format"`
	Version  int         `json:"version"`
	Family   string      `json:"family"`
	Classes  int         `json:"classes"`
	Features int         `json:"features"`
	LogReg   *logRegWire `json:"logreg,omitempty"`
	MLP      *mlpWire    `json:"mlp,omitempty"`
	GBT      *gbtWire    `json:"gbt,omitempty"`
}

// logRegWire stores only the weight rows of features with some non-zero
// weight; the rest of the feature space is implicitly zero.
type logRegWire struct {
	Config LogRegConfig `json:"config"`
	Used   []int32      `json:"used"`
	W      []byte       `json:"w"` // len(used)×classes
	B      []byte       `json:"b"` // classes
}

type mlpWire struct {
	Config MLPConfig `json:"config"`
	Hidden int       `json:"hidden"`
	Used   []int32   `json:"used"`
	W1     []byte    `json:"w1"` // len(used)×hidden
	B1     []byte    `json:"b1"` // hidden
	W2     []byte    `json:"w2"` // hidden×classes
	B2     []byte    `json:"b2"` // classes
}

type gbtWire struct {
	Config GBTConfig `json:"config"`
	Base   []byte    `json:"base"` // classes
	Used   []int32   `json:"used"`
	Roots  []int32   `json:"roots"`
	Slot   []int32   `json:"slot"`  // per node: index into used, -1 for a leaf
	Left   []int32   `json:"left"`  // per node: left child (right is left+1), 0 for a leaf
	Value  []byte    `json:"value"` // per node: threshold or leaf value
}

// Marshal serialises a model trained (or loaded) by this package.
func Marshal(m Model) ([]byte, error) {
	env := envelope{Format: FormatName, Version: FormatVersion}
	switch m := m.(type) {
	case *logRegModel:
		env.Family, env.Classes, env.Features = FamilyLogReg, m.classes, m.features
		used, w := sparseRows(m.w, m.classes)
		env.LogReg = &logRegWire{Config: m.cfg, Used: used, W: encodeF32(w), B: encodeF32(m.b)}
	case *mlpModel:
		env.Family, env.Classes, env.Features = FamilyMLP, m.classes, m.features
		used, w1 := sparseRows(m.w1, m.hidden)
		env.MLP = &mlpWire{Config: m.cfg, Hidden: m.hidden, Used: used,
			W1: encodeF32(w1), B1: encodeF32(m.b1), W2: encodeF32(m.w2), B2: encodeF32(m.b2)}
	case *gbtModel:
		env.Family, env.Classes, env.Features = FamilyGBT, m.classes, m.features
		g := &gbtWire{Config: m.cfg, Base: encodeF32(m.base), Used: m.used, Roots: m.roots,
			Slot: make([]int32, len(m.nodes)), Left: make([]int32, len(m.nodes))}
		vals := make([]float32, len(m.nodes))
		for i, nd := range m.nodes {
			g.Slot[i], g.Left[i], vals[i] = nd.slot, nd.left, nd.v
		}
		g.Value = encodeF32(vals)
		env.GBT = g
	case nil:
		return nil, errors.New("model: marshal: nil model")
	default:
		return nil, fmt.Errorf("model: marshal: unsupported model type %T", m)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("model: marshal %s: %w", env.Family, err)
	}
	return b, nil
}

// Unmarshal loads a model written by Marshal. It validates every length,
// index and value, so arbitrary bytes yield an error wrapping ErrFormat,
// never a panic or a model that could index out of range.
func Unmarshal(b []byte) (Model, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("model: unmarshal: %w: %w", ErrFormat, err)
	}
	m, err := fromEnvelope(&env)
	if err != nil {
		return nil, fmt.Errorf("model: unmarshal %q: %w", env.Family, err)
	}
	return m, nil
}

func fromEnvelope(env *envelope) (Model, error) {
	if env.Format != FormatName {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrFormat, env.Format, FormatName)
	}
	if env.Version != FormatVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFormat, env.Version, FormatVersion)
	}
	K, F := env.Classes, env.Features
	if K < 2 || K > MaxClasses {
		return nil, fmt.Errorf("%w: classes %d outside [2, %d]", ErrFormat, K, MaxClasses)
	}
	if F < 1 || F > MaxFeatures {
		return nil, fmt.Errorf("%w: features %d outside [1, %d]", ErrFormat, F, MaxFeatures)
	}
	bodies := 0
	for _, present := range []bool{env.LogReg != nil, env.MLP != nil, env.GBT != nil} {
		if present {
			bodies++
		}
	}
	if bodies != 1 {
		return nil, fmt.Errorf("%w: %d family bodies, want 1", ErrFormat, bodies)
	}
	switch env.Family {
	case FamilyLogReg:
		if env.LogReg == nil {
			return nil, fmt.Errorf("%w: missing logreg body", ErrFormat)
		}
		return logRegFromWire(env.LogReg, F, K)
	case FamilyMLP:
		if env.MLP == nil {
			return nil, fmt.Errorf("%w: missing mlp body", ErrFormat)
		}
		return mlpFromWire(env.MLP, F, K)
	case FamilyGBT:
		if env.GBT == nil {
			return nil, fmt.Errorf("%w: missing gbt body", ErrFormat)
		}
		return gbtFromWire(env.GBT, F, K)
	}
	return nil, fmt.Errorf("%w: unknown family %q", ErrFormat, env.Family)
}

func logRegFromWire(w *logRegWire, F, K int) (Model, error) {
	cfg, err := w.Config.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrFormat, err)
	}
	if F*K > MaxDenseParams {
		return nil, fmt.Errorf("%w: features×classes = %d exceeds %d", ErrFormat, F*K, MaxDenseParams)
	}
	if err := checkUsed(w.Used, F); err != nil {
		return nil, err
	}
	rows, err := decodeF32(w.W, len(w.Used)*K, "w")
	if err != nil {
		return nil, err
	}
	b, err := decodeF32(w.B, K, "b")
	if err != nil {
		return nil, err
	}
	return &logRegModel{cfg: cfg, features: F, classes: K, w: denseRows(w.Used, rows, F, K), b: b}, nil
}

func mlpFromWire(w *mlpWire, F, K int) (Model, error) {
	cfg, err := w.Config.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrFormat, err)
	}
	H := w.Hidden
	if H < 1 || H > MaxHidden || H != cfg.Hidden {
		return nil, fmt.Errorf("%w: hidden %d outside [1, %d] or unlike config (%d)", ErrFormat, H, MaxHidden, cfg.Hidden)
	}
	if F*H > MaxDenseParams {
		return nil, fmt.Errorf("%w: features×hidden = %d exceeds %d", ErrFormat, F*H, MaxDenseParams)
	}
	if err := checkUsed(w.Used, F); err != nil {
		return nil, err
	}
	w1, err := decodeF32(w.W1, len(w.Used)*H, "w1")
	if err != nil {
		return nil, err
	}
	b1, err := decodeF32(w.B1, H, "b1")
	if err != nil {
		return nil, err
	}
	w2, err := decodeF32(w.W2, H*K, "w2")
	if err != nil {
		return nil, err
	}
	b2, err := decodeF32(w.B2, K, "b2")
	if err != nil {
		return nil, err
	}
	return newMLPModel(cfg, F, K, H, denseRows(w.Used, w1, F, H), b1, w2, b2), nil
}

func gbtFromWire(w *gbtWire, F, K int) (Model, error) {
	cfg, err := w.Config.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrFormat, err)
	}
	base, err := decodeF32(w.Base, K, "base")
	if err != nil {
		return nil, err
	}
	if err := checkUsed(w.Used, F); err != nil {
		return nil, err
	}
	N := len(w.Slot)
	if len(w.Left) != N {
		return nil, fmt.Errorf("%w: %d slots but %d left links", ErrFormat, N, len(w.Left))
	}
	vals, err := decodeF32(w.Value, N, "value")
	if err != nil {
		return nil, err
	}
	R := len(w.Roots)
	if R%K != 0 || R/K > MaxGBTTrees {
		return nil, fmt.Errorf("%w: %d trees is not a whole number of rounds of %d (≤ %d)", ErrFormat, R, K, MaxGBTTrees)
	}
	if (R == 0) != (N == 0) {
		return nil, fmt.Errorf("%w: %d trees with %d nodes", ErrFormat, R, N)
	}
	nodes := make([]gbtNode, N)
	refs := make([]int32, N)
	for t := 0; t < R; t++ {
		start := int(w.Roots[t])
		end := N
		if t+1 < R {
			end = int(w.Roots[t+1])
		}
		if (t == 0 && start != 0) || start >= end || end > N {
			return nil, fmt.Errorf("%w: tree %d spans nodes [%d, %d) of %d", ErrFormat, t, start, end, N)
		}
		// Children strictly after their parent and inside the tree: every
		// walk terminates and stays in bounds.
		for i := start; i < end; i++ {
			s, l := w.Slot[i], w.Left[i]
			switch {
			case s == -1 && l == 0:
			case s >= 0 && int(s) < len(w.Used) && int(l) > i && int(l)+1 < end:
			default:
				return nil, fmt.Errorf("%w: tree %d node %d: slot %d, left %d invalid", ErrFormat, t, i, s, l)
			}
			nodes[i] = gbtNode{slot: s, left: l, v: vals[i]}
			if s >= 0 {
				refs[l]++
				refs[l+1]++
			}
		}
		// Every node but the root has exactly one parent: a real tree, not
		// a DAG whose shared subtrees could multiply work.
		for i := start + 1; i < end; i++ {
			if refs[i] != 1 {
				return nil, fmt.Errorf("%w: tree %d node %d has %d parents", ErrFormat, t, i, refs[i])
			}
		}
	}
	return newGBTModel(cfg, F, K, base, w.Used, nodes, w.Roots), nil
}

// checkUsed requires strictly increasing feature indexes inside [0, F).
func checkUsed(used []int32, F int) error {
	prev := int32(-1)
	for _, f := range used {
		if f <= prev || int(f) >= F {
			return fmt.Errorf("%w: used feature %d out of order or outside [0, %d)", ErrFormat, f, F)
		}
		prev = f
	}
	return nil
}

// sparseRows extracts the rows (of width w) of a feature-major matrix that
// hold any non-zero value, with their feature indexes.
func sparseRows(dense []float32, w int) ([]int32, []float32) {
	used := []int32{}
	var rows []float32
	for f := 0; f*w < len(dense); f++ {
		row := dense[f*w : f*w+w]
		for _, v := range row {
			if math.Float32bits(v) != 0 { // keeps -0 so a reload re-marshals identically
				used = append(used, int32(f))
				rows = append(rows, row...)
				break
			}
		}
	}
	return used, rows
}

// denseRows is the inverse of sparseRows for a space of F features.
func denseRows(used []int32, rows []float32, F, w int) []float32 {
	dense := make([]float32, F*w)
	for i, f := range used {
		copy(dense[int(f)*w:int(f)*w+w], rows[i*w:i*w+w])
	}
	return dense
}

func encodeF32(xs []float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, v := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// decodeF32 decodes exactly n finite float32 values.
func decodeF32(b []byte, n int, name string) ([]float32, error) {
	if len(b) != 4*n {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrFormat, name, len(b), 4*n)
	}
	xs := make([]float32, n)
	for i := range xs {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if !finite32(v) {
			return nil, fmt.Errorf("%w: %s[%d] is not finite", ErrFormat, name, i)
		}
		xs[i] = v
	}
	return xs, nil
}
