package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"medserve"
	"medserve/internal/kb"
	"medserve/internal/model"
	"medserve/internal/text"
	"medserve/internal/triage"
)

var (
	depsOnce sync.Once
	depsErr  error
	testAs   *triage.Assessor
	testKB   *kb.KB
	testArt  *triage.Artifact
)

func deps(t *testing.T) (*triage.Assessor, *kb.KB, *triage.Artifact) {
	t.Helper()
	depsOnce.Do(func() {
		data, _ := fs.Sub(medserve.Data, "data")
		eng, err := text.Load(data)
		if err != nil {
			depsErr = err
			return
		}
		raw, _ := fs.ReadFile(data, "triage/safety-floor.tsv")
		rules, err := triage.ParseRules(strings.NewReader(string(raw)), "floor")
		if err != nil {
			depsErr = err
			return
		}
		feat := triage.NewFeaturizer(eng, rules)
		testFeat = feat
		if testKB, depsErr = kb.Load(data); depsErr != nil {
			return
		}
		dir, _ := filepath.Abs("../../models/triage/1")
		if _, err := os.Stat(dir); err != nil {
			depsErr = err
			return
		}
		if testArt, depsErr = triage.LoadArtifact(dir, feat.Spec()); depsErr != nil {
			return
		}
		testAs = triage.NewAssessor(feat, testArt)
	})
	if depsErr != nil {
		t.Fatal(depsErr)
	}
	return testAs, testKB, testArt
}

// stuck is a predictor that never answers before its context ends.
type stuck struct{}

