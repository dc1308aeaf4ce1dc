package validate

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"medserve/internal/clinical"
)

// Annotation is one item of a NegEx-style annotated set: a concept, the
// sentence it occurs in, and its gold ConText labels.
type Annotation struct {
	Line        int    `json:"line"`
	ID          string `json:"id"`
	Concept     string `json:"concept"`
	Sentence    string `json:"sentence"`
	Negation    string `json:"negation"`    // Affirmed, Negated or Possible
	Temporality string `json:"temporality"` // Recent, Historical, Not particular, Hypothetical
	Experiencer string `json:"experiencer"` // Patient, Family member, Other
}

// ParseAnnotations reads the tab-separated format of NegEx's
// rsAnnotations-1-120-random.txt: a header, then "id, concept, sentence,
// negation, temporality, experiencer" per line. Columns are taken by
// position, since header wording varies between releases; sentences wrapped
// in double quotes are unwrapped.
func ParseAnnotations(r io.Reader) ([]Annotation, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	var out []Annotation
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 || strings.TrimSpace(text) == "" {
			continue
		}
		cols := strings.Split(text, "\t")
		if len(cols) < 4 {
			return nil, fmt.Errorf("line %d: %d columns, want at least 4 (id, concept, sentence, negation)", line, len(cols))
		}
		a := Annotation{Line: line, ID: strings.TrimSpace(cols[0]), Concept: unquote(cols[1]), Sentence: unquote(cols[2]), Negation: label(cols[3])}
		if len(cols) > 4 {
			a.Temporality = label(cols[4])
		}
		if len(cols) > 5 {
			a.Experiencer = label(cols[5])
		}
		switch strings.ToLower(a.Negation) {
		case "affirmed", "negated", "possible":
		default:
			return nil, fmt.Errorf("line %d: negation label %q, want Affirmed, Negated or Possible", line, a.Negation)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read annotations: %w", err)
	}
	return out, nil
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

func label(s string) string { return strings.TrimSpace(s) }

// Analyzer qualifies target phrases in a sentence: it returns the findings
// of type TARGET, first occurrence first.
type Analyzer func(sentence string, targets []string) []clinical.Finding

// ContextScore is the result of scoring an annotated set.
type ContextScore struct {
	Items    int `json:"items"`
	Scored   int `json:"scored"`
	NotFound int `json:"not_found"`
	// NotFoundItems lists the concepts that do not occur in their sentence;
	// they are counted apart, never scored as right or wrong.
	NotFoundItems []Annotation   `json:"not_found_items,omitempty"`
	Negated       BinaryReport   `json:"negated"`
	Historical    BinaryReport   `json:"historical"`
	Experiencer   BinaryReport   `json:"experiencer_other"`
	Confusion     map[string]Map `json:"confusion"`
	// Errors lists the scored items whose negation was predicted wrong.
	Errors []ScoredItem `json:"negation_errors,omitempty"`
}

// Map is a confusion matrix keyed by gold label, then predicted label.
type Map map[string]map[string]int

func (m Map) add(gold, pred string) {
	if m[gold] == nil {
		m[gold] = map[string]int{}
	}
	m[gold][pred]++
}

// ScoredItem is an annotation with what the analyzer said of it.
type ScoredItem struct {
	Annotation
	Predicted clinical.Finding `json:"predicted"`
}

// ScoreContext runs the analyzer on every annotation and scores Negated,
// Historical (temporality) and a non-patient experiencer (Family member or
// Other → the family flag). Where the concept occurs twice, the first
// occurrence counts.
func ScoreContext(items []Annotation, analyze Analyzer) ContextScore {
	s := ContextScore{Items: len(items), Confusion: map[string]Map{"negation": {}, "temporality": {}, "experiencer": {}}}
	var neg, hist, exp Binary
	for _, a := range items {
		fs := analyze(a.Sentence, []string{a.Concept})
		var f *clinical.Finding
		for i := range fs {
			if fs[i].Type == clinical.Target {
				f = &fs[i]
				break
			}
		}
		if f == nil {
			s.NotFound++
			s.NotFoundItems = append(s.NotFoundItems, a)
			continue
		}
		s.Scored++
		goldNeg := strings.EqualFold(a.Negation, "negated")
		neg.Add(goldNeg, f.Negated)
		s.Confusion["negation"].add(a.Negation, predictedNegation(*f))
		if goldNeg != f.Negated {
			s.Errors = append(s.Errors, ScoredItem{Annotation: a, Predicted: *f})
		}
		if a.Temporality != "" {
			hist.Add(strings.EqualFold(a.Temporality, "historical"), f.Historical)
			s.Confusion["temporality"].add(a.Temporality, predictedTemporality(*f))
		}
		if a.Experiencer != "" {
			exp.Add(!strings.EqualFold(a.Experiencer, "patient"), f.Family)
			pe := "Patient"
			if f.Family {
				pe = "Other"
			}
			s.Confusion["experiencer"].add(a.Experiencer, pe)
		}
	}
	s.Negated, s.Historical, s.Experiencer = neg.Report(), hist.Report(), exp.Report()
	sort.SliceStable(s.Errors, func(i, j int) bool { return s.Errors[i].Line < s.Errors[j].Line })
	return s
}

func predictedNegation(f clinical.Finding) string {
	switch {
	case f.Negated:
		return "Negated"
	case f.Possible:
		return "Possible"
	}
	return "Affirmed"
}

func predictedTemporality(f clinical.Finding) string {
	switch {
	case f.Historical:
		return "Historical"
	case f.Hypothetical:
		return "Hypothetical"
	}
	return "Recent"
}
