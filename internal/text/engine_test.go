package text

import (
	"io/fs"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"medserve"
	"medserve/internal/clinical"
)

var (
	testEngineOnce sync.Once
	testEngine     *Engine
	testEngineErr  error
)

// engine loads the real lexicon and rules once for all tests.
func engine(t testing.TB) *Engine {
	t.Helper()
	testEngineOnce.Do(func() {
		data, err := fs.Sub(medserve.Data, "data")
		if err != nil {
			testEngineErr = err
			return
		}
		testEngine, testEngineErr = Load(data)
	})
	if testEngineErr != nil {
		t.Fatalf("load engine: %v", testEngineErr)
	}
	return testEngine
}

func flagString(f clinical.Finding) string {
	var fl []string
	if f.Negated {
		fl = append(fl, "negated")
	}
	if f.Possible {
		fl = append(fl, "possible")
	}
	if f.Historical {
		fl = append(fl, "historical")
	}
	if f.Hypothetical {
		fl = append(fl, "hypothetical")
	}
	if f.Family {
		fl = append(fl, "family")
	}
	if len(fl) == 0 {
		return "affirmed"
	}
	return strings.Join(fl, ",")
}

func firstTarget(fs []clinical.Finding) (clinical.Finding, bool) {
	for _, f := range fs {
		if f.Type == clinical.Target {
			return f, true
		}
	}
	return clinical.Finding{}, false
}

func TestContextFlags(t *testing.T) {
	e := engine(t)
	tests := []struct {
		text, target, want string
	}{
		{"Patient denies chest pain.", "chest pain", "negated"},
		{"No fever, chills or night sweats.", "night sweats", "negated"},
		{"Chest pain was ruled out.", "chest pain", "negated"},
		{"Pneumonia is unlikely.", "pneumonia", "negated"},
		{"Extremities: No edema or cyanosis.", "cyanosis", "negated"},
		{"Hematuria: none.", "hematuria", "negated"},
		{"ROS is negative for bleeding.", "bleeding", "negated"},
		{"ROS is -ve for bleeding.", "bleeding", "negated"},
		{"ROS is +ve for bleeding.", "bleeding", "affirmed"},
		// Pseudo-triggers block the negation they contain.
		{"No increase in pain since yesterday.", "pain", "affirmed"},
		{"Gram negative rods in the urine culture.", "rods", "affirmed"},
		// A terminator ends the scope.
		{"No fever but has productive cough.", "productive cough", "affirmed"},
		{"No biliary dilatation and positive for cholelithiasis.", "cholelithiasis", "affirmed"},
		// A semicolon ends every scope.
		{"Denies chest pain; mother had breast cancer.", "breast cancer", "family"},
		// Scope ends at the sentence end.
		{"No fever. Cough for three days.", "cough", "affirmed"},
		{"Dr. Smith saw him. He denies dyspnea.", "dyspnea", "negated"},
		// Possible existence: rule out is doubt, not negation.
		{"Rule out pneumonia.", "pneumonia", "possible"},
		{"CXR suspicious for pneumonia.", "pneumonia", "possible"},
		{"Possible appendicitis.", "appendicitis", "possible"},
		// Historical, hypothetical, family.
		{"History of myocardial infarction in 2010.", "myocardial infarction", "historical"},
		{"Status post appendectomy.", "appendectomy", "historical"},
		{"Return if chest pain recurs.", "chest pain", "hypothetical"},
		{"Mother had breast cancer.", "breast cancer", "family"},
		{"Family history of diabetes.", "diabetes", "historical,family"},
		// A return to the present ends a historical scope.
		{"Hx of MI, now melena for two days.", "melena", "affirmed"},
		{"Hx of MI, now melena for two days.", "MI", "historical"},
		// Plain affirmed.
		{"Crushing chest pain radiating to the left arm.", "chest pain", "affirmed"},
		// Section headers in capitals end a scope even without a period.
		{"XRAY CHEST WITHOUT CONTRAST  CLINICAL HISTORY:  Pneumonia.", "pneumonia", "affirmed"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			a := e.Analyze(tt.text, Options{Targets: []string{tt.target}})
			f, ok := firstTarget(a.Findings)
			if !ok {
				t.Fatalf("target %q not found in %q", tt.target, tt.text)
			}
			if got := flagString(f); got != tt.want {
				t.Errorf("%q in %q: got %s, want %s", tt.target, tt.text, got, tt.want)
			}
		})
	}
}

