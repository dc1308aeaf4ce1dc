package optimize

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"medserve/internal/model"
	"medserve/internal/triage"
	"medserve/internal/validate"
)

// synthSpec is a feature spec whose dimension is synthDim, so a synthetic
// model can be saved and loaded as a triage artifact.
var synthSpec = triage.FeatureSpec{Version: 1, HashBits: 6, Dense: []string{"a", "b", "c", "d"}}

func TestOptimizeRunAndSave(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" { // CI always runs it
		t.Skip("trains and benchmarks")
	}
	fastBench(t)
	ex := synthExamples(240, 21)
	tc := synthRecipe(model.FamilyGBT)
	fit, err := triage.Fit(ex, synthDim, tc)
	if err != nil {
		t.Fatal(err)
	}
	models := t.TempDir()
	lenient := validate.GateConfig{MinSafetyScore: 0, MaxFNR: 1}
	man := triage.Manifest{Name: "triage", Version: "1", Family: model.FamilyGBT, Features: synthSpec, Labels: []string{"1", "2", "3", "4", "5"},
		Policy: fit.Policy, Train: tc, GateConfig: lenient}
	if err := triage.SaveArtifact(filepath.Join(models, "triage", "1"), man, fit.Model, nil); err != nil {
		t.Fatal(err)
	}
	art, err := triage.LoadArtifact(filepath.Join(models, "triage", "1"), synthSpec)
	if err != nil {
		t.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.Folds, cfg.Bootstrap = 2, 0
	cfg.Gate, cfg.MinRetention, cfg.MinAgreement = lenient, 0, 0
	cfg.Distill.Epochs = 10
	in := Input{Name: "triage", Version: "1", Parent: art.Model, Train: tc, Examples: ex, Dim: synthDim, Data: DataInfo{File: "synthetic", MatchesParent: true}}
	res, err := Run(context.Background(), in, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Report
	var keys []string
	for _, c := range rep.Candidates {
		keys = append(keys, c.Method+"/"+c.Variant)
		if !c.Passed || c.Version != nil {
			t.Errorf("%s/%s: passed %v (failed %q), version %v before saving", c.Method, c.Variant, c.Passed, c.Failed, c.Version)
		}
		if c.Agreement < 0 || c.Agreement > 1 || c.AccuracyRetention <= 0 || c.LatencyBatch1Ns <= 0 || c.Bytes <= 0 || c.MemoryBytes <= 0 {
			t.Errorf("%s/%s: implausible figures %+v", c.Method, c.Variant, c.Measured)
		}
		if c.Method == MethodInt8 && c.Agreement < 0.9 {
			t.Errorf("int8 agrees with its parent on only %.3f of rows", c.Agreement)
		}
	}
	if got := strings.Join(keys, " "); got != "int8/trees prune/rounds prune/rounds+refit distill/mlp" {
		t.Errorf("candidates %s", got)
	}
	if rep.Parent.Params != fit.Model.Params() || rep.Parent.GatePassed != true {
		t.Errorf("parent %+v", rep.Parent.Measured)
	}

	written, err := res.Save(context.Background(), models, art.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != len(rep.Candidates) {
		t.Fatalf("wrote %d versions for %d passing candidates", len(written), len(rep.Candidates))
	}
	for i, dir := range written {
		c := rep.Candidates[i]
		if c.Version == nil || filepath.Base(dir) != *c.Version || *c.Version != []string{"2", "3", "4", "5"}[i] {
			t.Errorf("candidate %d written to %s as version %v", i, dir, c.Version)
		}
		loaded, err := triage.LoadArtifact(dir, synthSpec)
		if err != nil {
			t.Fatalf("candidate version does not load: %v", err)
		}
		if cand, parent := IsCandidate(dir); !cand || parent != "1" {
			t.Errorf("%s: IsCandidate = %v, %q", dir, cand, parent)
		}
		raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		var extra struct{ Parent, Method string }
		if err := json.Unmarshal(raw, &extra); err != nil || extra.Parent != "1" || extra.Method != c.Method {
			t.Errorf("manifest provenance %+v (%v)", extra, err)
		}
		if _, ok := loaded.Manifest.Files["optimize.json"]; !ok {
			t.Error("optimize.json is not checksummed in the manifest")
		}
		if c.Runtime != RuntimeStock {
			b, err := os.ReadFile(filepath.Join(dir, "model.opt.json"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Unmarshal(b); err != nil {
				t.Errorf("model.opt.json: %v", err)
			}
		}
	}
	if text := rep.Text(); !strings.Contains(text, "written as version 2") || !strings.Contains(text, "| parent v1 gbt |") {
		t.Errorf("text report:\n%s", text)
	}
}
