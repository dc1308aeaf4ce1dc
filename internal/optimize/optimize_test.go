package optimize

import (
	"context"
	"flag"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"medserve/internal/model"
	"medserve/internal/triage"
	"medserve/internal/validate"
)

const synthDim = 68 // 64 sparse binary features + 4 dense

// synthExamples makes triage-like examples: sparse binary "text" features
// and four dense "vitals", the expert level drawn from a noisy score, the
// nurse mostly agreeing with the expert, and a safety floor for extremes.
func synthExamples(n int, seed uint64) []triage.Example {
	rng := rand.New(rand.NewPCG(seed, 7))
	beta := make([]float64, synthDim)
	for f := range beta {
		if f%3 == 0 {
			beta[f] = rng.NormFloat64()
		}
	}
	ex := make([]triage.Example, n)
	for i := range ex {
		seen := map[int32]float32{}
		for range 6 {
			seen[int32(rng.IntN(64))] = 1
		}
		for f := 64; f < synthDim; f++ {
			seen[int32(f)] = float32(rng.NormFloat64())
		}
		var row model.Row
		for f := int32(0); f < synthDim; f++ {
			if v, ok := seen[f]; ok {
				row.Idx = append(row.Idx, f)
				row.Val = append(row.Val, v)
			}
		}
		score := rng.NormFloat64() * 0.5
		for j, f := range row.Idx {
			score += beta[f] * float64(row.Val[j])
		}
		level := 5
		for l, cut := range []float64{2.2, 1.2, 0, -1.2} {
			if score > cut {
				level = l + 1
				break
			}
		}
		nurse := level
		if rng.Float64() < 0.25 {
			nurse = max(1, min(5, level+[]int{-1, 1}[rng.IntN(2)]))
		}
		floor := 5
		if row.Val[len(row.Val)-4] > 1.8 {
			floor = 2
		}
		ex[i] = triage.Example{Row: row, Floor: floor, Nurse: nurse, Expert: level}
	}
	return ex
}

// synthRecipe is a small, fast training recipe for a family.
func synthRecipe(family string) triage.TrainConfig {
	c := triage.DefaultTrainConfig(family)
	c.InnerFolds = 3
	c.GBT.Trees, c.GBT.MinLeaf = 12, 5
	c.MLP.Hidden, c.MLP.Epochs = 8, 15
	c.LogReg.Epochs = 15
	return c
}

func synthDataset(ex []triage.Example, tc triage.TrainConfig) model.Dataset {
	r := &runner{in: Input{Dim: synthDim}}
	return r.dataset(ex, tc)
}

