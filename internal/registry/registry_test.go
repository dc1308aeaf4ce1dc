package registry

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"medserve"
	"medserve/internal/pipeline"
	"medserve/internal/registry/registrytest"
	"medserve/internal/store/sqlite"
	"medserve/internal/text"
	"medserve/internal/triage"
)

func featurizer(t *testing.T) *triage.Featurizer {
	t.Helper()
	data, _ := fs.Sub(medserve.Data, "data")
	eng, err := text.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := fs.ReadFile(data, "triage/safety-floor.tsv")
	rules, err := triage.ParseRules(bytes.NewReader(raw), "floor")
	if err != nil {
		t.Fatal(err)
	}
	return triage.NewFeaturizer(eng, rules)
}

// version copies the bundled model into dir/<v> with the given verdict.
func version(t *testing.T, dir, v string, pass bool) {
	t.Helper()
	src, _ := filepath.Abs("../../models/triage/1")
	registrytest.CopyVersion(t, src, dir, v, pass)
}

// fixture is an empty SQLite store and the model directory for a registry.
func fixture(t *testing.T) (context.Context, *sqlite.DB, string) {
	t.Helper()
	root := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(root, "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return context.Background(), st, filepath.Join(root, "triage")
}

// direct serves a loaded version in the caller's goroutine; nothing to retire.
func direct(a *triage.Artifact) (pipeline.Predictor, func(), error) {
	return pipeline.DirectPredictor{Model: a.Model}, func() {}, nil
}

type swaps struct {
	to             []string
	canary, shadow string
	percent        int
}

func (s *swaps) SetCanary(as *triage.Assessor, _ pipeline.Predictor, percent int, retire func()) <-chan struct{} {
	s.canary, s.percent = "", 0
	if as != nil {
		s.canary, s.percent = as.Artifact().Manifest.Version, percent
	}
	return s.done(retire)
}

func (s *swaps) SetShadow(as *triage.Assessor, _ pipeline.Predictor, retire func()) <-chan struct{} {
	s.shadow = ""
	if as != nil {
		s.shadow = as.Artifact().Manifest.Version
	}
	return s.done(retire)
}

func (s *swaps) done(retire func()) <-chan struct{} {
	if retire != nil {
		retire()
	}
	d := make(chan struct{})
	close(d)
	return d
}

func (s *swaps) Swap(as *triage.Assessor, _ pipeline.Predictor, retire func()) <-chan struct{} {
	s.to = append(s.to, as.Artifact().Manifest.Version)
	if retire != nil {
		retire()
	}
	done := make(chan struct{})
	close(done)
	return done
}

// TestPromoteAndRollback: first start serves the newest version; a version
// failing the gate is refused with its failing checks; a validated one is
// swapped in; rollback returns to the previous validated version and a
// second rollback finds none; every change is in the store's history.
func TestPromoteAndRollback(t *testing.T) {
	ctx, st, dir := fixture(t)
	version(t, dir, "1", false)
	version(t, dir, "2", true)
	retired := map[string]int{}
	mkPred := func(a *triage.Artifact) (pipeline.Predictor, func(), error) {
		v := a.Manifest.Version
		return pipeline.DirectPredictor{Model: a.Model}, func() { retired[v]++ }, nil
	}
	r := New(st, dir, "triage", featurizer(t), mkPred)
	art, err := r.Start(ctx)
	if err != nil || art.Manifest.Version != "2" {
		t.Fatalf("first start serves %v, %v; want the newest, 2", art, err)
	}
	sw := &swaps{}
	r.Attach(sw, func() { retired["2"]++ })

	var gerr *GateError
	if err := r.Promote(ctx, "1", StageProduction, 0, "admin-key", "try the old one"); !errors.As(err, &gerr) || len(gerr.Failed) == 0 {
		t.Fatalf("version 1 fails the gate and must be refused with its checks: %v", err)
	}
	if err := r.Promote(ctx, "9", StageProduction, 0, "admin-key", "x"); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("unknown version: %v", err)
	}
	if err := r.Promote(ctx, "1", StageCanary, 10, "admin-key", "x"); !errors.As(err, &gerr) {
		t.Fatalf("a canary also needs the gate: %v", err)
	}
	version(t, dir, "3", true)
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Promote(ctx, "1", StageShadow, 0, "admin-key", "watch it"); err != nil || sw.shadow != "1" {
		t.Fatalf("a shadow needs no gate (it never answers): %v, shadow %q", err, sw.shadow)
	}
	if err := r.Promote(ctx, "3", StageCanary, 10, "admin-key", "try on 10 %"); err != nil || sw.canary != "3" || sw.percent != 10 {
		t.Fatalf("canary: %v, canary %q at %d %%", err, sw.canary, sw.percent)
	}
	if err := r.Promote(ctx, "3", StageProduction, 0, "admin-key", "better specificity"); err != nil {
		t.Fatal(err)
	}
	if sw.canary != "" {
		t.Fatalf("the canary promoted to production still runs as a canary")
	}
	if r.Serving().Manifest.Version != "3" || strings.Join(sw.to, ",") != "3" || retired["2"] != 1 {
		t.Fatalf("after promoting 3: serving %s, swaps %v, retired %v", r.Serving().Manifest.Version, sw.to, retired)
	}
	to, err := r.Rollback(ctx, "alert-engine", "sensitivity dropped")
	if err != nil || to != "2" || r.Serving().Manifest.Version != "2" {
		t.Fatalf("rollback: %q %v (serving %s); want 2", to, err, r.Serving().Manifest.Version)
	}
	if _, err := r.Rollback(ctx, "alert-engine", "again"); !errors.Is(err, ErrNoRollback) {
		t.Fatalf("a second rollback must not go forward to 3 nor below the oldest validated version: %v", err)
	}
	// A version whose files were altered does not load; serving is untouched.
	os.WriteFile(filepath.Join(dir, "3", "model.json"), []byte("{}"), 0o644)
	if err := r.Promote(ctx, "3", StageProduction, 0, "admin-key", "again"); err == nil || r.Serving().Manifest.Version != "2" {
		t.Fatalf("a corrupt version was promoted: %v, serving %s", err, r.Serving().Manifest.Version)
	}
	hist, err := st.Promotions(ctx, "triage")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range hist {
		if p.To == StageProduction {
			got = append(got, p.Version+" by "+p.Actor)
		}
	}
	if strings.Join(got, "; ") != "2 by system; 3 by admin-key; 2 by alert-engine" {
		t.Fatalf("production history: %v", got)
	}
	// A restart serves what the store says is in production.
	r2 := New(st, dir, "triage", featurizer(t), mkPred)
	if art, err := r2.Start(ctx); err != nil || art.Manifest.Version != "2" {
		t.Fatalf("restart serves %v, %v; want the store's production version 2", art, err)
	}
}

