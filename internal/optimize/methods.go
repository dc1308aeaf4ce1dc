package optimize

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"medserve/internal/model"
)

// Method names accepted by Config.Methods.
const (
	MethodInt8    = "int8"
	MethodPrune   = "prune"
	MethodDistill = "distill"
)

// Runtime names: the ways a candidate can be run.
const (
	RuntimeStock      = "stock"              // the model package's runtime, from model.json
	RuntimeInt32      = "int32-accumulate"   // int8 codes, integer arithmetic
	RuntimeDequantize = "dequantize-on-load" // int8 file, float32 in memory, stock runtime
	RuntimeSparse     = "sparse-csr"         // pruned first layer in compressed sparse rows
	RuntimeCompact    = "compact-float"      // float32 over the used features only
)

// runtime is one way to run a candidate: the bytes it loads from (its file
// on disk) and the loader, which is also what the evaluation predicts with,
// so the file format is exercised on every fold.
type runtime struct {
	name  string
	data  []byte
	load  func([]byte) (model.Model, error)
	model model.Model
}

func newRuntime(name string, data []byte, load func([]byte) (model.Model, error)) (*runtime, error) {
	m, err := load(data)
	if err != nil {
		return nil, fmt.Errorf("runtime %s: %w", name, err)
	}
	return &runtime{name: name, data: data, load: load, model: m}, nil
}

func stockRuntime(m model.Model) (*runtime, error) {
	b, err := model.Marshal(m)
	if err != nil {
		return nil, err
	}
	return newRuntime(RuntimeStock, b, model.Unmarshal)
}

func optRuntime(name string, m model.Model) (*runtime, error) {
	b, err := Marshal(m)
	if err != nil {
		return nil, err
	}
	return newRuntime(name, b, Unmarshal)
}

// built is one candidate derived from a parent on the parent's training rows.
type built struct {
	method, variant string
	params          int
	runtimes        []*runtime
	stock           model.Model // float model for model.json (what today's loader serves)
	notes           []string
}

func (b *built) key() string { return b.method + "/" + b.variant }

// buildMethod derives the candidates of one method from parent, trained on
// d. seed makes any training in it deterministic.
func buildMethod(method string, parent model.Model, d *model.Dataset, cfg *Config, seed int64) ([]*built, error) {
	switch method {
	case MethodInt8:
		return buildInt8(parent)
	case MethodPrune:
		return buildPrune(parent, d, cfg.Prune, seed)
	case MethodDistill:
		return buildDistill(parent, d, cfg.Distill, seed)
	}
	return nil, fmt.Errorf("unknown method %q (want int8, prune or distill)", method)
}

