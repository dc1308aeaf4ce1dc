package optimize

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"medserve/internal/model"
)

// The model package keeps its families' weights unexported; its
// serialisation (medserve.model, version 1) is the one public view of them.
// This file mirrors that document so the optimizer can read a parent's
// parameters and hand a rewritten float model back to model.Unmarshal,
// which validates it exactly as it validates a file on disk.

type stockEnvelope struct {
	Format   string           `json:"format"`
	Version  int              `json:"version"`
	Family   string           `json:"family"`
	Classes  int              `json:"classes"`
	Features int              `json:"features"`
	LogReg   *stockLogRegWire `json:"logreg,omitempty"`
	MLP      *stockMLPWire    `json:"mlp,omitempty"`
	GBT      *stockGBTWire    `json:"gbt,omitempty"`
}

type stockLogRegWire struct {
	Config model.LogRegConfig `json:"config"`
	Used   []int32            `json:"used"`
	W      []byte             `json:"w"`
	B      []byte             `json:"b"`
}

type stockMLPWire struct {
	Config model.MLPConfig `json:"config"`
	Hidden int             `json:"hidden"`
	Used   []int32         `json:"used"`
	W1     []byte          `json:"w1"`
	B1     []byte          `json:"b1"`
	W2     []byte          `json:"w2"`
	B2     []byte          `json:"b2"`
}

type stockGBTWire struct {
	Config model.GBTConfig `json:"config"`
	Base   []byte          `json:"base"`
	Used   []int32         `json:"used"`
	Roots  []int32         `json:"roots"`
	Slot   []int32         `json:"slot"`
	Left   []int32         `json:"left"`
	Value  []byte          `json:"value"`
}

// forest is a gradient-boosted ensemble in editable form: tree t adds its
// leaf value to class t % classes.
type forest struct {
	cfg      model.GBTConfig
	features int
	classes  int
	base     []float32
	used     []int32 // feature of each slot
	trees    []tree
}

// tree holds its nodes with child links relative to the tree: node 0 is
// the root; a split sends x[used[slot]] <= v to left, everything else to left+1.
type tree struct {
	nodes []treeNode
}

type treeNode struct {
	slot int32 // -1 for a leaf
	left int32
	v    float32
}

// net is a logistic regression (hidden == 0) or a one-hidden-layer ReLU MLP
// in editable form. Only the rows of the features in used are stored; every
// other feature's weights are zero. w1 is feature-major: w1[i*width+u] is
// the weight from used[i] to output u (a hidden unit, or a class for logreg).
type net struct {
	family   string
	features int
	classes  int
	hidden   int
	lrCfg    model.LogRegConfig
	mlpCfg   model.MLPConfig
	used     []int32
	w1       []float32
	b1       []float32
	w2       []float32 // hidden×classes, unit-major (MLP only)
	b2       []float32 // classes (MLP only)
}

// width is the first layer's output width.
func (n *net) width() int {
	if n.hidden > 0 {
		return n.hidden
	}
	return n.classes
}

// decodeStock reads a model's parameters through its serialisation.
func decodeStock(m model.Model) (*stockEnvelope, error) {
	b, err := model.Marshal(m)
	if err != nil {
		return nil, err
	}
	var env stockEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("decode %s model: %w", m.Family(), err)
	}
	if env.Format != model.FormatName || env.Version != model.FormatVersion {
		return nil, fmt.Errorf("decode model: format %q version %d is not %q version %d", env.Format, env.Version, model.FormatName, model.FormatVersion)
	}
	return &env, nil
}

// forestOf extracts the trees of a GBT model.
func forestOf(m model.Model) (*forest, error) {
	env, err := decodeStock(m)
	if err != nil {
		return nil, err
	}
	g := env.GBT
	if env.Family != model.FamilyGBT || g == nil {
		return nil, fmt.Errorf("decode model: %s is not a gbt model", env.Family)
	}
	base, err := f32s(g.Base, env.Classes)
	if err != nil {
		return nil, err
	}
	vals, err := f32s(g.Value, len(g.Slot))
	if err != nil {
		return nil, err
	}
	f := &forest{cfg: g.Config, features: env.Features, classes: env.Classes, base: base, used: g.Used}
	N := int32(len(g.Slot))
	for t, r := range g.Roots {
		end := N
		if t+1 < len(g.Roots) {
			end = g.Roots[t+1]
		}
		tr := tree{nodes: make([]treeNode, end-r)}
		for i := r; i < end; i++ {
			nd := treeNode{slot: g.Slot[i], v: vals[i]}
			if nd.slot >= 0 {
				nd.left = g.Left[i] - r
			}
			tr.nodes[i-r] = nd
		}
		f.trees = append(f.trees, tr)
	}
	return f, nil
}

