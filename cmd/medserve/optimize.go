package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"medserve/internal/optimize"
	"medserve/internal/triage"
	"medserve/internal/validate"
)

const optimizeUsage = "Usage: medserve optimize --model triage [--version N] --methods int8,prune,distill [--models DIR] [--json] [--out DIR] [--folds K]"

// cmdOptimize builds int8, pruned and distilled candidates of a model
// version, judges them by cross-validation against the parent, writes the
// passing ones as new candidate versions and prints the report.
func cmdOptimize(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("optimize", flag.ContinueOnError)
	name := fset.String("model", "triage", "model to optimize (only triage has a training recipe)")
	version := fset.String("version", "", "parent version (default: the newest version that is not itself an optimized candidate)")
	methods := fset.String("methods", "int8,prune,distill", "optimizations to try: int8, prune, distill")
	asJSON := fset.Bool("json", false, "print the report as JSON")
	out := fset.String("out", "", "also write report.json and report.md into this directory")
	def := optimize.DefaultConfig()
	folds := fset.Int("folds", def.Folds, "cross-validation folds (the parent's validation used 5)")
	bootstrap := fset.Int("bootstrap", def.Bootstrap, "bootstrap resamples for the 95% intervals")
	minRetention := fset.Float64("min-retention", def.MinRetention, "pass threshold: candidate accuracy ÷ parent accuracy")
	minAgreement := fset.Float64("min-agreement", def.MinAgreement, "pass threshold: share of rows with the parent's final acuity")
	data := fset.String("data", "", "KTAS-format development rows (default: the bundled rows the parent was trained on)")
	models := modelsFlag(fset, e.getenv)
	dataDir := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		fmt.Fprintln(e.stderr, optimizeUsage)
		return errUsage
	}
	if *name != "triage" {
		fmt.Fprintf(e.stderr, "optimize: model %q has no training recipe to cross-validate (only triage)\n%s\n", *name, optimizeUsage)
		return errUsage
	}
	cfg := def
	cfg.Methods = nil
	for _, m := range strings.Split(*methods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			cfg.Methods = append(cfg.Methods, m)
		}
	}
	cfg.Folds, cfg.Bootstrap, cfg.MinRetention, cfg.MinAgreement = *folds, *bootstrap, *minRetention, *minAgreement
	cfg.Progress = e.stderr
	if err := cfg.Check(); err != nil {
		return err
	}

	fsys, feat, err := triageDeps(*dataDir)
	if err != nil {
		return err
	}
	root := filepath.Join(*models, *name)
	dir, err := parentVersionDir(root, *version)
	if err != nil {
		return err
	}
	if cand, parent := optimize.IsCandidate(dir); cand {
		return fmt.Errorf("optimize: %s is itself an optimized candidate (of version %s); optimize its parent instead", dir, parent)
	}
	art, err := triage.LoadArtifact(dir, feat.Spec())
	if err != nil {
		return err
	}
	man := art.Manifest
	if man.GateConfig != (validate.GateConfig{}) {
		cfg.Gate = man.GateConfig
	}
	train := man.Train
	if train.Family == "" {
		train = triage.DefaultTrainConfig(man.Family)
	}
	cases, sum, _, err := readKTAS(fsys, *data)
	if err != nil {
		return err
	}
	in := optimize.Input{
		Name: *name, Version: filepath.Base(dir), Parent: art.Model, Train: train,
		Examples: triage.Examples(feat, cases), Dim: feat.Spec().Dim(), ManifestGate: man.Gate,
		Data: optimize.DataInfo{File: nonEmpty(*data, "data/"+ktasFile), SHA256: sum, MatchesParent: sum == man.DataSHA256},
	}
	res, err := optimize.Run(ctx, in, cfg)
	if err != nil {
		return err
	}
	written, err := res.Save(ctx, *models, man)
	if err != nil {
		return err
	}
	for _, w := range written {
		fmt.Fprintf(e.stderr, "wrote candidate version %s\n", w)
	}
	rep := res.Report
	if *out != "" {
		if err := writeOptimizeReport(*out, rep); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(e.stdout, rep)
	}
	_, err = io.WriteString(e.stdout, rep.Text())
	return err
}

// parentVersionDir picks the version to optimize: the one asked for, or
// the newest version that is not itself an optimized candidate.
func parentVersionDir(root, version string) (string, error) {
	if version != "" {
		dir := filepath.Join(root, version)
		if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err != nil {
			return "", fmt.Errorf("optimize: version %s: %w", version, err)
		}
		return dir, nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("optimize: no model versions in %s: %w", root, err)
	}
	best, bestN := "", -1
	for _, en := range entries {
		n, err := strconv.Atoi(en.Name())
		if err != nil || !en.IsDir() || n <= bestN {
			continue
		}
		if cand, _ := optimize.IsCandidate(filepath.Join(root, en.Name())); cand {
			continue
		}
		best, bestN = en.Name(), n
	}
	if best == "" {
		return "", fmt.Errorf("optimize: no trained model version in %s (run \"medserve train triage\")", root)
	}
	return filepath.Join(root, best), nil
}

func writeOptimizeReport(dir string, rep *optimize.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("optimize: --out: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("optimize: --out: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("optimize: --out: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(rep.Text()), 0o644); err != nil {
		return fmt.Errorf("optimize: --out: %w", err)
	}
	return nil
}
