// Package registry keeps a model's versions and their stages (candidate,
// shadow, canary, production, retired) in the store, decides which version
// serves, and changes it: gated promotion, and rollback to the previous
// validated version, each swapped into the pipeline without dropping a
// request (SPEC sections 6 and 12).
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"medserve/internal/pipeline"
	"medserve/internal/store"
	"medserve/internal/triage"
)

// Stages of a version.
const (
	StageCandidate  = "candidate"
	StageShadow     = "shadow"
	StageCanary     = "canary"
	StageProduction = "production"
	StageRetired    = "retired"
)

// Errors callers map to HTTP statuses.
var (
	ErrUnknownVersion = errors.New("registry: no such version")
	ErrNotValidated   = errors.New("registry: the version's validation report does not pass the gate")
	ErrNoRollback     = errors.New("registry: no earlier validated version to roll back to")
	ErrUnsupported    = errors.New("registry: stage not served yet")
)

// GateError lists the failing checks of a refused promotion.
type GateError struct{ Failed []string }

func (e *GateError) Error() string {
	return ErrNotValidated.Error() + ": " + strings.Join(e.Failed, ", ")
}

func (e *GateError) Unwrap() error { return ErrNotValidated }

// Swapper is the pipeline's hot swap, canary and shadow.
type Swapper interface {
	Swap(as *triage.Assessor, pr pipeline.Predictor, retire func()) <-chan struct{}
	SetCanary(as *triage.Assessor, pr pipeline.Predictor, percent int, retire func()) <-chan struct{}
	SetShadow(as *triage.Assessor, pr pipeline.Predictor, retire func()) <-chan struct{}
}

// Registry manages one model's versions. It is safe for concurrent use;
// changes of stage are serialised.
type Registry struct {
	st   store.Store
	dir  string // models/<name>
	name string
	feat *triage.Featurizer
	// predictor makes the predictor for a loaded version and what retires it.
	predictor func(a *triage.Artifact) (pipeline.Predictor, func(), error)

	mu      sync.Mutex
	serving *triage.Artifact
	retire  func()
	swapper Swapper
	// The canary and shadow versions, with what retires each.
	canary, shadow             string
	canaryPercent              int
	canaryRetire, shadowRetire func()
}

// New returns the registry of the model in dir (models/<name>).
func New(st store.Store, dir, name string, feat *triage.Featurizer, predictor func(*triage.Artifact) (pipeline.Predictor, func(), error)) *Registry {
	return &Registry{st: st, dir: dir, name: name, feat: feat, predictor: predictor}
}

// validated reports whether a manifest's stored validation passes the gate,
// and the failing checks when it does not.
func validated(m triage.Manifest) (bool, []string) {
	if m.Gate == nil {
		return false, []string{"no validation report"}
	}
	if !m.Gate.Pass {
		return false, m.Gate.Failed
	}
	return true, nil
}

// optimisedVerdict checks an optimised variant's own report (optimize.json):
// besides the gate it must keep ≥ 98 % of its parent's accuracy and agree
// with it on ≥ 95 % of held-out cases (SPEC section 7). Versions without
// the file are trained models and pass.
func (r *Registry) optimisedVerdict(version string) (bool, []string) {
	b, err := os.ReadFile(filepath.Join(r.dir, version, "optimize.json"))
	if err != nil {
		return true, nil
	}
	var p struct {
		Report struct {
			Retention float64 `json:"accuracy_retention"`
			Agreement float64 `json:"agreement"`
			Passed    bool    `json:"passed"`
		} `json:"report"`
	}
	if json.Unmarshal(b, &p) != nil {
		return false, []string{"unreadable optimize.json"}
	}
	var failed []string
	if p.Report.Retention < 0.98 {
		failed = append(failed, fmt.Sprintf("accuracy_retention %.3f < 0.98", p.Report.Retention))
	}
	if p.Report.Agreement < 0.95 {
		failed = append(failed, fmt.Sprintf("agreement %.3f < 0.95", p.Report.Agreement))
	}
	if !p.Report.Passed && len(failed) == 0 {
		failed = append(failed, "optimisation report not passed")
	}
	return len(failed) == 0, failed
}