func trainSynth(t *testing.T, family string, ex []triage.Example) (model.Model, model.Dataset) {
	t.Helper()
	tc := synthRecipe(family)
	d := synthDataset(ex, tc)
	m, err := trainFamily(tc, d, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m, d
}

// fastBench makes testing.Benchmark run a fixed, small number of
// iterations for the rest of the test.
func fastBench(t *testing.T) {
	t.Helper()
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set("20x"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

func maxProbDiff(a, b model.Model, rows []model.Row) float64 {
	worst := 0.0
	pa, pb := make([]float64, a.Classes()), make([]float64, b.Classes())
	for _, r := range rows {
		a.Predict(r, pa)
		b.Predict(r, pb)
		for k := range pa {
			worst = max(worst, math.Abs(pa[k]-pb[k]))
		}
	}
	return worst
}

func TestOptimizeQuantizeColumnsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name  string
		width int
		gen   func(i, u int) float32
	}{
		{"gaussian", 8, func(int, int) float32 { return float32(rng.NormFloat64()) }},
		{"tiny", 3, func(int, int) float32 { return float32(rng.NormFloat64() * 1e-6) }},
		{"outlier", 4, func(i, u int) float32 {
			if i == 0 {
				return 1000
			}
			return float32(rng.NormFloat64())
		}},
		{"zero column", 5, func(_, u int) float32 {
			if u == 2 {
				return 0
			}
			return float32(rng.Float64()*2 - 1)
		}},
		{"negative only", 2, func(int, int) float32 { return -float32(rng.Float64()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := 50
			w := make([]float32, rows*tt.width)
			for i := range rows {
				for u := range tt.width {
					w[i*tt.width+u] = tt.gen(i, u)
				}
			}
			q, scale := quantizeColumns(w, tt.width)
			back := dequantizeColumns(q, scale)
			peak := make([]int8, tt.width)
			for i, v := range w {
				u := i % tt.width
				if q[i] < -127 || q[i] > 127 {
					t.Fatalf("code %d outside [-127, 127]", q[i])
				}
				peak[u] = max(peak[u], q[i], -q[i])
				if err := math.Abs(float64(v - back[i])); err > float64(scale[u])/2*(1+1e-5)+1e-12 {
					t.Fatalf("w[%d] = %g, round trip %g: error %g > scale/2 = %g", i, v, back[i], err, scale[u]/2)
				}
			}
			for u, p := range peak {
				if scale[u] != 0 && p != 127 {
					t.Errorf("column %d: largest |code| %d, want 127 (symmetric scale)", u, p)
				}
			}
		})
	}
}

func TestOptimizeInt8Forest(t *testing.T) {
	ex := synthExamples(300, 3)
	parent, d := trainSynth(t, model.FamilyGBT, ex)
	f, err := forestOf(parent)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quantizeForest(f)
	if err != nil {
		t.Fatal(err)
	}
	back := q.toForest(f.cfg)
	if len(back.trees) != len(f.trees) {
		t.Fatalf("%d trees back, want %d", len(back.trees), len(f.trees))
	}
	treesPerClass := float64(len(f.trees) / f.classes)
	for ti, tr := range f.trees {
		bt := back.trees[ti]
		if len(bt.nodes) != len(tr.nodes) {
			t.Fatalf("tree %d: %d nodes back, want %d (shape must survive)", ti, len(bt.nodes), len(tr.nodes))
		}
		for i, nd := range tr.nodes {
			b := bt.nodes[i]
			if nd.slot >= 0 {
				if b.slot != nd.slot || b.left != nd.left || b.v != nd.v {
					t.Fatalf("tree %d node %d: split %+v back as %+v (thresholds are exact)", ti, i, nd, b)
				}
				continue
			}
			if s := q.scale[ti%f.classes]; math.Abs(float64(b.v-nd.v)) > float64(s)/2*(1+1e-5) {
				t.Fatalf("tree %d leaf %d: %g back as %g, error above scale/2 = %g", ti, i, nd.v, b.v, s/2)
			}
		}
	}
	deq, err := back.model()
	if err != nil {
		t.Fatal(err)
	}
	// The int32 runtime and the dequantized stock runtime compute the same sums.
	if diff := maxProbDiff(q, deq, d.X); diff > 1e-5 {
		t.Errorf("int32 and dequantized runtimes differ by %g", diff)
	}
	// Against the parent: each class's logit moves by at most trees·scale/2.
	maxScale := float32(0)
	for _, s := range q.scale {
		maxScale = max(maxScale, s)
	}
	if diff, bound := maxLogitDiff(parent, q, d.X), 2*treesPerClass*float64(maxScale)/2*(1+1e-4); diff > bound {
		t.Errorf("log-probabilities moved by %g, bound %g", diff, bound)
	}
}

func TestOptimizeInt8Net(t *testing.T) {
	ex := synthExamples(300, 4)
	for _, fam := range []string{model.FamilyLogReg, model.FamilyMLP} {
		t.Run(fam, func(t *testing.T) {
			parent, d := trainSynth(t, fam, ex)
			bs, err := buildInt8(parent)
			if err != nil {
				t.Fatal(err)
			}
			for _, rt := range bs[0].runtimes {
				if diff := maxProbDiff(parent, rt.model, d.X); diff > 0.05 {
					t.Errorf("%s: probabilities moved by %g from the float parent", rt.name, diff)
				}
			}
		})
	}
}

func TestOptimizePruneZeroIsParent(t *testing.T) {
	ex := synthExamples(300, 5)
	tests := []struct {
		family string
		prune  PruneConfig
	}{
		{model.FamilyGBT, PruneConfig{TreeFraction: 0}},
		{model.FamilyLogReg, PruneConfig{Sparsity: 0, UnitFraction: 0, FineTuneEpochs: 3, FineTuneLearningRate: 1e-3}},
		{model.FamilyMLP, PruneConfig{Sparsity: 0, UnitFraction: 0, FineTuneEpochs: 3, FineTuneLearningRate: 1e-3}},
	}
	for _, tt := range tests {
		t.Run(tt.family, func(t *testing.T) {
			parent, d := trainSynth(t, tt.family, ex)
			bs, err := buildPrune(parent, &d, tt.prune, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bs {
				if b.variant == "rounds+refit" {
					continue // re-fitting changes leaves even with nothing removed
				}
				if b.params != storedParams(parent) {
					t.Errorf("%s: %d params, parent %d", b.key(), b.params, storedParams(parent))
				}
				for _, rt := range b.runtimes {
					if diff := maxProbDiff(parent, rt.model, d.X); diff > 1e-6 {
						t.Errorf("%s/%s: differs from the parent by %g", b.key(), rt.name, diff)
					}
				}
			}
		})
	}
}

func TestOptimizePruneShrinks(t *testing.T) {
	ex := synthExamples(300, 6)
	for _, fam := range []string{model.FamilyGBT, model.FamilyLogReg, model.FamilyMLP} {
		t.Run(fam, func(t *testing.T) {
			parent, d := trainSynth(t, fam, ex)
			pc := DefaultConfig().Prune
			bs, err := buildPrune(parent, &d, pc, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bs {
				if red := 1 - float64(b.params)/float64(storedParams(parent)); red < 0.3 {
					t.Errorf("%s: parameters reduced by only %.2f", b.key(), red)
				}
			}
		})
	}
}

func TestOptimizeKDLossGradient(t *testing.T) {
	tests := []struct {
		name     string
		z, q     []float64
		y        int
		T, alpha float64
	}{
		{"hard only", []float64{0.3, -1.2, 2.0}, nil, 2, 1, 0},
		{"seed recipe", []float64{0.3, -1.2, 2.0, 0.1, -0.4}, []float64{0.1, 0.05, 0.6, 0.2, 0.05}, 0, 3, 0.7},
		{"soft only", []float64{1, 2, 3}, []float64{0.2, 0.3, 0.5}, 1, 2, 1},
		{"confident teacher", []float64{-3, 4, 0.5}, []float64{1e-6, 0.999998, 1e-6}, 1, 3, 0.7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var qT []float64
			if tt.q != nil {
				qT = softTargets(tt.q, tt.T)
			}
			g := make([]float64, len(tt.z))
			kdLoss(tt.z, qT, tt.y, tt.T, tt.alpha, g)
			scratch := make([]float64, len(tt.z))
			for k := range tt.z {
				const h = 1e-6
				zp, zm := slices.Clone(tt.z), slices.Clone(tt.z)
				zp[k] += h
				zm[k] -= h
				num := (kdLoss(zp, qT, tt.y, tt.T, tt.alpha, scratch) - kdLoss(zm, qT, tt.y, tt.T, tt.alpha, scratch)) / (2 * h)
				if math.Abs(num-g[k]) > 1e-6*max(1, math.Abs(num)) {
					t.Errorf("∂L/∂z[%d]: analytic %g, numeric %g", k, g[k], num)
				}
			}
			// At the teacher's own logits with α = 1 the loss is at its minimum.
			if tt.alpha == 1 && tt.q != nil {
				z := make([]float64, len(tt.q))
				for k, p := range tt.q {
					z[k] = math.Log(p)
				}
				if l := kdLoss(z, qT, tt.y, tt.T, 1, scratch); math.Abs(l) > 1e-9 {
					t.Errorf("loss at the teacher's logits = %g, want 0", l)
				}
			}
		})
	}
}

func TestOptimizeNetGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, hidden := range []int{0, 3} {
		n := &net{family: netFamily(hidden), features: 6, classes: 3, hidden: hidden, used: []int32{0, 1, 2, 3, 4, 5}}
		W := n.width()
		n.w1, n.b1 = make([]float32, 6*W), make([]float32, W)
		for i := range n.w1 {
			n.w1[i] = float32(rng.NormFloat64())
		}
		for i := range n.b1 {
			n.b1[i] = float32(rng.NormFloat64() * 0.1)
		}
		if hidden > 0 {
			n.w2, n.b2 = make([]float32, hidden*3), make([]float32, 3)
			for i := range n.w2 {
				n.w2[i] = float32(rng.NormFloat64())
			}
		}
		d := model.Dataset{Features: 6, Classes: 3, W: []float64{1, 2, 0.5, 1}}
		var qT [][]float64
		for i := range 4 {
			var r model.Row
			for f := int32(0); f < 6; f++ {
				if rng.Float64() < 0.7 {
					r.Idx = append(r.Idx, f)
					r.Val = append(r.Val, float32(rng.NormFloat64()))
				}
			}
			d.X = append(d.X, r)
			d.Y = append(d.Y, i%3)
			qT = append(qT, softTargets([]float64{0.2, 0.5, 0.3}, 3))
		}
		tr := newNetTrainer(n, &d, qT, fitSpec{Temperature: 3, Alpha: 0.7})
		batch := []int{0, 1, 2, 3}
		tr.lossGrad(batch)
		params := [][]float64{tr.w1, tr.b1, tr.w2, tr.b2}
		grads := [][]float64{slices.Clone(tr.g1), slices.Clone(tr.gb1), slices.Clone(tr.g2), slices.Clone(tr.gb2)}
		for pi, p := range params {
			for i := range p {
				const h = 1e-6
				orig := p[i]
				p[i] = orig + h
				lp := tr.lossGrad(batch)
				p[i] = orig - h
				lm := tr.lossGrad(batch)
				p[i] = orig
				num := (lp - lm) / (2 * h)
				if math.Abs(num-grads[pi][i]) > 1e-5*max(1, math.Abs(num)) {
					t.Errorf("hidden %d: param block %d[%d]: analytic %g, numeric %g", hidden, pi, i, grads[pi][i], num)
				}
			}
		}
	}
}

func TestOptimizeDistillStudentIsSmall(t *testing.T) {
	ex := synthExamples(400, 8)
	parent, d := trainSynth(t, model.FamilyGBT, ex)
	dc := DefaultConfig().Distill
	dc.Epochs = 20
	bs, err := buildDistill(parent, &d, dc, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := bs[0]
	if b.params >= storedParams(parent) {
		t.Errorf("student has %d params, teacher %d", b.params, storedParams(parent))
	}
	// The student must have learnt something: agree with the teacher's top class on most rows.
	agree := 0
	pp, ps := make([]float64, 5), make([]float64, 5)
	for _, r := range d.X {
		if model.Argmax(parent.Predict(r, pp)) == model.Argmax(b.runtimes[0].model.Predict(r, ps)) {
			agree++
		}
	}
	if share := float64(agree) / float64(len(d.X)); share < 0.6 {
		t.Errorf("student agrees with the teacher's top class on %.2f of training rows", share)
	}
	// Its compact runtime and the stock export answer alike.
	if diff := maxProbDiff(b.runtimes[0].model, b.runtimes[1].model, d.X); diff > 1e-6 {
		t.Errorf("compact and stock student differ by %g", diff)
	}
}

func TestOptimizeFormatRoundTrip(t *testing.T) {
	ex := synthExamples(300, 10)
	cfg := DefaultConfig()
	cfg.Distill.Epochs = 5
	cfg.Prune.FineTuneEpochs = 1
	for _, fam := range []string{model.FamilyGBT, model.FamilyLogReg, model.FamilyMLP} {
		parent, d := trainSynth(t, fam, ex)
		for _, method := range cfg.Methods {
			bs, err := buildMethod(method, parent, &d, &cfg, 1)
			if err != nil {
				t.Fatalf("%s %s: %v", fam, method, err)
			}
			for _, b := range bs {
				for _, rt := range b.runtimes {
					m, err := rt.load(rt.data)
					if err != nil {
						t.Fatalf("%s %s: reload: %v", fam, b.key(), err)
					}
					if diff := maxProbDiff(m, rt.model, d.X); diff != 0 {
						t.Errorf("%s %s/%s: reloaded model differs by %g", fam, b.key(), rt.name, diff)
					}
					if rt.name == RuntimeStock || rt.name == RuntimeDequantize {
						continue // stock models in memory: model.Marshal's business
					}
					again, err := Marshal(rt.model)
					if err != nil || string(again) != string(rt.data) {
						t.Errorf("%s %s/%s: re-marshal differs (%v)", fam, b.key(), rt.name, err)
					}
					// Truncations are errors, never panics.
					for cut := 0; cut < len(rt.data); cut += 1 + len(rt.data)/50 {
						if _, err := Unmarshal(rt.data[:cut]); err == nil {
							t.Errorf("%s: truncated at %d accepted", rt.name, cut)
						}
					}
				}
			}
		}
	}
}

func FuzzOptimizeUnmarshal(f *testing.F) {
	ex := synthExamples(200, 11)
	tc := synthRecipe(model.FamilyMLP)
	d := synthDataset(ex, tc)
	m, err := trainFamily(tc, d, 1)
	if err != nil {
		f.Fatal(err)
	}
	n, _ := netOf(m)
	for _, mm := range []model.Model{quantizeNet(n), newFloatNet(n)} {
		b, _ := Marshal(mm)
		f.Add(b)
	}
	if sp, err := newSparseNet(n); err == nil {
		b, _ := Marshal(sp)
		f.Add(b)
	}
	f.Add([]byte(`{"format":"medserve.optimized","version":1,"kind":"gbt-int8","classes":2,"features":3,"forest":{"depth":1,"trees":2,"split_slot":"AAAAAA==","split_code":"/w8=","leaves":"AQID/w==","used":"AQ==","thr_count":"AA==","base":"AAAAAAAAAAA=","scale":"AACAPwAAgD8="}}`))
	row := model.Row{Idx: []int32{0, 1, 2, 64, 65}, Val: []float32{1, 1, 1, 0.5, -2}}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		p := m.Predict(row, nil)
		s := 0.0
		for _, v := range p {
			s += v
		}
		if len(p) != m.Classes() || math.Abs(s-1) > 1e-6 {
			t.Fatalf("prediction %v does not sum to 1", p)
		}
	})
}

func TestOptimizeJudge(t *testing.T) {
	pass := validate.GateResult{Pass: true, Failed: []string{}}
	fail := validate.GateResult{Pass: false, Failed: []string{"specificity"}}
	tests := []struct {
		name      string
		gate      validate.GateResult
		retention float64
		agreement float64
		want      bool
		failures  int
	}{
		{"all pass", pass, 0.99, 0.97, true, 0},
		{"exactly on thresholds", pass, 0.98, 0.95, true, 0},
		{"gate fails", fail, 1, 1, false, 1},
		{"retention low", pass, 0.979, 0.99, false, 1},
		{"agreement low", pass, 0.99, 0.949, false, 1},
		{"everything fails", fail, 0.5, 0.5, false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := CandidateReport{Gate: tt.gate, GatePassed: tt.gate.Pass, AccuracyRetention: tt.retention, Agreement: tt.agreement}
			judge(&c, 0.98, 0.95)
			if c.Passed != tt.want || len(c.Failed) != tt.failures {
				t.Errorf("passed %v with failures %q, want %v with %d", c.Passed, c.Failed, tt.want, tt.failures)
			}
		})
	}
}