func buildInt8(parent model.Model) ([]*built, error) {
	switch parent.Family() {
	case model.FamilyGBT:
		f, err := forestOf(parent)
		if err != nil {
			return nil, err
		}
		q, err := quantizeForest(f)
		if err != nil {
			return nil, err
		}
		stock, err := q.toForest(f.cfg).model()
		if err != nil {
			return nil, err
		}
		rtInt, err := optRuntime(RuntimeInt32, q)
		if err != nil {
			return nil, err
		}
		rtDeq, err := newRuntime(RuntimeDequantize, rtInt.data, func(b []byte) (model.Model, error) {
			m, err := Unmarshal(b)
			if err != nil {
				return nil, err
			}
			qf, ok := m.(*q8Forest)
			if !ok {
				return nil, fmt.Errorf("%w: not an int8 forest", ErrFormat)
			}
			return qf.toForest(model.GBTConfig{}).model()
		})
		if err != nil {
			return nil, err
		}
		maxScale := float32(0)
		for _, s := range q.scale {
			maxScale = max(maxScale, s)
		}
		return []*built{{method: MethodInt8, variant: "trees", params: f.params(), runtimes: []*runtime{rtInt, rtDeq}, stock: stock,
			notes: []string{
				fmt.Sprintf("%d trees of depth ≤ %d: split thresholds became 8-bit codes into one sorted table per feature (%d features, %d distinct thresholds) — exact, since a trained GBT has at most Bins−1 thresholds per feature", q.trees, q.depth, len(q.used), len(q.thr)),
				fmt.Sprintf("leaf values became int8 with one scale per class (the trees of a class share it, so a row sums leaf codes in int32 and rescales once); leaf error ≤ scale/2 ≤ %.2g", maxScale/2),
				"a row's features are coded once (binary search in the feature's table), then four trees are walked side by side with integer compares; tree inference is bound by dependent loads, not arithmetic, so 8-bit values shorten little of it",
				forestLayoutNote(f, q),
			}}}, nil
	case model.FamilyLogReg, model.FamilyMLP:
		n, err := netOf(parent)
		if err != nil {
			return nil, err
		}
		q := quantizeNet(n)
		stock, err := q.toNet(n.lrCfg, n.mlpCfg).model()
		if err != nil {
			return nil, err
		}
		rtInt, err := optRuntime(RuntimeInt32, q)
		if err != nil {
			return nil, err
		}
		rtDeq, err := newRuntime(RuntimeDequantize, rtInt.data, func(b []byte) (model.Model, error) {
			m, err := Unmarshal(b)
			if err != nil {
				return nil, err
			}
			qn, ok := m.(*q8Net)
			if !ok {
				return nil, fmt.Errorf("%w: not an int8 net", ErrFormat)
			}
			return qn.toNet(model.LogRegConfig{}, model.MLPConfig{}).model()
		})
		if err != nil {
			return nil, err
		}
		return []*built{{method: MethodInt8, variant: "weights", params: n.params(), runtimes: []*runtime{rtInt, rtDeq}, stock: stock,
			notes: []string{
				fmt.Sprintf("weight matrices became int8 with one float32 scale per output unit (%d feature rows × %d); the int32 path also quantizes each row's inputs and hidden activations with one dynamic scale", len(n.used), n.width()),
				"the stock loader holds the first layer densely over the whole feature space; the int8 runtimes store only the used feature rows, which accounts for much of their memory saving",
			}}}, nil
	}
	return nil, fmt.Errorf("int8: unsupported family %q", parent.Family())
}

// forestLayoutNote splits the int8 runtime's memory saving into what the
// codes save and what the layout saves, from the arrays' sizes.
func forestLayoutNote(f *forest, q *q8Forest) string {
	nodes := 0
	for _, t := range f.trees {
		nodes += len(t.nodes)
	}
	ni, nl := 1<<q.depth-1, 1<<q.depth
	stockFlat := int64(q.trees * (8*ni + 4*nl))
	q8Flat := int64(q.trees * (4*ni + nl))
	slotTable := int64(0)
	if len(f.used) > 0 {
		slotTable = 4 * int64(f.used[len(f.used)-1]+1)
	}
	tables := int64(q.idx.bytes() + 4*len(q.thr) + 4*len(q.thrOff) + len(q.zero))
	return fmt.Sprintf("where the memory goes (array sizes): the stock runtime holds the padded trees (%s), the node list beside them (%s) and a dense feature→slot table over the feature space (%s); the int8 runtime holds padded trees of codes (%s) and an int16 feature→slot table with the threshold tables (%s) — so part of its saving is layout, not int8",
		fmtBytes(stockFlat), fmtBytes(int64(12*nodes)), fmtBytes(slotTable), fmtBytes(q8Flat), fmtBytes(tables))
}

