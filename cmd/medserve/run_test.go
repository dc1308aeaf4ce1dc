package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	err := runWithInput(context.Background(), append([]string{"medserve"}, args...), getenv, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

type jsonFinding struct {
	Text       string `json:"text"`
	Type       string `json:"type"`
	Code       string `json:"code"`
	Target     string `json:"target"`
	Negated    bool   `json:"negated"`
	Historical bool   `json:"historical"`
	Span       [2]int `json:"span"`
}

type jsonAnalysisOut struct {
	Findings    []jsonFinding              `json:"findings"`
	Vitals      map[string]float64         `json:"vitals"`
	Quantities  []map[string]any           `json:"quantities"`
	Implausible []map[string]any           `json:"implausible"`
	Domain      string                     `json:"domain"`
	Extra       map[string]json.RawMessage `json:"-"`
}

func TestAnalyzeJSON(t *testing.T) {
	in := "Denies chest pain. BP 88/54, HR 118."
	out, stderr, err := runCLI(t, "", "analyze", "--json", "--target", "chest pain", in)
	if err != nil {
		t.Fatalf("analyze: %v (%s)", err, stderr)
	}
	var a jsonAnalysisOut
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	var target *jsonFinding
	for i := range a.Findings {
		if a.Findings[i].Type == "TARGET" {
			target = &a.Findings[i]
			break
		}
	}
	if target == nil || !target.Negated || target.Text != "chest pain" || in[target.Span[0]:target.Span[1]] != "chest pain" {
		t.Fatalf("target finding %+v", target)
	}
	if a.Vitals["sbp"] != 88 || a.Vitals["dbp"] != 54 || a.Vitals["hr"] != 118 {
		t.Errorf("vitals %v", a.Vitals)
	}
	if a.Quantities == nil || a.Implausible == nil {
		t.Error("quantities and implausible must be [] when empty, not null")
	}
	if a.Domain == "" {
		t.Error("domain missing")
	}
}

func TestAnalyzeJSONL(t *testing.T) {
	stdin := `{"text": "No fever.", "targets": ["fever"]}
{"text": "History of stroke.", "targets": ["stroke"]}
`
	out, stderr, err := runCLI(t, stdin, "analyze", "--jsonl")
	if err != nil {
		t.Fatalf("analyze --jsonl: %v (%s)", err, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	var lines []jsonAnalysisOut
	for sc.Scan() {
		var a jsonAnalysisOut
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, a)
	}
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out)
	}
	check := func(a jsonAnalysisOut, target string, neg, hist bool) {
		for _, f := range a.Findings {
			if f.Type == "TARGET" && f.Target == target {
				if f.Negated != neg || f.Historical != hist {
					t.Errorf("%s: negated %v historical %v", target, f.Negated, f.Historical)
				}
				return
			}
		}
		t.Errorf("target %s not reported", target)
	}
	check(lines[0], "fever", true, false)
	check(lines[1], "stroke", false, true)
}

func TestAnalyzeJSONLBadLines(t *testing.T) {
	stdin := "{\"text\": \"cough\"}\nnot json\n{\"text\": \"x\", \"unknown\": 1}\n"
	out, _, err := runCLI(t, stdin, "analyze", "--jsonl")
	if err == nil {
		t.Fatal("want an error for bad lines")
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if len(got) != 3 || !strings.Contains(got[1], `"error"`) || !strings.Contains(got[2], `"error"`) || strings.Contains(got[0], `"error"`) {
		t.Errorf("output lines must stay aligned with input:\n%s", out)
	}
}

func TestEvalNegation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "set.txt")
	content := "id\tconcept\tsentence\tneg\ttemp\texp\n" +
		"1\tfever\tPatient denies FEVER.\tNegated\tRecent\tPatient\n" +
		"2\tcough\tProductive COUGH for 3 days.\tAffirmed\tRecent\tPatient\n" +
		"3\tabsent thing\tNothing here.\tAffirmed\tRecent\tPatient\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runCLI(t, "", "eval", "negation", "--file", file, "--json")
	if err != nil {
		t.Fatalf("eval: %v (%s)", err, stderr)
	}
	var s struct {
		Items, Scored int
		NotFound      int `json:"not_found"`
		Negated       struct {
			TP, TN int
			F1     float64
		}
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if s.Items != 3 || s.Scored != 2 || s.NotFound != 1 || s.Negated.TP != 1 || s.Negated.TN != 1 || s.Negated.F1 != 1 {
		t.Errorf("report %+v\n%s", s, out)
	}
	text, _, err := runCLI(t, "", "eval", "negation", "--file", file)
	if err != nil || !strings.Contains(text, "not found") || !strings.Contains(text, "Negated") {
		t.Errorf("text report (%v):\n%s", err, text)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"analyze"}, {"eval"}, {"eval", "negation"}, {"analyze", "--bogus", "x"}} {
		_, _, err := runCLI(t, "", args...)
		if !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v, want usage error", args, err)
		}
	}
}

func TestLexiconStats(t *testing.T) {
	out, _, err := runCLI(t, "", "lexicon")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Phrases int            `json:"phrases"`
		ByType  map[string]int `json:"concepts_by_type"`
		Rules   int            `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"SYMPTOM", "DISEASE", "DRUG", "ANATOMY"} {
		if s.ByType[typ] == 0 {
			t.Errorf("no %s concepts: %v", typ, s.ByType)
		}
	}
	if s.Rules < 300 {
		t.Errorf("only %d ConText rules", s.Rules)
	}
}