func (stuck) Predict(ctx context.Context, _ int, _ model.Row) ([]float64, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestDeadlineFallsBackToRules(t *testing.T) {
	as, k, _ := deps(t)
	p := New(as, k, stuck{}, nil, nil, Config{Deadline: 20 * time.Millisecond})
	sbp := 85.0
	req := &Request{Query: "chest pain", Vitals: Vitals{}, Context: Context{NurseAcuity: 4}}
	req.Vitals.SBP = &sbp
	resp, _ := p.Infer(context.Background(), req)
	if !resp.ReviewRequired || resp.Acuity > resp.SafetyFloor.Acuity || resp.Acuity != 2 {
		t.Errorf("fallback answer: acuity %d floor %d review %v", resp.Acuity, resp.SafetyFloor.Acuity, resp.ReviewRequired)
	}
	if !slices.ContainsFunc(resp.ReviewReasons, func(r string) bool { return strings.Contains(r, "deadline") }) ||
		!slices.Contains(resp.ReviewReasons, triage.ReasonRulesOnly) {
		t.Errorf("reasons %v", resp.ReviewReasons)
	}
	// Without a floor or a nurse, the rules-only answer is the conservative 3.
	resp, _ = p.Infer(context.Background(), &Request{Query: "sore throat"})
	if resp.Acuity != 3 || !resp.ReviewRequired {
		t.Errorf("rules-only default: acuity %d", resp.Acuity)
	}
}

func TestInferAnswer(t *testing.T) {
	as, k, art := deps(t)
	p := New(as, k, DirectPredictor{Model: art.Model}, nil, nil, Config{})
	resp, err := p.Infer(context.Background(), &Request{Query: "crushing chest pain, sweaty", Medications: []string{"warfarin", "aspirin", "zzzq"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.RequestID == "" || resp.Acuity < 1 || resp.Acuity > 5 || len(resp.Probabilities) != 5 {
		t.Fatalf("response %+v", resp)
	}
	if len(resp.Interactions) == 0 || len(resp.UnknownMedications) != 1 || len(resp.Differential) == 0 {
		t.Errorf("interactions %v unknown %v differential %d", resp.Interactions, resp.UnknownMedications, len(resp.Differential))
	}
	if resp.TimingMS["total"] <= 0 || resp.Model.Name != "triage" {
		t.Errorf("timing %v model %+v", resp.TimingMS, resp.Model)
	}
}

func TestRequestProblems(t *testing.T) {
	bad := 140.0
	r := &Request{Query: " ", Patient: Patient{Sex: "robot"}, Context: Context{NurseAcuity: 9, ArrivalMode: "horse"}}
	r.Vitals.SpO2 = &bad
	p := r.Problems()
	for _, f := range []string{"query", "patient.sex", "context.nurse_acuity", "context.arrival_mode", "vitals.spo2"} {
		if p[f] == "" {
			t.Errorf("no problem reported for %s: %v", f, p)
		}
	}
}

func TestExplainDrivers(t *testing.T) {
	as, k, art := deps(t)
	p := New(as, k, DirectPredictor{Model: art.Model}, nil, nil, Config{})
	sbp := 82.0
	req := &Request{Query: "chest pain and shortness of breath", Options: Options{Explain: true}}
	req.Vitals.SBP = &sbp
	resp, err := p.Infer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Drivers) == 0 || len(resp.Drivers) > 8 {
		t.Fatalf("drivers %+v", resp.Drivers)
	}
	for _, d := range resp.Drivers {
		if d.Feature == "" || d.Weight == 0 {
			t.Errorf("driver %+v", d)
		}
	}
	t.Logf("drivers: %+v", resp.Drivers)
	req.Options.Explain = false
	if resp, _ := p.Infer(context.Background(), req); resp.Drivers != nil {
		t.Error("drivers without explain")
	}
}

var testFeat *triage.Featurizer

// retirable fails every prediction made after its version was retired:
// a swap that retired a version still in use would show up as errors.
type retirable struct {
	DirectPredictor
	retired  atomic.Bool
	lateUses *atomic.Int64
}

func (r *retirable) Predict(ctx context.Context, prio int, row model.Row) ([]float64, error) {
	if r.retired.Load() {
		r.lateUses.Add(1)
		return nil, errors.New("predictor used after it was retired")
	}
	return r.DirectPredictor.Predict(ctx, prio, row)
}

// TestSwapUnderLoad swaps model versions 40 times while 8 goroutines
// query: no request fails or falls back, none uses a retired version, and
// each answer names one of the two versions whole.
func TestSwapUnderLoad(t *testing.T) {
	as, k, art := deps(t)
	art2 := *art
	art2.Manifest.Version = "2"
	as2 := triage.NewAssessor(testFeat, &art2)
	var late atomic.Int64
	mk := func() *retirable {
		return &retirable{DirectPredictor: DirectPredictor{Model: art.Model}, lateUses: &late}
	}
	first := mk()
	p := New(as, k, first, nil, nil, Config{Deadline: 5 * time.Second})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answered, bad atomic.Int64
	versions := sync.Map{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := p.Infer(context.Background(), &Request{Query: fmt.Sprintf("chest pain and fever %d", i%7)})
				if err != nil || slices.ContainsFunc(resp.ReviewReasons, isFallbackReason) {
					bad.Add(1)
					continue
				}
				versions.Store(resp.Model.Version, true)
				answered.Add(1)
			}
		}()
	}
	cur := first
	for i := 0; i < 40; i++ {
		next := mk()
		nextAs := as
		if i%2 == 0 {
			nextAs = as2
		}
		old := cur
		done := p.Swap(nextAs, next, func() { old.retired.Store(true) })
		cur = next
		if i == 39 {
			<-done
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 || late.Load() != 0 {
		t.Fatalf("%d failed or fallback answers, %d predictions on retired versions, during 40 swaps", bad.Load(), late.Load())
	}
	n := 0
	versions.Range(func(k, _ any) bool { n++; return true })
	if answered.Load() == 0 || n != 2 {
		t.Fatalf("%d answers from %d versions; want answers from both", answered.Load(), n)
	}
	if p.Model().Version != "1" {
		t.Fatalf("after an even number of swaps the serving version is %s", p.Model().Version)
	}
}

// TestCanaryShareAndStickiness: a canary answers its share of distinct
// requests, a repeated request stays on one version, 0 % and removal send
// everything back to production.
func TestCanaryShareAndStickiness(t *testing.T) {
	as, k, art := deps(t)
	art2 := *art
	art2.Manifest.Version = "2"
	as2 := triage.NewAssessor(testFeat, &art2)
	p := New(as, k, DirectPredictor{Model: art.Model}, nil, nil, Config{Deadline: 5 * time.Second})
	<-p.SetCanary(as2, DirectPredictor{Model: art.Model}, 30, nil)
	ctx := context.Background()
	onCanary := 0
	const n = 300
	for i := 0; i < n; i++ {
		req := &Request{Query: fmt.Sprintf("headache for %d days", i)}
		r1, err := p.Infer(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		r2, _ := p.Infer(ctx, req)
		if r1.Model.Version != r2.Model.Version {
			t.Fatalf("a repeated request moved from version %s to %s", r1.Model.Version, r2.Model.Version)
		}
		if r1.Model.Version == "2" {
			onCanary++
		}
	}
	if onCanary < n*20/100 || onCanary > n*40/100 {
		t.Errorf("a 30 %% canary answered %d of %d distinct requests", onCanary, n)
	}
	<-p.SetCanary(nil, nil, 0, nil)
	for i := 0; i < 50; i++ {
		if r, _ := p.Infer(ctx, &Request{Query: fmt.Sprintf("headache for %d days", i)}); r.Model.Version != "1" {
			t.Fatal("a removed canary still answers")
		}
	}
}

// constant predicts the same distribution for every row.
type constant []float64

func (c constant) Predict(context.Context, int, model.Row) ([]float64, error) { return c, nil }

// TestShadowComparesWithoutAnswering: the shadow's answers are never
// returned, and its agreement and would-be under-triage are counted.
func TestShadowComparesWithoutAnswering(t *testing.T) {
	as, k, art := deps(t)
	art2 := *art
	art2.Manifest.Version = "2"
	as2 := triage.NewAssessor(testFeat, &art2)
	p := New(as, k, constant{0, 0, 1, 0, 0}, nil, nil, Config{Deadline: 5 * time.Second})
	retired := make(chan struct{})
	<-p.SetShadow(as2, constant{0, 0, 0, 0, 1}, nil) // always the least urgent
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		r, err := p.Infer(ctx, &Request{Query: fmt.Sprintf("sore throat %d", i)})
		if err != nil || r.Model.Version != "1" {
			t.Fatalf("answer from %v (%v): the shadow must never answer", r.Model.Version, err)
		}
	}
	var st ShadowStats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		st, _ = p.Shadow()
		if st.Compared+st.Skipped == 40 {
			break
		}
	}
	if st.Version != "2" || st.Compared == 0 || st.Compared+st.Skipped != 40 || st.UnderTriage == 0 || st.Agreed+st.UnderTriage > st.Compared {
		t.Fatalf("shadow stats %+v", st)
	}
	go func() { <-p.SetShadow(nil, nil, func() { close(retired) }) }()
	<-retired
	if _, ok := p.Shadow(); ok {
		t.Fatal("shadow still set after removal")
	}
}