func buildPrune(parent model.Model, d *model.Dataset, pc PruneConfig, seed int64) ([]*built, error) {
	switch parent.Family() {
	case model.FamilyGBT:
		f, err := forestOf(parent)
		if err != nil {
			return nil, err
		}
		p := f.clone()
		fr := newForestRows(p, d)
		rounds := len(p.trees) / p.classes
		dropped := dropRounds(p, roundImportance(p, &fr, d), pc.TreeFraction)
		note := fmt.Sprintf("removed %d of %d boosting rounds (%d of %d trees), least important first (mean |leaf value| over the training rows) until ≥ %.0f %% of the parameters were gone",
			dropped, rounds, dropped*p.classes, len(f.trees), 100*pc.TreeFraction)
		plain, err := prunedForest(p, "rounds", note)
		if err != nil {
			return nil, err
		}
		refit := p.clone()
		refitLeaves(refit, &fr, d)
		withRefit, err := prunedForest(refit, "rounds+refit", note+"; then re-fitted every kept leaf by one Newton step per tree, in boosting order, on the training rows (tree shapes unchanged)")
		if err != nil {
			return nil, err
		}
		return []*built{plain, withRefit}, nil
	case model.FamilyLogReg, model.FamilyMLP:
		n, err := netOf(parent)
		if err != nil {
			return nil, err
		}
		spec := fitSpec{Epochs: pc.FineTuneEpochs, LearningRate: pc.FineTuneLearningRate, L2: netL2(n), Temperature: 1, Seed: seed}
		mag, err := pruneMagnitude(n, d, pc.Sparsity, spec)
		if err != nil {
			return nil, err
		}
		str, err := pruneStructured(n, d, pc.UnitFraction, spec)
		if err != nil {
			return nil, err
		}
		return []*built{mag, str}, nil
	}
	return nil, fmt.Errorf("prune: unsupported family %q", parent.Family())
}

func prunedForest(f *forest, variant, note string) (*built, error) {
	stock, err := f.model()
	if err != nil {
		return nil, err
	}
	rt, err := stockRuntime(stock)
	if err != nil {
		return nil, err
	}
	return &built{method: MethodPrune, variant: variant, params: f.params(), runtimes: []*runtime{rt}, stock: stock, notes: []string{note}}, nil
}

func netL2(n *net) float64 {
	if n.hidden > 0 {
		return n.mlpCfg.L2
	}
	return n.lrCfg.L2
}

// pruneMagnitude zeroes the smallest-magnitude share sparsity of each
// weight matrix, fine-tunes the rest with the zeros held, and stores the
// first layer in compressed sparse rows.
func pruneMagnitude(n *net, d *model.Dataset, sparsity float64, spec fitSpec) (*built, error) {
	p := n.clone()
	mask1 := magnitudeMask(p.w1, sparsity)
	var mask2 []bool
	if p.hidden > 0 {
		mask2 = magnitudeMask(p.w2, sparsity)
	}
	if sparsity > 0 && spec.Epochs > 0 {
		if err := fitNet(p, d, nil, mask1, mask2, spec); err != nil {
			return nil, err
		}
	}
	sp, err := newSparseNet(p)
	if err != nil {
		return nil, err
	}
	stock, err := p.model()
	if err != nil {
		return nil, err
	}
	rtSparse, err := optRuntime(RuntimeSparse, sp)
	if err != nil {
		return nil, err
	}
	rtStock, err := stockRuntime(stock)
	if err != nil {
		return nil, err
	}
	return &built{method: MethodPrune, variant: "magnitude", params: sp.params, runtimes: []*runtime{rtSparse, rtStock}, stock: stock,
		notes: []string{fmt.Sprintf("zeroed the %.0f %% smallest |w| of each weight matrix, then %d epochs of fine-tuning on the training rows with the zeros held; first layer stored as compressed sparse rows", 100*sparsity, spec.Epochs)}}, nil
}

// magnitudeMask zeroes the share frac of w with the smallest |w| in place
// and returns which entries survive. Ties at the cut are all removed
// together, so the result never depends on the order of equal weights.
func magnitudeMask(w []float32, frac float64) []bool {
	mask := make([]bool, len(w))
	k := int(math.Round(frac * float64(len(w))))
	cut := float32(-1)
	if k > 0 {
		cut = sortedAbs(w)[k-1]
	}
	for i, v := range w {
		if float32(math.Abs(float64(v))) <= cut {
			w[i] = 0
		} else {
			mask[i] = true
		}
	}
	return mask
}

