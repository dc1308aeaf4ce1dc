package kb

import (
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"medserve"
	"medserve/internal/clinical"
)

var (
	testKBOnce sync.Once
	testKB     *KB
	testKBErr  error
)

func dataTree(t testing.TB) fs.FS {
	t.Helper()
	sub, err := fs.Sub(medserve.Data, "data")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// loadKB loads the real knowledge base once for all tests.
func loadKB(t testing.TB) *KB {
	t.Helper()
	testKBOnce.Do(func() { testKB, testKBErr = Load(dataTree(t)) })
	if testKBErr != nil {
		t.Fatalf("load: %v", testKBErr)
	}
	return testKB
}

func TestLoadCounts(t *testing.T) {
	k := loadKB(t)
	s := k.Stats()
	if s.Conditions != 49 || s.Evidences != 223 {
		t.Errorf("conditions %d evidences %d, want 49 and 223", s.Conditions, s.Evidences)
	}
	if s.ICD10Codes != 95358 {
		t.Errorf("ICD-10-CM codes %d, want 95358", s.ICD10Codes)
	}
	if s.Edges[string(Resembles)] != 543 {
		t.Errorf("RESEMBLES edges %d, want Hetionet's 543", s.Edges[string(Resembles)])
	}
	if s.Edges[string(Treats)] != 755+390 {
		t.Errorf("TREATS edges %d, want 1145 (755 DM + 390 SYM)", s.Edges[string(Treats)])
	}
	if s.InteractPairs != 4971 {
		t.Errorf("interacting pairs %d, want CRESCENDDI's 4971", s.InteractPairs)
	}
}

func TestICD10AndDomain(t *testing.T) {
	k := loadKB(t)
	if d, ok := k.ICD10("I21.9"); !ok || !strings.Contains(strings.ToLower(d), "myocardial infarction") {
		t.Errorf("I21.9 = %q, %v", d, ok)
	}
	if _, ok := k.ICD10("Q99.99"); ok {
		t.Error("invented code accepted")
	}
	for code, want := range map[string]clinical.Domain{"I21": clinical.Cardiology, "I63.9": clinical.Neurology, "C34": clinical.Oncology, "G40": clinical.Neurology} {
		if got := k.Domain(code); got != want {
			t.Errorf("Domain(%s) = %s, want %s", code, got, want)
		}
	}
}

func TestSeverityMerge(t *testing.T) {
	tests := []struct {
		bnf, ansm, mdx string
		want           Severity
	}{
		{"", "", "Contraindicated", SevContraindicated},
		{"Severe", "Take into consideration", "Moderate", SevMajor},
		{"", "Precautions for use", "", SevModerate},
		{"Mild", "", "Minor", SevMinor},
		{"", "Contraindicated", "Major", SevContraindicated},
		{"", "", "", SevNone},
	}
	for _, tt := range tests {
		if got := severityOf(tt.bnf, tt.ansm, tt.mdx); got != tt.want {
			t.Errorf("severityOf(%q,%q,%q) = %v, want %v", tt.bnf, tt.ansm, tt.mdx, got, tt.want)
		}
	}
}

func TestCheckInteractions(t *testing.T) {
	k := loadKB(t)
	rep := k.CheckInteractions([]string{"Coumadin", "ibuprofen 400 mg tab", "notadrug-xyz", "warfarin sodium 5mg", "sumatriptan", "phenelzine"})
	if len(rep.Unknown) != 1 || rep.Unknown[0] != "notadrug-xyz" {
		t.Errorf("unknown = %v", rep.Unknown)
	}
	if len(rep.Duplicates) != 1 {
		t.Errorf("duplicates = %v (warfarin given twice)", rep.Duplicates)
	}
	found := map[string]Alert{}
	for _, a := range rep.Interactions {
		found[a.Drugs[0]+"+"+a.Drugs[1]] = a
	}
	if a, ok := found["warfarin+ibuprofen"]; !ok || a.sev < SevMajor {
		t.Errorf("warfarin + ibuprofen: %+v (all %v)", a, found)
	}
	if a, ok := found["sumatriptan+phenelzine"]; !ok || a.sev < SevMajor || a.Source == "" {
		t.Errorf("sumatriptan + phenelzine: %+v", a)
	}
	for i := 1; i < len(rep.Interactions); i++ {
		if rep.Interactions[i].sev > rep.Interactions[i-1].sev {
			t.Error("alerts not ordered by severity")
		}
	}
}

func TestCheckInteractionsBadInput(t *testing.T) {
	k := loadKB(t)
	for _, meds := range [][]string{nil, {}, {""}, {"\xff\xfe"}, {"warfarin"}, {"ＷＡＲＦＡＲＩＮ", "aspirin"}} {
		rep := k.CheckInteractions(meds)
		if rep.Interactions == nil || rep.Unknown == nil || len(rep.Medications) != len(meds) {
			t.Errorf("%q: report %+v", meds, rep)
		}
	}
	big := make([]string, 1000)
	for i := range big {
		big[i] = []string{"warfarin", "aspirin", "ibuprofen", "xyz"}[i%4]
	}
	rep := k.CheckInteractions(big)
	if len(rep.Medications) != 1000 || len(rep.Unknown) != 250 || len(rep.Duplicates) != 747 {
		t.Errorf("1000-drug list: %d meds, %d unknown, %d duplicates", len(rep.Medications), len(rep.Unknown), len(rep.Duplicates))
	}
}

// TestClassRulesCoverMembers checks each high-priority rule on every member
// pair of its classes, not only the drugs a rule names.
func TestClassRulesCoverMembers(t *testing.T) {
	k := loadKB(t)
	ev := k.EvalInteractions()
	if ev.HighPriorityN != 15 {
		t.Fatalf("high-priority items %d, want 15", ev.HighPriorityN)
	}
	for _, it := range ev.HighPriority {
		if !it.Detected {
			t.Errorf("item %s (%s): %d/%d member pairs, missed %v", it.Item, it.Effect, it.Pairs.Hit, it.Pairs.N, it.Missed)
		}
	}
	maoi, triptan := k.ClassMembers("maoi"), k.ClassMembers("triptan")
	if len(maoi) < 3 || len(triptan) < 5 {
		t.Fatalf("class table too small: maoi %v triptan %v", maoi, triptan)
	}
	for _, m := range maoi {
		for _, tr := range triptan {
			rep := k.CheckInteractions([]string{m, tr})
			if len(rep.Interactions) == 0 {
				t.Errorf("%s + %s: no alert", m, tr)
			}
		}
	}
}

func TestSpecificityOnNegativeControls(t *testing.T) {
	k := loadKB(t)
	ev := k.EvalInteractions()
	if ev.Specificity.N < 4000 || ev.Specificity.Rate < 0.95 {
		t.Errorf("specificity %d/%d = %.3f, want ≥ 0.95", ev.Specificity.Hit, ev.Specificity.N, ev.Specificity.Rate)
	}
}

func finding(concept string, typ clinical.ConceptType, negated bool) clinical.Finding {
	return clinical.Finding{Concept: concept, Type: typ, Negated: negated}
}

func TestDifferential(t *testing.T) {
	k := loadKB(t)
	age := 58.0
	cands := k.Differential([]clinical.Finding{
		finding("chest_pain", clinical.Symptom, false),
		finding("diaphoresis", clinical.Symptom, false),
		finding("shortness_of_breath", clinical.Symptom, false),
	}, Patient{Age: &age, Sex: "male"}, 5)
	if len(cands) == 0 {
		t.Fatal("empty differential for chest pain")
	}
	var names []string
	for _, c := range cands {
		names = append(names, c.Condition)
	}
	joined := strings.Join(names, " | ")
	if !strings.Contains(joined, "STEMI") {
		t.Errorf("chest pain + diaphoresis + dyspnea: myocardial infarction missing from %s", joined)
	}
	var sum float64
	for _, c := range cands {
		if c.Probability < 0 || c.Probability > 1 || c.ICD10 == "" || c.Severity < 1 || c.Severity > 5 {
			t.Errorf("bad candidate %+v", c)
		}
		sum += c.Probability
	}
	if sum > 1.001 {
		t.Errorf("probabilities sum to %.3f", sum)
	}
	if got := k.Differential(nil, Patient{}, 5); len(got) != 0 {
		t.Errorf("no findings gave %v", got)
	}
}

func TestDifferentialNegationCountsAgainst(t *testing.T) {
	k := loadKB(t)
	base := []clinical.Finding{finding("cough", clinical.Symptom, false), finding("fever", clinical.Symptom, false)}
	with := k.Differential(base, Patient{}, 49)
	without := k.Differential(append(base, finding("shortness_of_breath", clinical.Symptom, true)), Patient{}, 49)
	score := func(cs []Candidate, name string) float64 {
		for _, c := range cs {
			if c.Condition == name {
				return c.score
			}
		}
		return -1e9
	}
	if score(without, "Pneumonia") >= score(with, "Pneumonia") {
		t.Error("denying dyspnea did not lower pneumonia's score")
	}
}

func TestLoaderRejectsMalformedFiles(t *testing.T) {
	base := dataTree(t)
	bad := fstest.MapFS{}
	// Copy what Load reads up to the broken file, then break one file.
	for _, f := range []string{fileICD10, fileEvidences, fileConditions, fileEvMap, fileDomains, filePharmacoInd, fileMedline,
		filePharmaco, fileDrugMaps, fileClasses, fileBrands, filePositives, fileNegatives, fileRules, fileProfiles, filePainSites, filePriors} {
		b, err := fs.ReadFile(base, f)
		if err != nil {
			t.Fatal(err)
		}
		bad[f] = &fstest.MapFile{Data: b}
	}
	if _, err := Load(bad); err != nil {
		t.Fatalf("copy of the real data does not load: %v", err)
	}
	bad[fileRules] = &fstest.MapFile{Data: []byte("id\ta\tb\tseverity\teffect\tlist\tsource\nX1\tclass:maoi\tclass:nope\tmajor\tx\tconsensus\ts\n")}
	_, err := Load(bad)
	var te *tableError
	if err == nil || !errors.As(err, &te) || te.file != fileRules || te.line != 2 {
		t.Errorf("bad rule file: err = %v, want %s:2", err, fileRules)
	}
}

func FuzzCheckInteractions(f *testing.F) {
	f.Add("warfarin,ibuprofen 400 mg,Coumadin")
	f.Add("phenelzine,sumatriptan,\xff,,ＷＡＲＦＡＲＩＮ")
	k := loadKB(f)
	f.Fuzz(func(t *testing.T, list string) {
		meds := strings.Split(list, ",")
		rep := k.CheckInteractions(meds)
		if len(rep.Medications) != len(meds) {
			t.Fatalf("%d inputs, %d resolutions", len(meds), len(rep.Medications))
		}
		known := 0
		for _, m := range rep.Medications {
			if m.Match != MatchUnknown {
				known++
			}
		}
		if known+len(rep.Unknown) != len(meds) || len(rep.Duplicates) > known {
			t.Fatalf("counts: %d known, %d unknown, %d duplicates of %d", known, len(rep.Unknown), len(rep.Duplicates), len(meds))
		}
		for _, a := range rep.Interactions {
			if a.Severity == "" || a.Source == "" || a.Drugs[0] == a.Drugs[1] {
				t.Fatalf("bad alert %+v", a)
			}
		}
	})
}
