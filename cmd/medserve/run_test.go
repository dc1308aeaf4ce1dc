package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
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

func TestInteractionsCLI(t *testing.T) {
	out, stderr, err := runCLI(t, "", "interactions", "--json", "Coumadin 5mg", "ibuprofen", "notadrug")
	if err != nil {
		t.Fatalf("interactions: %v (%s)", err, stderr)
	}
	var rep struct {
		Interactions []struct {
			Drugs    [2]string `json:"drugs"`
			Severity string    `json:"severity"`
			Effect   string    `json:"effect"`
			Source   string    `json:"source"`
		} `json:"interactions"`
		Unknown []string `json:"unknown"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rep.Interactions) != 1 || rep.Interactions[0].Drugs != [2]string{"warfarin", "ibuprofen"} || rep.Interactions[0].Source == "" {
		t.Errorf("interactions %+v", rep.Interactions)
	}
	if len(rep.Unknown) != 1 || rep.Unknown[0] != "notadrug" {
		t.Errorf("unknown %v: an unresolvable drug must be reported, not dropped", rep.Unknown)
	}
	text, _, err := runCLI(t, "", "interactions", "warfarin", "aspirin")
	if err != nil || !strings.Contains(text, "warfarin + aspirin") {
		t.Errorf("text output (%v):\n%s", err, text)
	}
}

func TestDifferentialCLI(t *testing.T) {
	out, stderr, err := runCLI(t, "", "differential", "--json", "--age", "4", "barking cough and stridor, no drooling")
	if err != nil {
		t.Fatalf("differential: %v (%s)", err, stderr)
	}
	var cands []struct {
		Condition   string  `json:"condition"`
		ICD10       string  `json:"icd10"`
		Probability float64 `json:"probability"`
		Severity    int     `json:"severity"`
	}
	if err := json.Unmarshal([]byte(out), &cands); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(cands) == 0 || cands[0].Condition != "Croup" || cands[0].ICD10 != "J05.0" {
		t.Errorf("croup presentation ranked %+v", cands)
	}
	if _, _, err := runCLI(t, "", "differential", "--sex", "robot", "cough"); !errors.Is(err, errUsage) {
		t.Errorf("bad --sex: %v", err)
	}
}

func TestEvalInteractionsCLI(t *testing.T) {
	out, _, err := runCLI(t, "", "eval", "interactions", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Specificity struct {
			N    int     `json:"n"`
			Rate float64 `json:"rate"`
		} `json:"specificity_negative_pairs"`
		Hit   int    `json:"high_priority_detected"`
		Items int    `json:"high_priority_items"`
		Note  string `json:"positives_note"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Items != 15 || ev.Hit != 15 || ev.Specificity.N == 0 || ev.Specificity.Rate < 0.95 || ev.Note == "" {
		t.Errorf("eval interactions: %+v", ev)
	}
}

func TestEvalDifferentialCLI(t *testing.T) {
	out, _, err := runCLI(t, "", "eval", "differential")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "PLUMBING CHECK, NOT CLINICAL") || !strings.Contains(out, "symptom2disease") {
		t.Errorf("eval differential must label itself as a plumbing check:\n%s", out)
	}
}

const bundledModels = "../../models"