// model rebuilds a float GBT model in the model package's format, keeping
// only the features that some split still reads.
func (f *forest) model() (model.Model, error) {
	if len(f.trees)%f.classes != 0 {
		return nil, fmt.Errorf("gbt: %d trees is not a whole number of rounds of %d classes", len(f.trees), f.classes)
	}
	slotMap := make([]int32, len(f.used))
	for i := range slotMap {
		slotMap[i] = -1
	}
	for _, t := range f.trees {
		for _, nd := range t.nodes {
			if nd.slot >= 0 {
				slotMap[nd.slot] = 0
			}
		}
	}
	used := []int32{}
	for s, ok := range slotMap {
		if ok == 0 {
			slotMap[s] = int32(len(used))
			used = append(used, f.used[s])
		}
	}
	g := &stockGBTWire{Config: f.cfg, Base: f32Bytes(f.base), Used: used, Roots: []int32{}, Slot: []int32{}, Left: []int32{}}
	var vals []float32
	for _, t := range f.trees {
		off := int32(len(g.Slot))
		g.Roots = append(g.Roots, off)
		for _, nd := range t.nodes {
			if nd.slot < 0 {
				g.Slot = append(g.Slot, -1)
				g.Left = append(g.Left, 0)
			} else {
				g.Slot = append(g.Slot, slotMap[nd.slot])
				g.Left = append(g.Left, off+nd.left)
			}
			vals = append(vals, nd.v)
		}
	}
	g.Value = f32Bytes(vals)
	return unmarshalEnvelope(&stockEnvelope{Format: model.FormatName, Version: model.FormatVersion, Family: model.FamilyGBT,
		Classes: f.classes, Features: f.features, GBT: g})
}

// clone returns a deep copy whose trees can be edited.
func (f *forest) clone() *forest {
	c := *f
	c.base = append([]float32(nil), f.base...)
	c.used = append([]int32(nil), f.used...)
	c.trees = make([]tree, len(f.trees))
	for i, t := range f.trees {
		c.trees[i] = tree{nodes: append([]treeNode(nil), t.nodes...)}
	}
	return &c
}

// params counts like model.Model.Params for trees: two per split, one per
// leaf, one base score per class.
func (f *forest) params() int {
	p := len(f.base)
	for _, t := range f.trees {
		for _, nd := range t.nodes {
			if nd.slot < 0 {
				p++
			} else {
				p += 2
			}
		}
	}
	return p
}

// depth is the longest root-to-leaf path of any tree.
func (f *forest) depth() int {
	d := 0
	for _, t := range f.trees {
		d = max(d, t.depth(0))
	}
	return d
}

func (t tree) depth(i int32) int {
	nd := t.nodes[i]
	if nd.slot < 0 {
		return 0
	}
	return 1 + max(t.depth(nd.left), t.depth(nd.left+1))
}

// netOf extracts the weights of a logreg or MLP model.
func netOf(m model.Model) (*net, error) {
	env, err := decodeStock(m)
	if err != nil {
		return nil, err
	}
	K := env.Classes
	switch {
	case env.Family == model.FamilyLogReg && env.LogReg != nil:
		w := env.LogReg
		n := &net{family: model.FamilyLogReg, features: env.Features, classes: K, lrCfg: w.Config, used: w.Used}
		if n.w1, err = f32s(w.W, len(w.Used)*K); err != nil {
			return nil, err
		}
		if n.b1, err = f32s(w.B, K); err != nil {
			return nil, err
		}
		return n, nil
	case env.Family == model.FamilyMLP && env.MLP != nil:
		w := env.MLP
		H := w.Hidden
		n := &net{family: model.FamilyMLP, features: env.Features, classes: K, hidden: H, mlpCfg: w.Config, used: w.Used}
		if n.w1, err = f32s(w.W1, len(w.Used)*H); err != nil {
			return nil, err
		}
		if n.b1, err = f32s(w.B1, H); err != nil {
			return nil, err
		}
		if n.w2, err = f32s(w.W2, H*K); err != nil {
			return nil, err
		}
		if n.b2, err = f32s(w.B2, K); err != nil {
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("decode model: %s is not a logreg or mlp model", env.Family)
}

// model rebuilds a float model in the model package's format.
func (n *net) model() (model.Model, error) {
	env := &stockEnvelope{Format: model.FormatName, Version: model.FormatVersion, Family: n.family, Classes: n.classes, Features: n.features}
	used := n.used
	if used == nil {
		used = []int32{}
	}
	switch n.family {
	case model.FamilyLogReg:
		env.LogReg = &stockLogRegWire{Config: n.lrCfg, Used: used, W: f32Bytes(n.w1), B: f32Bytes(n.b1)}
	case model.FamilyMLP:
		cfg := n.mlpCfg
		cfg.Hidden = n.hidden
		env.MLP = &stockMLPWire{Config: cfg, Hidden: n.hidden, Used: used, W1: f32Bytes(n.w1), B1: f32Bytes(n.b1), W2: f32Bytes(n.w2), B2: f32Bytes(n.b2)}
	default:
		return nil, fmt.Errorf("net: unknown family %q", n.family)
	}
	return unmarshalEnvelope(env)
}

// clone returns a deep copy whose weights can be edited.
func (n *net) clone() *net {
	c := *n
	c.used = append([]int32(nil), n.used...)
	c.w1 = append([]float32(nil), n.w1...)
	c.b1 = append([]float32(nil), n.b1...)
	c.w2 = append([]float32(nil), n.w2...)
	c.b2 = append([]float32(nil), n.b2...)
	return &c
}

// params counts the stored parameters: the used feature rows, not the
// dense Features×width layer that model.Model.Params counts.
func (n *net) params() int { return len(n.w1) + len(n.b1) + len(n.w2) + len(n.b2) }

func unmarshalEnvelope(env *stockEnvelope) (model.Model, error) {
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode %s model: %w", env.Family, err)
	}
	return model.Unmarshal(b)
}

func f32s(b []byte, n int) ([]float32, error) {
	if len(b) != 4*n {
		return nil, fmt.Errorf("decode model: %d bytes for %d float32 values", len(b), n)
	}
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return xs, nil
}

func f32Bytes(xs []float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, v := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