// pruneStructured removes whole hidden units (MLP) or whole input features
// (logreg) with the smallest weight norms and fine-tunes the smaller model,
// which the stock runtime serves as it is.
func pruneStructured(n *net, d *model.Dataset, frac float64, spec fitSpec) (*built, error) {
	p := n.clone()
	W, K := n.width(), n.classes
	var note string
	if n.hidden > 0 {
		H := n.hidden
		score := make([]float64, H)
		for u := 0; u < H; u++ {
			in, out := 0.0, 0.0
			for i := range n.used {
				v := float64(n.w1[i*W+u])
				in += v * v
			}
			for k := 0; k < K; k++ {
				v := float64(n.w2[u*K+k])
				out += v * v
			}
			score[u] = math.Sqrt(in * out)
		}
		keep := topIndexes(score, H-min(int(math.Round(frac*float64(H))), H-1))
		p.hidden = len(keep)
		p.w1 = make([]float32, len(n.used)*len(keep))
		p.b1 = make([]float32, len(keep))
		p.w2 = make([]float32, len(keep)*K)
		for j, u := range keep {
			for i := range n.used {
				p.w1[i*len(keep)+j] = n.w1[i*W+u]
			}
			p.b1[j] = n.b1[u]
			copy(p.w2[j*K:j*K+K], n.w2[u*K:u*K+K])
		}
		note = fmt.Sprintf("removed %d of %d hidden units (smallest ‖in‖·‖out‖ weight norm)", H-len(keep), H)
	} else {
		R := len(n.used)
		score := make([]float64, R)
		for i := range score {
			for u := 0; u < W; u++ {
				v := float64(n.w1[i*W+u])
				score[i] += v * v
			}
		}
		keep := topIndexes(score, R-min(int(math.Round(frac*float64(R))), max(R-1, 0)))
		p.used = make([]int32, len(keep))
		p.w1 = make([]float32, len(keep)*W)
		for j, i := range keep {
			p.used[j] = n.used[i]
			copy(p.w1[j*W:j*W+W], n.w1[i*W:i*W+W])
		}
		note = fmt.Sprintf("removed %d of %d input features (smallest weight-row norm)", R-len(keep), R)
	}
	if frac > 0 && spec.Epochs > 0 {
		if err := fitNet(p, d, nil, nil, nil, spec); err != nil {
			return nil, err
		}
	}
	stock, err := p.model()
	if err != nil {
		return nil, err
	}
	rt, err := stockRuntime(stock)
	if err != nil {
		return nil, err
	}
	return &built{method: MethodPrune, variant: "structured", params: p.params(), runtimes: []*runtime{rt}, stock: stock,
		notes: []string{note + fmt.Sprintf(", then %d epochs of fine-tuning on the training rows", spec.Epochs)}}, nil
}

// topIndexes returns the indexes of the k largest scores, ascending (ties
// to the lower index).
func topIndexes(score []float64, k int) []int {
	idx := make([]int, len(score))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return score[idx[a]] > score[idx[b]] })
	idx = idx[:max(k, 0)]
	slices.Sort(idx)
	return idx
}

