package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"medserve/internal/optimize"
	"medserve/internal/triage"
)

// optimizeFixture copies the bundled model version into a temporary
// models directory (with gateCfg as its gate configuration when non-nil)
// and writes the first rows of the bundled KTAS file, so a test never
// touches the repository's models/.
func optimizeFixture(t *testing.T, rows int, gateCfg map[string]float64) (models, data string) {
	t.Helper()
	models = filepath.Join(t.TempDir(), "models")
	src := filepath.Join("..", "..", "models", "triage", "1")
	dst := filepath.Join(models, "triage", "1")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(src, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if en.Name() == "manifest.json" && gateCfg != nil {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["gate_config"] = gateCfg
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, en.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "data", "ktas-triage", "data.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	data = filepath.Join(t.TempDir(), "ktas-subset.csv")
	if err := os.WriteFile(data, bytes.Join(lines[:min(rows+1, len(lines))], nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return models, data
}

// fastBenchmarks makes testing.Benchmark run a fixed, small number of
// iterations for the rest of the test.
func fastBenchmarks(t *testing.T) {
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

func TestOptimizeCommand(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" { // CI always runs it
		t.Skip("cross-validates and benchmarks")
	}
	fastBenchmarks(t)
	lenient := map[string]float64{"min_accuracy": 0, "min_sensitivity": 0, "min_specificity": 0, "max_fnr": 1, "min_kappa": 0, "min_safety_score": 0}
	models, data := optimizeFixture(t, 300, lenient)
	out := filepath.Join(t.TempDir(), "report")
	stdout, stderr, err := runCLI(t, "", "optimize", "--model", "triage", "--methods", "int8,prune,distill", "--models", models,
		"--data", data, "--folds", "2", "--bootstrap", "0", "--min-retention", "0", "--min-agreement", "0", "--json", "--out", out)
	if err != nil {
		t.Fatalf("optimize: %v\n%s", err, stderr)
	}
	var rep struct {
		Parent     map[string]json.RawMessage   `json:"parent"`
		Candidates []map[string]json.RawMessage `json:"candidates"`
		Data       struct {
			Rows          int  `json:"rows"`
			MatchesParent bool `json:"matches_parent"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if rep.Data.Rows != 300 || rep.Data.MatchesParent {
		t.Errorf("data %+v: want 300 rows, not the parent's data set", rep.Data)
	}
	for _, k := range []string{"version", "family", "params", "bytes", "memory_bytes", "latency_batch1_ns", "throughput_batch64", "gate", "gate_passed"} {
		if _, ok := rep.Parent[k]; !ok {
			t.Errorf("parent lacks %q", k)
		}
	}
	methods := map[string]bool{}
	_, feat, err := triageDeps("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Candidates {
		for _, k := range []string{"method", "version", "params", "bytes", "memory_reduction", "speedup_batch1", "speedup_batch64",
			"accuracy_retention", "agreement", "gate", "gate_passed", "passed", "notes", "runtimes", "target"} {
			if _, ok := c[k]; !ok {
				t.Errorf("candidate lacks %q: %s", k, c["method"])
			}
		}
		var method, version string
		var passed bool
		_ = json.Unmarshal(c["method"], &method)
		_ = json.Unmarshal(c["passed"], &passed)
		methods[method] = true
		if err := json.Unmarshal(c["version"], &version); err != nil || !passed {
			t.Errorf("%s: passed %v, version %s — with a lenient gate every candidate passes and is written", method, passed, c["version"])
			continue
		}
		dir := filepath.Join(models, "triage", version)
		if _, err := triage.LoadArtifact(dir, feat.Spec()); err != nil {
			t.Errorf("%s: written version does not load: %v", method, err)
		}
		if cand, parent := optimize.IsCandidate(dir); !cand || parent != "1" {
			t.Errorf("%s: %s is not marked as a candidate of version 1", method, dir)
		}
	}
	for _, m := range []string{"int8", "prune", "distill"} {
		if !methods[m] {
			t.Errorf("no %s candidate in the report", m)
		}
	}
	for _, f := range []string{"report.json", "report.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("--out: %v", err)
		}
	}
	// The newest version is now a candidate: the default parent stays 1,
	// and a candidate cannot be optimized again.
	dir, err := parentVersionDir(filepath.Join(models, "triage"), "")
	if err != nil || filepath.Base(dir) != "1" {
		t.Errorf("default parent %s (%v), want version 1", dir, err)
	}
	if _, _, err := runCLI(t, "", "optimize", "--models", models, "--version", "2", "--data", data); err == nil || !strings.Contains(err.Error(), "itself an optimized candidate") {
		t.Errorf("optimizing a candidate: %v", err)
	}
}

func TestOptimizeUsage(t *testing.T) {
	models, _ := optimizeFixture(t, 0, nil)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown model", []string{"--model", "negation"}, "usage"},
		{"unknown method", []string{"--methods", "int4"}, "unknown method"},
		{"missing version", []string{"--version", "9"}, "version 9"},
		{"stray argument", []string{"triage"}, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"optimize", "--models", models}, tt.args...)
			_, _, err := runCLI(t, "", args...)
			if err == nil || (tt.want == "usage" && !errors.Is(err, errUsage)) || (tt.want != "usage" && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
}
