package text

import (
	"bytes"
	"encoding/csv"
	"io/fs"
	"testing"

	"medserve"
	"medserve/internal/clinical"
)

// ktasUncovered are the KTAS complaints the lexicon deliberately leaves
// unmatched; data/lexicon/SOURCE.md says why for each.
var ktasUncovered = map[string]bool{
	"cold": true, "copy": true, "medication": true, "for medication": true,
	"po medication": true, "for a/tapping": true, "pain, ?nus": true,
}

// TestKTASComplaintCoverage checks that every chief complaint of the KTAS
// development rows yields at least one affirmed clinical concept other than
// a bare body part, so that triage features see the complaint.
func TestKTASComplaintCoverage(t *testing.T) {
	raw, err := fs.ReadFile(medserve.Data, "data/ktas-triage/data.csv")
	if err != nil {
		t.Fatal(err)
	}
	// The file is cp1252; complaints are ASCII, so decoding bytes as
	// Latin-1 keeps them intact.
	runes := make([]rune, len(raw))
	for i, b := range raw {
		runes[i] = rune(b)
	}
	r := csv.NewReader(bytes.NewBufferString(string(runes)))
	r.Comma = ';'
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	e := engine(t)
	seen := map[string]bool{}
	covered, total := 0, 0
	for _, row := range rows[1:] {
		c := row[6]
		if seen[c] || !hasLetter(c) {
			continue // Korean text lost to "?" when the file was saved
		}
		seen[c] = true
		total++
		ok := false
		for _, f := range e.Analyze(c, Options{}).Findings {
			if f.Type != clinical.Anatomy && f.Affirmed() {
				ok = true
				break
			}
		}
		switch {
		case ok:
			covered++
		case !ktasUncovered[lower(c)]:
			t.Errorf("complaint %q yields no clinical concept", c)
		}
	}
	t.Logf("KTAS complaints covered: %d of %d", covered, total)
}

func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c >= 'a' && c <= 'z' {
			return true
		}
	}
	return false
}

func lower(s string) string { return string(lowerInto(nil, s)) }