// versions are the version directories on disk, ordered by number.
func (r *Registry) versions() ([]string, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	var vs []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			vs = append(vs, e.Name())
		}
	}
	sort.Slice(vs, func(i, j int) bool { a, _ := strconv.Atoi(vs[i]); b, _ := strconv.Atoi(vs[j]); return a < b })
	return vs, nil
}

// manifest reads a version's manifest and its SHA-256 without loading weights.
func (r *Registry) manifest(version string) (triage.Manifest, string, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, version, "manifest.json"))
	if err != nil {
		return triage.Manifest{}, "", err
	}
	var m triage.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return triage.Manifest{}, "", err
	}
	sum := sha256.Sum256(b)
	return m, hex.EncodeToString(sum[:]), nil
}

// Manifest reads a version's manifest (its validation report) without
// loading the model.
func (r *Registry) Manifest(version string) (triage.Manifest, error) {
	m, _, err := r.manifest(version)
	if err != nil {
		return m, fmt.Errorf("read manifest of %s/%s: %w", r.name, version, err)
	}
	return m, nil
}

// Sync registers every version on disk (new ones as candidates).
func (r *Registry) Sync(ctx context.Context) ([]store.ModelRecord, error) {
	vs, err := r.versions()
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		m, sum, err := r.manifest(v)
		if err != nil || m.Version != v {
			continue // not a version directory, or a broken one: never served
		}
		ok, _ := validated(m)
		if _, err := r.st.RegisterModel(ctx, store.ModelRecord{Name: r.name, Version: v, Path: v, SHA256: sum,
			Stage: StageCandidate, Validated: ok, CreatedAt: time.Now()}); err != nil {
			return nil, fmt.Errorf("registry: register %s/%s: %w", r.name, v, err)
		}
	}
	return r.st.Models(ctx, r.name)
}

// Start decides the serving version: the store's production version, or
// on a first start the newest version on disk, recorded as promoted by the
// system (the bundled model). It returns that version loaded.
func (r *Registry) Start(ctx context.Context) (*triage.Artifact, error) {
	recs, err := r.Sync(ctx)
	if err != nil {
		return nil, err
	}
	prod := ""
	for _, m := range recs {
		if m.Stage == StageProduction {
			prod = m.Version
		}
	}
	if prod == "" {
		if len(recs) == 0 {
			return nil, fmt.Errorf("registry: no versions of %s in %s", r.name, r.dir)
		}
		// An optimised variant (it carries optimize.json) is a candidate
		// by birth: it serves only once promoted through the gate.
		newest := -1
		for _, m := range recs {
			if _, err := os.Stat(filepath.Join(r.dir, m.Version, "optimize.json")); err == nil {
				continue
			}
			if n, _ := strconv.Atoi(m.Version); n > newest {
				newest, prod = n, m.Version
			}
		}
		if prod == "" {
			return nil, fmt.Errorf("registry: no trained (non-candidate) version of %s in %s", r.name, r.dir)
		}
		if err := r.st.SetStage(ctx, r.name, prod, StageProduction, 0, "system", "first start: the newest version on disk", time.Now()); err != nil {
			return nil, err
		}
	}
	art, err := triage.LoadArtifact(filepath.Join(r.dir, prod), r.feat.Spec())
	if err != nil {
		return nil, fmt.Errorf("registry: load production %s/%s: %w", r.name, prod, err)
	}
	r.mu.Lock()
	r.serving = art
	r.mu.Unlock()
	return art, nil
}

// Attach gives the registry the pipeline it swaps versions into, and what
// retires the version serving now.
func (r *Registry) Attach(s Swapper, retire func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.swapper, r.retire = s, retire
}

// Serving is the version answering now.
func (r *Registry) Serving() *triage.Artifact {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.serving
}

// ProductionVersion names the version answering now as answers name it
// ("name/version"); "" before Start.
func (r *Registry) ProductionVersion() string {
	if a := r.Serving(); a != nil {
		return a.Manifest.Name + "/" + a.Manifest.Version
	}
	return ""
}

// ServingVersions names every version answering patients now, production
// first, then a canary ("name/version"); a shadow answers no one.
func (r *Registry) ServingVersions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if r.serving != nil {
		out = append(out, r.serving.Manifest.Name+"/"+r.serving.Manifest.Version)
	}
	if r.canary != "" {
		out = append(out, r.name+"/"+r.canary)
	}
	return out
}