func TestTriageCLI(t *testing.T) {
	out, stderr, err := runCLI(t, "", "triage", "--json", "--models", bundledModels, "--age", "58", "--sex", "male", "--sbp", "88", "--hr", "118", "--spo2", "93",
		"crushing chest pain radiating to left arm, sweaty")
	if err != nil {
		t.Fatalf("triage: %v (%s)", err, stderr)
	}
	var a struct {
		Acuity        int                `json:"acuity"`
		Urgency       string             `json:"urgency"`
		Probabilities map[string]float64 `json:"probabilities"`
		SafetyFloor   struct {
			Acuity  int      `json:"acuity"`
			Reasons []string `json:"reasons"`
		} `json:"safety_floor"`
		Scores struct {
			NEWS2      int     `json:"news2"`
			ShockIndex float64 `json:"shock_index"`
		} `json:"scores"`
		ReviewReasons []string `json:"review_reasons"`
		Model         struct{ Name, Version string }
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if a.Acuity < 1 || a.Acuity > a.SafetyFloor.Acuity || a.SafetyFloor.Acuity > 2 || len(a.SafetyFloor.Reasons) == 0 {
		t.Errorf("acuity %d, floor %+v: SBP 88 with chest pain must be at least acuity 2", a.Acuity, a.SafetyFloor)
	}
	want := map[int]string{1: "critical", 2: "high", 3: "medium", 4: "low", 5: "low"}[a.Acuity]
	if a.Urgency != want || len(a.Probabilities) != 5 || a.Scores.ShockIndex != 1.34 || a.Model.Name != "triage" {
		t.Errorf("assessment %+v", a)
	}
	if _, _, err := runCLI(t, "", "triage", "--models", bundledModels, "--spo2", "140", "cough"); !errors.Is(err, errUsage) {
		t.Errorf("SpO2 140 accepted: %v", err)
	}
}

func TestTriageSecondReaderFlagsUnderTriage(t *testing.T) {
	// The nurse says 5 for a hypotensive, hypoxic patient: the floor alone
	// must overrule her and ask for review.
	out, _, err := runCLI(t, "", "triage", "--json", "--models", bundledModels, "--nurse-acuity", "5", "--sbp", "82", "--spo2", "86", "short of breath")
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Acuity         int      `json:"acuity"`
		ReviewRequired bool     `json:"review_required"`
		ReviewReasons  []string `json:"review_reasons"`
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	if a.Acuity > 2 || !a.ReviewRequired || !slices.Contains(a.ReviewReasons, "possible under-triage") {
		t.Errorf("second reader: %+v", a)
	}
}

func TestTriageJSONL(t *testing.T) {
	stdin := `{"query": "abd pain", "patient": {"age": 34, "sex": "female"}, "vitals": {"hr": 88, "avpu": "alert"}, "context": {"arrival_mode": "walk-in", "nurse_acuity": 4}}
{"query": "cough", "vitals": {"spo2": 140}}
{"query": "fever", "bogus": 1}
`
	out, _, err := runCLI(t, stdin, "triage", "--jsonl", "--models", bundledModels)
	if err == nil {
		t.Error("bad lines must fail the command")
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"acuity"`) || !strings.Contains(lines[1], "vitals.spo2") || !strings.Contains(lines[2], "bogus") {
		t.Errorf("output:\n%s", out)
	}
}

func TestTrainAndEvalSavedModel(t *testing.T) {
	t.Parallel() // long and self-contained: runs beside the other long ones
	dir := t.TempDir()
	out, stderr, err := runCLI(t, "", "train", "triage", "--families", "logreg", "--folds", "2", "--bootstrap", "0", "--models", dir, "--version", "7")
	if err != nil {
		t.Fatalf("train: %v (%s)", err, stderr)
	}
	if !strings.Contains(out, "triage/7") {
		t.Errorf("train output %q", out)
	}
	// Score it on a KTAS-format file (the first rows of the bundled data: a
	// plumbing check of the command, not a held-out figure).
	raw, err := os.ReadFile("../../data/ktas-triage/data.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	test := filepath.Join(dir, "test.csv")
	if err := os.WriteFile(test, bytes.Join(lines[:80], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = runCLI(t, "", "eval", "triage", "--model", filepath.Join(dir, "triage", "7"), "--test", test, "--bootstrap", "50", "--json")
	if err != nil {
		t.Fatalf("eval: %v (%s)", err, stderr)
	}
	var ev struct {
		Rows         int `json:"rows"`
		SecondReader struct {
			Metrics struct {
				N int `json:"n"`
			} `json:"metrics"`
		} `json:"second_reader"`
		Gate struct {
			Mode string `json:"mode"`
		} `json:"gate_second_reader"`
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Rows != 79 || ev.SecondReader.Metrics.N != 79 || ev.Gate.Mode != "second-reader" {
		t.Errorf("eval of saved model: %+v", ev)
	}
	// A tampered model file is refused.
	if err := os.WriteFile(filepath.Join(dir, "triage", "7", "report.md"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "", "eval", "triage", "--model", filepath.Join(dir, "triage", "7"), "--test", test); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("tampered model: %v", err)
	}
}

func TestMigrateSQLite(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		out, stderr, err := runCLI(t, "", "migrate", "--data-dir", dir)
		if err != nil || !strings.Contains(out, "migrated sqlite") {
			t.Fatalf("migrate #%d: %v %s %s", i+1, err, out, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "medserve.db")); err != nil {
		t.Fatal(err)
	}
}
