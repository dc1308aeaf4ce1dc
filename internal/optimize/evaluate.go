package optimize

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"medserve/internal/model"
	"medserve/internal/triage"
	"medserve/internal/validate"
)

// Input is a parent model version and the development rows it was
// validated on.
type Input struct {
	Name    string      // model name, "triage"
	Version string      // the parent's version
	Parent  model.Model // the parent version's model
	// Train is the parent's training recipe (its manifest's): the
	// cross-validation retrains the parent with it in every fold.
	Train    triage.TrainConfig
	Examples []triage.Example
	Dim      int
	Data     DataInfo
	// ManifestGate is the gate the parent's validation recorded; the
	// re-run's parent figures are compared with it.
	ManifestGate *validate.GateResult
}

// DataInfo describes the rows the report rests on.
type DataInfo struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Rows   int    `json:"rows"`
	// MatchesParent reports whether these are the rows the parent was
	// trained and validated on (its manifest's data hash).
	MatchesParent bool  `json:"matches_parent"`
	Folds         int   `json:"folds"`
	Seed          int64 `json:"seed"`
	Bootstrap     int   `json:"bootstrap"`
}

// Result is a finished run: the report and the candidates built from the
// parent version on all rows, ready to be written by Save.
type Result struct {
	Report *Report
	final  []*built
	chosen []int // per candidate: index of the runtime the report uses
	in     Input
	cfg    Config
}

// outcomes are per-row answers of one model (and one runtime) over the
// whole data set, each row answered by the fold that held it out.
type outcomes struct {
	probs  [][]float64
	alone  []int
	second []int
}

func newOutcomes(n int) *outcomes {
	return &outcomes{probs: make([][]float64, n), alone: make([]int, n), second: make([]int, n)}
}

func (o *outcomes) record(i int, p []float64, pol triage.Policy, e triage.Example) {
	fl := triage.Floor{Acuity: e.Floor}
	o.probs[i] = p
	o.alone[i] = pol.Decide(p, fl, 0).Acuity
	o.second[i] = pol.Decide(p, fl, e.Nurse).Acuity
}

// runner holds one run's shared state.
type runner struct {
	in     Input
	cfg    Config
	keys   []string   // candidate keys, in report order
	rtName [][]string // per candidate: runtime names
	parent *outcomes
	cands  [][]*outcomes // [candidate][runtime]
}

// fitted is a parent fitted as `train triage` fits it (model on the rows,
// policy tuned on inner out-of-fold predictions), with the candidates
// derived from it and their policies, tuned the same way.
type fitted struct {
	parent     model.Model
	policy     triage.Policy
	cands      []*built
	candPolicy [][]triage.Policy
}

// Run cross-validates the parent's recipe and every requested optimization
// of it, then builds the candidates from the parent version itself and
// measures their size and speed against it.
func Run(ctx context.Context, in Input, cfg Config) (*Result, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if in.Parent == nil || len(in.Examples) == 0 {
		return nil, fmt.Errorf("optimize: no parent model or no rows")
	}
	if in.Parent.Family() != in.Train.Family {
		return nil, fmt.Errorf("optimize: parent is %s but its recipe trains %s", in.Parent.Family(), in.Train.Family)
	}
	r := &runner{in: in, cfg: cfg}
	all := r.dataset(in.Examples, in.Train)
	cfg.progress("building candidates from %s/%s on all %d rows…", in.Name, in.Version, len(in.Examples))
	final, err := r.buildAll(in.Parent, &all, in.Train.Seed)
	if err != nil {
		return nil, err
	}
	n := len(in.Examples)
	r.parent = newOutcomes(n)
	for _, b := range final {
		r.keys = append(r.keys, b.key())
		var names []string
		var outs []*outcomes
		for _, rt := range b.runtimes {
			names = append(names, rt.name)
			outs = append(outs, newOutcomes(n))
		}
		r.rtName = append(r.rtName, names)
		r.cands = append(r.cands, outs)
	}
	if err := r.crossValidate(ctx); err != nil {
		return nil, err
	}
	cfg.progress("measuring size and speed…")
	res := &Result{final: final, in: in, cfg: cfg}
	if res.Report, res.chosen, err = r.report(final); err != nil {
		return nil, err
	}
	return res, nil
}