// Promote moves version to stage. Canary and production need a stored
// validation report that passes the gate; production is loaded (checksums
// verified) and swapped in only if it loads: a version that fails to load
// leaves the serving one untouched.
func (r *Registry) Promote(ctx context.Context, version, stage string, percent int, actor, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, sum, err := r.manifest(version)
	if err != nil || m.Version != version {
		return fmt.Errorf("%w: %s/%s", ErrUnknownVersion, r.name, version)
	}
	// A version written to the shared model directory after this replica
	// started (a new training or optimisation run) is registered on first use.
	ok, _ := validated(m)
	if _, err := r.st.RegisterModel(ctx, store.ModelRecord{Name: r.name, Version: version, Path: version, SHA256: sum,
		Stage: StageCandidate, Validated: ok, CreatedAt: time.Now()}); err != nil {
		return fmt.Errorf("registry: register %s/%s: %w", r.name, version, err)
	}
	switch stage {
	case StageProduction, StageCanary:
		if ok, failed := validated(m); !ok {
			return &GateError{Failed: failed}
		}
		if ok, failed := r.optimisedVerdict(version); !ok {
			return &GateError{Failed: failed}
		}
	case StageShadow, StageRetired, StageCandidate:
	default:
		return fmt.Errorf("registry: unknown stage %q", stage)
	}
	switch stage {
	case StageCanary, StageShadow:
		return r.setVariant(ctx, version, stage, percent, actor, reason)
	case StageProduction:
		return r.swapTo(ctx, version, actor, reason)
	}
	if version == r.canary || version == r.shadow {
		r.clearVariant(version)
	}
	return r.st.SetStage(ctx, r.name, version, stage, percent, actor, reason, time.Now())
}

// setVariant loads version and makes it the canary (answering percent %
// of requests) or the shadow (scoring beside production, never answering).
// The caller holds r.mu.
func (r *Registry) setVariant(ctx context.Context, version, stage string, percent int, actor, reason string) error {
	return r.serveVariant(ctx, version, stage, percent, actor, reason, true)
}

func (r *Registry) serveVariant(ctx context.Context, version, stage string, percent int, actor, reason string, record bool) error {
	if r.serving != nil && version == r.serving.Manifest.Version {
		return fmt.Errorf("registry: %s/%s is in production already", r.name, version)
	}
	art, err := triage.LoadArtifact(filepath.Join(r.dir, version), r.feat.Spec())
	if err != nil {
		return fmt.Errorf("registry: load %s/%s (nothing changed): %w", r.name, version, err)
	}
	pr, retire, err := r.predictor(art)
	if err != nil {
		return fmt.Errorf("registry: start %s/%s (nothing changed): %w", r.name, version, err)
	}
	if record {
		if err := r.st.SetStage(ctx, r.name, version, stage, percent, actor, reason, time.Now()); err != nil {
			retire()
			return err
		}
	}
	if r.swapper == nil {
		// No pipeline here (the command line): the store holds the change
		// and the servers follow it when they reconcile.
		retire()
		return nil
	}
	as := triage.NewAssessor(r.feat, art)
	if stage == StageCanary {
		if r.shadow == version {
			r.clearVariant(version)
		}
		r.swapper.SetCanary(as, pr, percent, r.canaryRetire)
		r.canary, r.canaryRetire, r.canaryPercent = version, retire, percent
	} else {
		if r.canary == version {
			r.clearVariant(version)
		}
		r.swapper.SetShadow(as, pr, r.shadowRetire)
		r.shadow, r.shadowRetire = version, retire
	}
	return nil
}

// clearVariant stops version serving as canary or shadow. The caller holds r.mu.
func (r *Registry) clearVariant(version string) {
	if r.swapper == nil {
		return
	}
	if r.canary == version {
		r.swapper.SetCanary(nil, nil, 0, r.canaryRetire)
		r.canary, r.canaryRetire = "", nil
	}
	if r.shadow == version {
		r.swapper.SetShadow(nil, nil, r.shadowRetire)
		r.shadow, r.shadowRetire = "", nil
	}
}

// Resume restores the canary and shadow the store records (after a
// restart): the first Reconcile.
func (r *Registry) Resume(ctx context.Context) error { return r.Reconcile(ctx) }

