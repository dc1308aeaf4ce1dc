package validate

import (
	"strings"
	"testing"

	"medserve/internal/clinical"
)

const sample = "line number\tCondition\tsentence\tnegation_status\ttemporality\texperiencer\n" +
	"1\tedema\tExtremities reveal no peripheral cyanosis or EDEMA.\tNegated\tRecent\tPatient\n" +
	"2\tdiabetes\tHis mother had DIABETES.\tAffirmed\tHistorical\tFamily member\n" +
	"3\tstroke\t\"He had a STROKE in 2001.\"\tAffirmed\tHistorical\tPatient\n" +
	"4\tmissing concept\tThe sentence does not hold it.\tAffirmed\tRecent\tPatient\n" +
	"5\tcough\tCough and cough again.\tAffirmed\tRecent\tPatient\n"

func TestParseAnnotations(t *testing.T) {
	items, err := ParseAnnotations(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 {
		t.Fatalf("got %d items, want 5", len(items))
	}
	if items[2].Sentence != "He had a STROKE in 2001." {
		t.Errorf("quotes not removed: %q", items[2].Sentence)
	}
	if items[1].Experiencer != "Family member" || items[1].Temporality != "Historical" {
		t.Errorf("item 2 = %+v", items[1])
	}
}

func TestParseAnnotationsErrors(t *testing.T) {
	for _, in := range []string{
		"h\nonly\ttwo\n",
		"h\n1\tx\ty\tMaybe\n",
	} {
		if _, err := ParseAnnotations(strings.NewReader(in)); err == nil {
			t.Errorf("ParseAnnotations(%q): no error", in)
		}
	}
}

// substringAnalyzer is a tiny deterministic analyzer: it finds the target
// case-insensitively and negates it when "no " precedes it.
func substringAnalyzer(sentence string, targets []string) []clinical.Finding {
	var out []clinical.Finding
	low := asciiLower(sentence)
	for _, t := range targets {
		i := strings.Index(low, asciiLower(t))
		if i < 0 {
			continue
		}
		f := clinical.Finding{Type: clinical.Target, Target: t, Text: sentence[i : i+len(t)], Span: [2]int{i, i + len(t)}}
		f.Negated = strings.Contains(low[:i], "no ")
		f.Historical = strings.Contains(low, " had ")
		f.Family = strings.Contains(low, "mother")
		out = append(out, f)
	}
	return out
}

// asciiLower lower-cases ASCII letters only, so byte offsets survive.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestScoreContext(t *testing.T) {
	items, err := ParseAnnotations(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	s := ScoreContext(items, substringAnalyzer)
	if s.Items != 5 || s.Scored != 4 || s.NotFound != 1 || s.NotFoundItems[0].Line != 5 {
		t.Fatalf("counts: items %d scored %d not found %d (%+v)", s.Items, s.Scored, s.NotFound, s.NotFoundItems)
	}
	if s.Negated.TP != 1 || s.Negated.TN != 3 || s.Negated.F1 != 1 {
		t.Errorf("negated = %+v", s.Negated)
	}
	if s.Historical.TP != 2 || s.Historical.FP != 0 {
		t.Errorf("historical = %+v", s.Historical)
	}
	if s.Experiencer.TP != 1 || s.Experiencer.TN != 3 {
		t.Errorf("experiencer = %+v", s.Experiencer)
	}
	if s.Confusion["negation"]["Negated"]["Negated"] != 1 || s.Confusion["negation"]["Affirmed"]["Affirmed"] != 3 {
		t.Errorf("confusion = %v", s.Confusion["negation"])
	}
}

func TestBinaryMetrics(t *testing.T) {
	var b Binary
	for _, c := range []struct{ gold, pred bool }{{true, true}, {true, true}, {true, false}, {false, true}, {false, false}, {false, false}} {
		b.Add(c.gold, c.pred)
	}
	r := b.Report()
	if r.TP != 2 || r.FN != 1 || r.FP != 1 || r.TN != 2 {
		t.Fatalf("counts %+v", r)
	}
	if r.Precision != 2.0/3 || r.Recall != 2.0/3 || r.Specificity != 2.0/3 || r.Accuracy != 4.0/6 || r.F1 != 2.0/3 {
		t.Errorf("figures %+v", r)
	}
	var empty Binary
	if empty.F1() != 0 || empty.Precision() != 0 {
		t.Error("empty matrix must give 0, not NaN")
	}
}

func FuzzParseAnnotations(f *testing.F) {
	f.Add(sample)
	f.Add("h\n\"\t\"\t\"\tNegated\n")
	f.Fuzz(func(t *testing.T, in string) {
		items, err := ParseAnnotations(strings.NewReader(in))
		if err != nil {
			return
		}
		s := ScoreContext(items, substringAnalyzer)
		if s.Scored+s.NotFound != s.Items {
			t.Fatalf("scored %d + not found %d != items %d", s.Scored, s.NotFound, s.Items)
		}
	})
}