func TestSections(t *testing.T) {
	e := engine(t)
	note := "PAST MEDICAL HISTORY: Diabetes. Asthma.\n" +
		"FAMILY HISTORY: Breast cancer.\n" +
		"HISTORY OF PRESENT ILLNESS: Cough for two days.\n" +
		"CLINICAL HISTORY: Pneumonia."
	tests := []struct{ target, want string }{
		{"diabetes", "historical"},
		{"asthma", "historical"}, // the section reaches past the first sentence
		{"breast cancer", "family"},
		{"cough", "affirmed"}, // a new header ends the section
		{"pneumonia", "affirmed"},
	}
	for _, tt := range tests {
		a := e.Analyze(note, Options{Targets: []string{tt.target}})
		f, ok := firstTarget(a.Findings)
		if !ok {
			t.Fatalf("%s not found", tt.target)
		}
		if got := flagString(f); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.target, got, tt.want)
		}
	}
}

func TestTargetsFirstOccurrenceAndSpans(t *testing.T) {
	e := engine(t)
	text := "Chest pain yesterday; no chest pain today. CHEST  PAIN again?"
	a := e.Analyze(text, Options{Targets: []string{"chest pain"}})
	var targets []clinical.Finding
	for _, f := range a.Findings {
		if f.Type == clinical.Target {
			targets = append(targets, f)
		}
	}
	if len(targets) != 3 {
		t.Fatalf("got %d target findings, want 3: %+v", len(targets), targets)
	}
	wantText := []string{"Chest pain", "chest pain", "CHEST  PAIN"}
	for i, f := range targets {
		if f.Text != wantText[i] || text[f.Span[0]:f.Span[1]] != f.Text {
			t.Errorf("target %d: text %q span %v, want %q", i, f.Text, f.Span, wantText[i])
		}
		if f.Target != "chest pain" {
			t.Errorf("target %d: target %q", i, f.Target)
		}
	}
	if targets[0].Negated || !targets[1].Negated || targets[2].Negated {
		t.Errorf("negation by occurrence: %v %v %v, want false true false", targets[0].Negated, targets[1].Negated, targets[2].Negated)
	}
	if targets[0].Span[0] > targets[1].Span[0] {
		t.Error("targets not in text order")
	}
}

func TestTargetToleratesPunctuationAndPlurals(t *testing.T) {
	e := engine(t)
	a := e.Analyze("Pt has left-sided weakness and rashes.", Options{Targets: []string{"left sided weakness", "rash"}})
	found := map[string]string{}
	for _, f := range a.Findings {
		if f.Type == clinical.Target {
			found[f.Target] = f.Text
		}
	}
	if found["left sided weakness"] != "left-sided weakness" || found["rash"] != "rashes" {
		t.Errorf("targets found %v", found)
	}
}

func TestSpansAlwaysInRange(t *testing.T) {
	e := engine(t)
	inputs := []string{
		"",
		"   ",
		"\x00\x01\x02 chest pain \xff\xfe",
		"no no no no no no no no fever",
		strings.Repeat("denies ", 2000) + "chest pain",
		"pain\u00a0chest — naïve façade fever",
		"n/v/d s/p r/o -ve +ve",
	}
	for _, in := range inputs {
		a := e.Analyze(in, Options{Targets: []string{"chest pain", "fever", "x"}})
		for _, f := range a.Findings {
			if f.Span[0] < 0 || f.Span[1] > len(in) || f.Span[0] > f.Span[1] {
				t.Fatalf("span %v out of range for %q", f.Span, in)
			}
			if in[f.Span[0]:f.Span[1]] != f.Text {
				t.Fatalf("text %q does not match span %v", f.Text, f.Span)
			}
		}
	}
}