// Reconcile makes this replica serve what the store says, since another
// replica or `medserve models` may have changed the stages: run it
// periodically (SPEC section 12: the stages live in the store).
func (r *Registry) Reconcile(ctx context.Context) error {
	// Read under the lock: a read taken before a promotion on this replica
	// committed would otherwise undo it.
	r.mu.Lock()
	defer r.mu.Unlock()
	recs, err := r.st.Models(ctx, r.name)
	if err != nil {
		return err
	}
	var prod, canary, shadow string
	percent := 0
	for _, m := range recs {
		switch m.Stage {
		case StageProduction:
			prod = m.Version
		case StageCanary:
			canary, percent = m.Version, m.Percent
		case StageShadow:
			shadow = m.Version
		}
	}
	var errs []error
	if prod != "" && (r.serving == nil || r.serving.Manifest.Version != prod) {
		errs = append(errs, r.serveProduction(ctx, prod, "", "", false))
	}
	switch {
	case canary == "" && r.canary != "":
		r.clearVariant(r.canary)
	case canary != "" && (canary != r.canary || percent != r.canaryPercent):
		errs = append(errs, r.serveVariant(ctx, canary, StageCanary, percent, "", "", false))
	}
	switch {
	case shadow == "" && r.shadow != "":
		r.clearVariant(r.shadow)
	case shadow != "" && shadow != r.shadow:
		errs = append(errs, r.serveVariant(ctx, shadow, StageShadow, 0, "", "", false))
	}
	return errors.Join(errs...)
}

// swapTo loads version, records it as production and swaps it in. The
// caller holds r.mu.
func (r *Registry) swapTo(ctx context.Context, version, actor, reason string) error {
	return r.serveProduction(ctx, version, actor, reason, true)
}

// serveProduction loads version and swaps it in; record says whether this
// is a change to store (false: following a change the store already holds).
func (r *Registry) serveProduction(ctx context.Context, version, actor, reason string, record bool) error {
	art, err := triage.LoadArtifact(filepath.Join(r.dir, version), r.feat.Spec())
	if err != nil {
		return fmt.Errorf("registry: load %s/%s (serving version unchanged): %w", r.name, version, err)
	}
	pr, retire, err := r.predictor(art)
	if err != nil {
		return fmt.Errorf("registry: start %s/%s (serving version unchanged): %w", r.name, version, err)
	}
	if record {
		if err := r.st.SetStage(ctx, r.name, version, StageProduction, 0, actor, reason, time.Now()); err != nil {
			retire()
			return err
		}
	}
	r.clearVariant(version) // a canary or shadow promoted to production serves all traffic now
	if r.swapper != nil {
		r.swapper.Swap(triage.NewAssessor(r.feat, art), pr, r.retire)
	}
	r.serving, r.retire = art, retire
	return nil
}

// Rollback returns production to the most recent earlier production version
// that is validated, and reports which one. It never goes below the oldest
// validated version: with none, ErrNoRollback and nothing changes.
func (r *Registry) Rollback(ctx context.Context, actor, reason string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hist, err := r.st.Promotions(ctx, r.name)
	if err != nil {
		return "", err
	}
	current := ""
	if r.serving != nil {
		current = r.serving.Manifest.Version
	}
	// A version that was rolled back from is never a target again, so a
	// second rollback goes further back rather than forward.
	rolledBack := map[string]bool{current: true}
	for i := len(hist) - 1; i >= 0; i-- {
		p := hist[i]
		// The store records the displaced version as "replaced by <v>: <reason>".
		if p.From == StageProduction && strings.Contains(p.Reason, "rollback:") {
			rolledBack[p.Version] = true
			continue
		}
		if p.To != StageProduction || rolledBack[p.Version] {
			continue
		}
		m, _, err := r.manifest(p.Version)
		if err != nil {
			continue
		}
		if ok, _ := validated(m); !ok {
			continue
		}
		if err := r.swapTo(ctx, p.Version, actor, "rollback: "+reason); err != nil {
			return "", err
		}
		return p.Version, nil
	}
	return "", ErrNoRollback
}

// Close retires the serving version's predictor (at shutdown, after the
// HTTP server has drained).
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range []func(){r.retire, r.canaryRetire, r.shadowRetire} {
		if f != nil {
			f()
		}
	}
	r.retire, r.canaryRetire, r.shadowRetire = nil, nil, nil
}