// buildDistill trains a small student on the teacher's (the parent's) soft
// targets at temperature T together with the hard labels.
func buildDistill(parent model.Model, d *model.Dataset, dc DistillConfig, seed int64) ([]*built, error) {
	used, feats, err := studentFeatures(parent, d, dc.MinRows)
	if err != nil {
		return nil, err
	}
	K := parent.Classes()
	qT := make([][]float64, len(d.X))
	p := make([]float64, K)
	for i, r := range d.X {
		qT[i] = softTargets(parent.Predict(r, p), dc.Temperature)
	}
	s := &net{family: netFamily(dc.Hidden), features: parent.Features(), classes: K, hidden: dc.Hidden, used: used,
		lrCfg:  model.LogRegConfig{L2: dc.L2, Epochs: dc.Epochs, LearningRate: dc.LearningRate, Seed: seed},
		mlpCfg: model.MLPConfig{Hidden: dc.Hidden, L2: dc.L2, Epochs: dc.Epochs, LearningRate: dc.LearningRate, Seed: seed}}
	W := s.width()
	s.w1, s.b1 = make([]float32, len(used)*W), make([]float32, W)
	if dc.Hidden > 0 {
		s.w2, s.b2 = make([]float32, dc.Hidden*K), make([]float32, K)
	}
	spec := fitSpec{Epochs: dc.Epochs, LearningRate: dc.LearningRate, L2: dc.L2, Temperature: dc.Temperature, Alpha: dc.Alpha, Seed: seed}
	t := newNetTrainer(s, d, qT, spec)
	t.initRandom(seed)
	if err := t.fit(); err != nil {
		return nil, fmt.Errorf("distill: %w", err)
	}
	t.store(s)
	stock, err := s.model()
	if err != nil {
		return nil, err
	}
	rtCompact, err := optRuntime(RuntimeCompact, newFloatNet(s))
	if err != nil {
		return nil, err
	}
	rtStock, err := stockRuntime(stock)
	if err != nil {
		return nil, err
	}
	shape := "logistic regression"
	if dc.Hidden > 0 {
		shape = fmt.Sprintf("MLP with %d hidden units", dc.Hidden)
	}
	return []*built{{method: MethodDistill, variant: s.family, params: s.params(), runtimes: []*runtime{rtCompact, rtStock}, stock: stock,
		notes: []string{
			fmt.Sprintf("teacher: the parent (%s); student: %s over %s (%d features); loss %.1f·T²·KL(teacher_T‖student_T) + %.1f·CE(hard labels, class-weighted), T = %.1f, %d epochs of Adam",
				parent.Family(), shape, feats, len(used), dc.Alpha, 1-dc.Alpha, dc.Temperature, dc.Epochs),
			"an ensemble of the families as teacher is not implemented",
		}}}, nil
}

// studentFeatures picks the student's inputs: the features a GBT teacher
// splits on, or the features a linear or MLP teacher has weights for —
// in either case only those non-zero in at least minRows training rows.
func studentFeatures(parent model.Model, d *model.Dataset, minRows int) ([]int32, string, error) {
	var cand []int32
	var what string
	switch parent.Family() {
	case model.FamilyGBT:
		f, err := forestOf(parent)
		if err != nil {
			return nil, "", err
		}
		cand, what = f.used, "the features the teacher's trees split on"
	default:
		n, err := netOf(parent)
		if err != nil {
			return nil, "", err
		}
		cand, what = n.used, "the features the teacher has weights for"
	}
	count := map[int32]int{}
	for _, r := range d.X {
		for j, f := range r.Idx {
			if r.Val[j] != 0 {
				count[f]++
			}
		}
	}
	var used []int32
	for _, f := range cand {
		if count[f] >= minRows {
			used = append(used, f)
		}
	}
	if len(used) == 0 {
		return nil, "", fmt.Errorf("distill: no feature of the teacher occurs in %d training rows", minRows)
	}
	return used, fmt.Sprintf("%s, present in ≥ %d training rows", what, minRows), nil
}

// initRandom draws starting weights in the scaled space: He-style with the
// mean row fan-in for the first layer, Glorot-style for the output layer.
func (t *netTrainer) initRandom(seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x737475)) // stream tag "stu"
	nnz := 0
	for _, r := range t.rows {
		nnz += len(r.slot)
	}
	fanIn := max(float64(nnz)/float64(max(len(t.rows), 1)), 1)
	std1 := math.Sqrt(2 / fanIn)
	if t.H == 0 {
		std1 = 0.01
	}
	for i := range t.w1 {
		t.w1[i] = rng.NormFloat64() * std1
	}
	if t.H > 0 {
		std2 := math.Sqrt(1 / float64(t.H))
		for i := range t.w2 {
			t.w2[i] = rng.NormFloat64() * std2
		}
	}
}