func TestDeeplyRepeatedTriggersStayLinear(t *testing.T) {
	e := engine(t)
	// 1 MiB of alternating triggers: must finish and flag the last finding.
	text := strings.Repeat("no denies without ", (1<<20)/18) + "fever"
	a := e.Analyze(text, Options{Targets: []string{"fever"}})
	f, ok := firstTarget(a.Findings)
	if !ok || !f.Negated {
		t.Fatalf("fever after repeated triggers: found %v, finding %+v", ok, f)
	}
}

func TestInvalidUTF8(t *testing.T) {
	e := engine(t)
	in := "chest\xffpain \xc3\x28 fever"
	a := e.Analyze(in, Options{})
	for _, f := range a.Findings {
		if !utf8.ValidString(f.Text) {
			// Findings may carry the input's bytes; they must still be in range.
			if f.Span[1] > len(in) {
				t.Fatalf("bad span %v", f.Span)
			}
		}
	}
}

func TestSentenceSplitting(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Seen by Dr. Smith. Denies fever.", []string{"Seen by Dr. Smith.", "Denies fever."}},
		{"Metoprolol 2.5 mg b.i.d. for HTN. No chest pain.", []string{"Metoprolol 2.5 mg b.i.d. for HTN.", "No chest pain."}},
		{"Given 1 tab p.o. q.d. Follow up.", []string{"Given 1 tab p.o. q.d. Follow up."}},
		{"ant. chest pain", []string{"ant. chest pain"}},
		{"Fever?  Yes!  Cough.", []string{"Fever?", "Yes!", "Cough."}},
		{"line one\n\nline two", []string{"line one", "line two"}},
		{"Meds:\n- aspirin\n- warfarin", []string{"Meds:", "- aspirin", "- warfarin"}},
		{"EXAM:  normal  CLINICAL HISTORY:  cough", []string{"EXAM:  normal", "CLINICAL HISTORY:  cough"}},
		{"BP: 120/80 and HR: 80", []string{"BP: 120/80 and HR: 80"}},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range splitSentences(nil, tt.in) {
			got = append(got, tt.in[r[0]:r[1]])
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("splitSentences(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTokenizer(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"abd. pain", "abd pain"},
		{"pain, chest", "pain chest"},
		{"n/v x2 days", "n/v x2 days"},
		{"s/p CABG", "s/p CABG"},
		{"1/2 tab", "1 2 tab"},
		{"ROS -ve, +ve", "ROS -ve +ve"},
		{"a-ve", "a ve"},
		{"Fever: none", "Fever : none"},
		{"H-Headache", "H Headache"},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range scanTokens(nil, tt.in, 0, len(tt.in)) {
			got = append(got, tt.in[tk.start:tk.end])
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("scanTokens(%q) = %q, want %q", tt.in, strings.Join(got, " "), tt.want)
		}
	}
}

func TestStem(t *testing.T) {
	for in, want := range map[string]string{
		"pains": "pain", "allergies": "allergy", "rashes": "rash", "abscesses": "abscess",
		"loss": "loss", "sinus": "sinus", "meningitis": "meningitis", "was": "was", "ribs": "rib",
	} {
		if got := string(stem([]byte(in))); got != want {
			t.Errorf("stem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMedspaCyPatternExpansion(t *testing.T) {
	rules, err := ParseMedspaCyRules(strings.NewReader(`{"context_rules": [
		{"category": "NEGATED_EXISTENCE", "literal": "adequate to rule out", "direction": "FORWARD",
		 "pattern": [{"LOWER": {"IN": ["adequate", "sufficient"]}}, {"LOWER": "to"}, {"LOWER": "rule"},
		             {"LOWER": {"IN": ["him", "her"]}, "OP": "?"}, {"LOWER": "out"}]},
		{"category": "HISTORICAL", "literal": "history", "direction": "FORWARD", "pattern": null}]}`), "test")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rules {
		got[r.Phrase] = true
	}
	for _, want := range []string{"adequate to rule out", "sufficient to rule him out", "adequate to rule her out", "history"} {
		if !got[want] {
			t.Errorf("missing expansion %q in %v", want, got)
		}
	}
	if len(rules) != 7 {
		t.Errorf("got %d rules, want 7", len(rules))
	}
}

func TestParseNegExTriggersRejectsBadLines(t *testing.T) {
	for _, in := range []string{"no tag here\n", "denies\t\t[WHAT]\n", "\t\t[PREN]\n"} {
		if _, err := ParseNegExTriggers(strings.NewReader(in), Negated, "test"); err == nil {
			t.Errorf("ParseNegExTriggers(%q): no error", in)
		}
	}
	rules, err := ParseNegExTriggers(strings.NewReader("# comment\r\ndenies\t\t[PREN]\r\nrule out\t\t[PREP]\r\nbut\t\t[CONJ]\r\nnow\t\t[CONJ]\tHISTORICAL\n"), Negated, "test")
	if err != nil {
		t.Fatal(err)
	}
	// "but" terminates both negated and possible scopes; "now" only
	// historical ones.
	if len(rules) != 5 || rules[1].Category != Possible || rules[2].Direction != Terminate || rules[3].Category != Possible ||
		rules[4].Category != Historical || rules[4].Direction != Terminate {
		t.Errorf("rules = %+v", rules)
	}
	if _, err := ParseNegExTriggers(strings.NewReader("now\t\t[CONJ]\tSOMETIMES\n"), Negated, "test"); err == nil {
		t.Error("unknown category accepted")
	}
}

func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		"crushing chest pain radiating to left arm, sweaty",
		"No fever, chills. Denies SOB. BP 88/54 HR 118 sat 93% RA",
		"abd pain", "ant. chest pain", "arm pain, Lt", "n/v x3 days s/p lap chole",
		"\xff\xfe\x00", "no no no no", "EXAM:  CLINICAL HISTORY:  ",
	} {
		f.Add(s, "chest pain")
	}
	e := engine(f)
	f.Fuzz(func(t *testing.T, text, target string) {
		a := e.Analyze(text, Options{Targets: []string{target}})
		for _, fd := range a.Findings {
			if fd.Span[0] < 0 || fd.Span[1] > len(text) || fd.Span[0] > fd.Span[1] {
				t.Fatalf("span %v out of range [0,%d]", fd.Span, len(text))
			}
			if text[fd.Span[0]:fd.Span[1]] != fd.Text {
				t.Fatalf("text %q != input at span %v", fd.Text, fd.Span)
			}
			if !fd.Type.Valid() {
				t.Fatalf("bad type %q", fd.Type)
			}
		}
		switch a.Domain {
		case clinical.Cardiology, clinical.Neurology, clinical.Oncology, clinical.Emergency, clinical.General:
		default:
			t.Fatalf("bad domain %q", a.Domain)
		}
	})
}

func FuzzSplitSentences(f *testing.F) {
	for _, s := range []string{"Dr. Smith. Fever?", "A:  B C:  d", "1. x\n2. y", "\n\n", "b.i.d. p.o."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prev := 0
		for _, r := range splitSentences(nil, s) {
			if r[0] < prev || r[0] >= r[1] || r[1] > len(s) {
				t.Fatalf("bad sentence range %v after %d in %q", r, prev, s)
			}
			prev = r[1]
		}
	})
}