// TestOptimisedCandidateNeverServesByDefault: a first start ignores a
// newer optimised variant (optimize.json) and serves the trained version.
func TestOptimisedCandidateNeverServesByDefault(t *testing.T) {
	ctx, st, dir := fixture(t)
	version(t, dir, "1", true)
	version(t, dir, "2", true)
	os.WriteFile(filepath.Join(dir, "2", "optimize.json"), []byte(`{"method":"int8"}`), 0o644)
	r := New(st, dir, "triage", featurizer(t), direct)
	art, err := r.Start(ctx)
	if err != nil || art.Manifest.Version != "1" {
		t.Fatalf("first start serves %v, %v; want the trained version 1, not the candidate 2", art, err)
	}
}

// TestReconcileFollowsAnotherReplica: what one replica changes in the
// store, another serves after Reconcile.
func TestReconcileFollowsAnotherReplica(t *testing.T) {
	ctx, st, dir := fixture(t)
	for _, v := range []string{"1", "2", "3"} {
		version(t, dir, v, true)
	}
	mk := func() (*Registry, *swaps) {
		r := New(st, dir, "triage", featurizer(t), direct)
		if _, err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		sw := &swaps{}
		r.Attach(sw, nil)
		return r, sw
	}
	a, _ := mk()
	b, swB := mk()
	if err := a.Promote(ctx, "2", StageCanary, 20, "admin", "try"); err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(ctx, "1", StageShadow, 0, "admin", "watch"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reconcile(ctx); err != nil || swB.canary != "2" || swB.percent != 20 || swB.shadow != "1" {
		t.Fatalf("replica b after reconcile: %v, canary %q at %d, shadow %q", err, swB.canary, swB.percent, swB.shadow)
	}
	if err := a.Promote(ctx, "2", StageProduction, 0, "admin", "go"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reconcile(ctx); err != nil || b.Serving().Manifest.Version != "2" || swB.canary != "" || strings.Join(swB.to, ",") != "2" {
		t.Fatalf("replica b after production change: %v, serving %s, canary %q, swaps %v", err, b.Serving().Manifest.Version, swB.canary, swB.to)
	}
	if err := b.Reconcile(ctx); err != nil || len(swB.to) != 1 {
		t.Fatalf("a second reconcile with nothing changed swapped again: %v %v", err, swB.to)
	}
}

// TestOptimisedVariantNeedsRetentionAndAgreement: an optimised variant
// passing the gate is still refused below 98 % retention or 95 % agreement.
func TestOptimisedVariantNeedsRetentionAndAgreement(t *testing.T) {
	ctx, st, dir := fixture(t)
	version(t, dir, "1", true)
	version(t, dir, "2", true)
	version(t, dir, "3", true)
	os.WriteFile(filepath.Join(dir, "2", "optimize.json"), []byte(`{"report": {"accuracy_retention": 0.97, "agreement": 0.99, "passed": false}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "3", "optimize.json"), []byte(`{"report": {"accuracy_retention": 0.995, "agreement": 0.98, "passed": true}}`), 0o644)
	r := New(st, dir, "triage", featurizer(t), direct)
	if _, err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var gerr *GateError
	if err := r.Promote(ctx, "2", StageProduction, 0, "admin", "smaller"); !errors.As(err, &gerr) || !strings.Contains(err.Error(), "accuracy_retention 0.970") {
		t.Fatalf("retention 0.97 must be refused and named: %v", err)
	}
	if err := r.Promote(ctx, "3", StageProduction, 0, "admin", "smaller"); err != nil {
		t.Fatalf("a passing optimised variant is refused: %v", err)
	}
}

// TestReconcileNeverUndoesAPromotion races Reconcile against promotions on
// the same replica: the version promoted last must be the one serving.
func TestReconcileNeverUndoesAPromotion(t *testing.T) {
	ctx, st, dir := fixture(t)
	version(t, dir, "1", true)
	version(t, dir, "2", true)
	r := New(st, dir, "triage", featurizer(t), direct)
	if _, err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.Attach(&swaps{}, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				r.Reconcile(ctx)
			}
		}
	}()
	for i := 0; i < 20; i++ {
		v := []string{"1", "2"}[i%2]
		if err := r.Promote(ctx, v, StageProduction, 0, "admin", "flip"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond) // let a reconcile that read before the promotion finish
		if got := r.Serving().Manifest.Version; got != v {
			close(stop)
			<-done
			t.Fatalf("promotion %d: serving %s right after promoting %s", i, got, v)
		}
	}
	close(stop)
	<-done
	if err := r.Reconcile(ctx); err != nil || r.Serving().Manifest.Version != "2" {
		t.Fatalf("after the last promotion (2) and a reconcile: serving %s, %v", r.Serving().Manifest.Version, err)
	}
}