// TestFitMirrorsTriage checks that the optimizer fits the parent exactly as
// `train triage` does: same model, same policy, same out-of-fold answers.
func TestOptimizeFitMirrorsTriage(t *testing.T) {
	ex := synthExamples(240, 12)
	for _, fam := range []string{model.FamilyGBT, model.FamilyLogReg} {
		t.Run(fam, func(t *testing.T) {
			tc := synthRecipe(fam)
			want, err := triage.Fit(ex, synthDim, tc)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Methods = []string{MethodInt8}
			cfg.Folds = 3
			if err := cfg.Check(); err != nil {
				t.Fatal(err)
			}
			r := &runner{in: Input{Dim: synthDim, Train: tc, Examples: ex}, cfg: cfg}
			r.keys, r.rtName = []string{"int8/trees"}, [][]string{{RuntimeInt32, RuntimeDequantize}}
			if fam != model.FamilyGBT {
				r.keys[0] = "int8/weights"
			}
			got, err := r.fitAll(context.Background(), ex, tc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.policy != want.Policy {
				t.Errorf("policy %+v, triage.Fit %+v", got.policy, want.Policy)
			}
			rows := make([]model.Row, len(ex))
			for i, e := range ex {
				rows[i] = e.Row
			}
			if diff := maxProbDiff(got.parent, want.Model, rows); diff != 0 {
				t.Errorf("parent differs from triage.Fit's by %g", diff)
			}
			// The outer folds answer as triage.CrossValidate does.
			outs, _, err := triage.CrossValidate(ex, synthDim, tc, 3, tc.Seed)
			if err != nil {
				t.Fatal(err)
			}
			r.parent = newOutcomes(len(ex))
			r.cands = [][]*outcomes{{newOutcomes(len(ex)), newOutcomes(len(ex))}}
			if err := r.crossValidate(context.Background()); err != nil {
				t.Fatal(err)
			}
			for i, o := range outs {
				if r.parent.second[i] != o.Second || r.parent.alone[i] != o.Alone {
					t.Fatalf("row %d: parent answers %d/%d, triage.CrossValidate %d/%d", i, r.parent.second[i], r.parent.alone[i], o.Second, o.Alone)
				}
			}
		})
	}
}

func TestOptimizeFeatIndex(t *testing.T) {
	many := make([]int32, 40000)
	for i := range many {
		many[i] = int32(3 * i)
	}
	tests := []struct {
		name   string
		used   []int32
		hashed bool
	}{
		{"empty", nil, false},
		{"dense", []int32{2, 5, 16400, 16448}, false},
		{"hashed", many, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newFeatIndex(tt.used)
			if ix.hashed != tt.hashed {
				t.Errorf("hashed = %v, want %v", ix.hashed, tt.hashed)
			}
			want := map[int32]int32{}
			for s, f := range tt.used {
				want[f] = int32(s)
			}
			for _, f := range []int32{-1, 0, 1, 2, 3, 5, 6, 16400, 16448, 16449, 119997, 119999, 1 << 30} {
				w, ok := want[f]
				if !ok {
					w = -1
				}
				if got := ix.slot(f); got != w {
					t.Errorf("slot(%d) = %d, want %d", f, got, w)
				}
			}
		})
	}
}