// crossValidate runs the outer folds, Workers at a time.
func (r *runner) crossValidate(ctx context.Context) error {
	tc := r.in.Train
	k := r.cfg.Folds
	fold := triage.Folds(r.in.Examples, k, tc.Seed)
	errs := make([]error, k)
	sem := make(chan struct{}, r.cfg.Workers)
	var wg sync.WaitGroup
	for f := 0; f < k; f++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil {
				errs[f] = err
				return
			}
			r.cfg.progress("fold %d/%d: training the parent recipe and its candidates…", f+1, k)
			errs[f] = r.outerFold(ctx, f, fold)
		}()
	}
	wg.Wait()
	for f, err := range errs {
		if err != nil {
			return fmt.Errorf("optimize: fold %d: %w", f, err)
		}
	}
	return nil
}

// outerFold fits parent and candidates on the other folds, exactly as
// triage.CrossValidate seeds them, and answers the held-out fold.
func (r *runner) outerFold(ctx context.Context, f int, fold []int) error {
	ex := r.in.Examples
	var train []triage.Example
	for i, e := range ex {
		if fold[i] != f {
			train = append(train, e)
		}
	}
	tc := r.in.Train
	tc.Seed = r.in.Train.Seed + int64(f)*7919
	fit, err := r.fitAll(ctx, train, tc, nil)
	if err != nil {
		return err
	}
	for i, e := range ex {
		if fold[i] != f {
			continue
		}
		r.parent.record(i, predict(fit.parent, e.Row), fit.policy, e)
		for c, b := range fit.cands {
			for ri, rt := range b.runtimes {
				r.cands[c][ri].record(i, predict(rt.model, e.Row), fit.candPolicy[c][ri], e)
			}
		}
	}
	return nil
}

// fitAll mirrors triage.Fit — inner folds for out-of-fold probabilities,
// the model on all rows, the policy tuned on the out-of-fold predictions —
// and does the same for every candidate: each inner model is optimized on
// its own training rows and answers its held-out inner fold, so a
// candidate's policy is tuned on its own out-of-fold predictions. When
// parent is non-nil it stands in for the model trained on all rows.
func (r *runner) fitAll(ctx context.Context, ex []triage.Example, tc triage.TrainConfig, parent model.Model) (*fitted, error) {
	if tc.InnerFolds < 2 || len(ex) < 10*tc.InnerFolds {
		return nil, fmt.Errorf("fit %s: %d examples are too few for %d inner folds", tc.Family, len(ex), tc.InnerFolds)
	}
	innerSeed := tc.Seed + 1000
	fold := triage.Folds(ex, tc.InnerFolds, innerSeed)
	oof := make([][]float64, len(ex))
	candOOF := make([][][][]float64, len(r.keys))
	for c := range candOOF {
		candOOF[c] = make([][][]float64, len(r.rtName[c]))
		for ri := range candOOF[c] {
			candOOF[c][ri] = make([][]float64, len(ex))
		}
	}
	for g := 0; g < tc.InnerFolds; g++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var tr []triage.Example
		for i, e := range ex {
			if fold[i] != g {
				tr = append(tr, e)
			}
		}
		d := r.dataset(tr, tc)
		m, err := trainFamily(tc, d, innerSeed+int64(g))
		if err != nil {
			return nil, fmt.Errorf("inner fold %d: %w", g, err)
		}
		cands, err := r.buildAll(m, &d, innerSeed+int64(g))
		if err != nil {
			return nil, fmt.Errorf("inner fold %d: %w", g, err)
		}
		for i, e := range ex {
			if fold[i] != g {
				continue
			}
			oof[i] = predict(m, e.Row)
			for c, b := range cands {
				for ri, rt := range b.runtimes {
					candOOF[c][ri][i] = predict(rt.model, e.Row)
				}
			}
		}
	}
	d := r.dataset(ex, tc)
	if parent == nil {
		var err error
		if parent, err = trainFamily(tc, d, tc.Seed); err != nil {
			return nil, err
		}
	}
	cands, err := r.buildAll(parent, &d, tc.Seed)
	if err != nil {
		return nil, err
	}
	tune := func(p [][]float64) triage.Policy {
		return triage.TunePolicy(ex, p, tc.Sensitivity, tc.Sensitivity12, tc.SecondReader12)
	}
	fit := &fitted{parent: parent, policy: tune(oof), cands: cands, candPolicy: make([][]triage.Policy, len(cands))}
	for c := range cands {
		for ri := range cands[c].runtimes {
			fit.candPolicy[c] = append(fit.candPolicy[c], tune(candOOF[c][ri]))
		}
	}
	return fit, nil
}

