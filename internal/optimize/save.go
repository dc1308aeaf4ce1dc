package optimize

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"medserve/internal/triage"
)

// Provenance is optimize.json in a candidate version: where the version
// came from and how it was judged. The manifest carries the same parent
// and method fields for readers that look only there.
type Provenance struct {
	Parent string `json:"parent"` // parent version
	Method string `json:"method"`
	// Variant and Runtime say which optimization and which way of running
	// it the figures are for.
	Variant string `json:"variant"`
	Runtime string `json:"runtime"`
	// ModelFile is the file that runtime loads: model.json (stock) or
	// model.opt.json (this package's format).
	ModelFile string          `json:"model_file"`
	Report    CandidateReport `json:"report"`
	Config    Config          `json:"config"`
}

// candidateManifest is triage.Manifest plus the provenance fields; old
// readers ignore the extra keys, so the manifest stays loadable.
type candidateManifest struct {
	triage.Manifest
	Parent string `json:"parent"`
	Method string `json:"method"`
}

// Save writes every passing candidate as a new candidate version under
// modelsDir/<name>/, numbered after the highest existing version, and sets
// its Version in the report. Its decision policy is tuned as the parent's
// was: on out-of-fold predictions of all rows, each inner fold's parent
// optimized on its own training rows. Failing candidates are not written.
func (res *Result) Save(ctx context.Context, modelsDir string, parent triage.Manifest) ([]string, error) {
	var passing []int
	for c := range res.Report.Candidates {
		if res.Report.Candidates[c].Passed {
			passing = append(passing, c)
		}
	}
	if len(passing) == 0 {
		return nil, nil
	}
	r := &runner{in: res.in, cfg: res.cfg}
	for _, b := range res.final {
		r.keys = append(r.keys, b.key())
		var names []string
		for _, rt := range b.runtimes {
			names = append(names, rt.name)
		}
		r.rtName = append(r.rtName, names)
	}
	res.cfg.progress("tuning the passing candidates' policies on all rows…")
	fit, err := r.fitAll(ctx, res.in.Examples, res.in.Train, res.in.Parent)
	if err != nil {
		return nil, fmt.Errorf("optimize: save: %w", err)
	}
	dir := filepath.Join(modelsDir, res.in.Name)
	next, err := nextVersion(dir)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, c := range passing {
		cr := &res.Report.Candidates[c]
		b := res.final[c]
		rt := b.runtimes[res.chosen[c]]
		version := strconv.Itoa(next)
		next++
		cr.Version = &version
		man := parent
		man.Version, man.Created, man.Files = version, "", nil
		man.Family = b.stock.Family()
		man.Policy = fit.candPolicy[c][res.chosen[c]]
		gate := cr.Gate
		man.Gate, man.GateConfig = &gate, res.cfg.Gate
		man.Validation = map[string]any{
			"method":        fmt.Sprintf("%s of version %s, redone inside each of %d cross-validation folds on %s", cr.Method, res.in.Version, res.cfg.Folds, res.in.Data.File),
			"second_reader": cr.SecondReader, "model_alone": cr.ModelAlone,
			"accuracy_retention": cr.AccuracyRetention, "agreement": cr.Agreement,
		}
		prov := Provenance{Parent: res.in.Version, Method: cr.Method, Variant: cr.Variant, Runtime: rt.name, ModelFile: "model.json", Report: *cr, Config: res.cfg}
		extra := map[string][]byte{}
		if rt.name != RuntimeStock {
			prov.ModelFile = "model.opt.json"
			extra["model.opt.json"] = rt.data
		}
		pb, err := json.MarshalIndent(prov, "", "  ")
		if err != nil {
			return written, fmt.Errorf("optimize: save: %w", err)
		}
		extra["optimize.json"] = append(pb, '\n')
		vdir := filepath.Join(dir, version)
		if err := triage.SaveArtifact(vdir, man, b.stock, extra); err != nil {
			return written, fmt.Errorf("optimize: save %s: %w", vdir, err)
		}
		if err := addProvenance(vdir, res.in.Version, cr.Method); err != nil {
			return written, err
		}
		written = append(written, vdir)
	}
	return written, nil
}

// addProvenance rewrites the manifest SaveArtifact wrote with the parent
// and method fields added. The manifest is not among its own checksums.
func addProvenance(dir, parent, method string) error {
	path := filepath.Join(dir, "manifest.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("optimize: save: %w", err)
	}
	cm := candidateManifest{Parent: parent, Method: method}
	if err := json.Unmarshal(raw, &cm.Manifest); err != nil {
		return fmt.Errorf("optimize: save: %w", err)
	}
	b, err := json.MarshalIndent(cm, "", "  ")
	if err != nil {
		return fmt.Errorf("optimize: save: %w", err)
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// nextVersion is one more than the highest numeric version directory in dir.
func nextVersion(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("optimize: %w", err)
	}
	best := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && n > best {
			best = n
		}
	}
	return best + 1, nil
}

// IsCandidate reports whether a version directory holds an optimized
// candidate (optimize.json), and of which parent.
func IsCandidate(dir string) (bool, string) {
	b, err := os.ReadFile(filepath.Join(dir, "optimize.json"))
	if err != nil {
		return false, ""
	}
	var p Provenance
	if json.Unmarshal(b, &p) != nil {
		return true, ""
	}
	return true, p.Parent
}