// buildAll derives every configured method's candidates from parent and
// checks they line up with the run's candidate list.
func (r *runner) buildAll(parent model.Model, d *model.Dataset, seed int64) ([]*built, error) {
	var out []*built
	for mi, m := range r.cfg.Methods {
		bs, err := buildMethod(m, parent, d, &r.cfg, seed+int64(mi+1)*104729)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		out = append(out, bs...)
	}
	if r.keys != nil {
		if len(out) != len(r.keys) {
			return nil, fmt.Errorf("optimize: %d candidates in a fold, %d overall", len(out), len(r.keys))
		}
		for c, b := range out {
			if b.key() != r.keys[c] || len(b.runtimes) != len(r.rtName[c]) {
				return nil, fmt.Errorf("optimize: fold candidate %s does not match %s", b.key(), r.keys[c])
			}
		}
	}
	return out, nil
}

// dataset mirrors the triage recipe's: labels are expert levels, sample
// weights the recipe's class weights.
func (r *runner) dataset(ex []triage.Example, tc triage.TrainConfig) model.Dataset {
	d := model.Dataset{Features: r.in.Dim, Classes: 5, X: make([]model.Row, len(ex)), Y: make([]int, len(ex)), W: make([]float64, len(ex))}
	for i, e := range ex {
		d.X[i], d.Y[i] = e.Row, e.Expert-1
		d.W[i] = tc.ClassWeights[e.Expert-1]
		if d.W[i] <= 0 {
			d.W[i] = 1
		}
	}
	return d
}

// trainFamily mirrors the triage recipe's training call.
func trainFamily(tc triage.TrainConfig, d model.Dataset, seed int64) (model.Model, error) {
	switch tc.Family {
	case model.FamilyLogReg:
		c := tc.LogReg
		c.Seed = seed
		return model.TrainLogReg(d, c)
	case model.FamilyMLP:
		c := tc.MLP
		c.Seed = seed
		return model.TrainMLP(d, c)
	case model.FamilyGBT:
		c := tc.GBT
		c.Seed = seed
		return model.TrainGBT(d, c)
	}
	return nil, fmt.Errorf("unknown model family %q (want logreg, mlp or gbt)", tc.Family)
}

func predict(m model.Model, row model.Row) []float64 {
	return slices.Clone(m.Predict(row, make([]float64, m.Classes())))
}

// metricsOf scores one mode's answers against the expert levels.
func metricsOf(ex []triage.Example, pred []int, probs [][]float64, bootstrap int, seed uint64) validate.TriageMetrics {
	tc := make([]validate.TriageCase, len(ex))
	for i, e := range ex {
		tc[i] = validate.TriageCase{True: e.Expert, Pred: pred[i], Prob: probs[i]}
	}
	return validate.EvaluateTriage(tc, bootstrap, seed)
}
