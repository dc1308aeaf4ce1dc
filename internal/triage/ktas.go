// Package triage turns a clinical query into triage features, early-warning
// scores and the rule-based safety floor, and holds the KTAS data loader
// that training and evaluation share with serving.
package triage

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"medserve/internal/clinical"
)

// Case is one KTAS row: the legitimate inputs as a Query, the labels, and
// the fields evaluation groups by. Outcome columns (diagnosis, disposition,
// length of stay, error group, mistriage) are never read: they leak the
// answer.
type Case struct {
	Line   int
	Query  clinical.Query
	Site   string // KTAS "Group": 1 local ED, 2 regional ED
	Nurse  int    // KTAS_RN, the triage nurse's level
	Expert int    // KTAS_expert, the ground truth
}

// ktasColumns are the columns read, by name.
var ktasColumns = []string{"Group", "Sex", "Age", "Arrival mode", "Injury", "Chief_complain", "Mental", "Pain", "NRS_pain",
	"SBP", "DBP", "HR", "RR", "BT", "Saturation", "KTAS_RN", "KTAS_expert"}

// ParseKTAS reads a file in the KTAS format (Moon et al. 2019): ";"
// separated, Windows-1252 text, "??" and "#BOÞ!" for missing values,
// decimal commas in places. Codes are mapped as checked against the data
// (see data/ktas-triage/SOURCE.md): Sex 1 female, 2 male; Injury 2 yes;
// Mental 1–4 alert, verbal, pain, unresponsive; Arrival 1 walk-in,
// 2 and 4 ambulance (public, private), 3 private vehicle, 5–7 other.
// A physiologically impossible vital sign is treated as missing and
// reported in the returned warnings.
func ParseKTAS(r io.Reader) (cases []Case, warnings []string, err error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read KTAS file: %w", err)
	}
	cr := csv.NewReader(bytes.NewReader(decodeCP1252(raw)))
	cr.Comma = ';'
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	header, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("KTAS header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, c := range ktasColumns {
		if _, ok := col[c]; !ok {
			return nil, nil, fmt.Errorf("KTAS file: missing column %q", c)
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("KTAS file: %w", err)
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string {
			i := col[name]
			if i >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[i])
		}
		c, warn, err := ktasCase(get, line)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, warn...)
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, nil, fmt.Errorf("KTAS file: no rows")
	}
	return cases, warnings, nil
}

func ktasCase(get func(string) string, line int) (Case, []string, error) {
	var warn []string
	c := Case{Line: line, Site: get("Group")}
	bad := func(field, v string) error {
		return fmt.Errorf("KTAS line %d: %s %q is not valid", line, field, v)
	}
	var err error
	if c.Expert, err = level(get("KTAS_expert")); err != nil {
		return c, nil, bad("KTAS_expert", get("KTAS_expert"))
	}
	if c.Nurse, err = level(get("KTAS_RN")); err != nil {
		return c, nil, bad("KTAS_RN", get("KTAS_RN"))
	}
	q := &c.Query
	q.Text = get("Chief_complain")
	if q.Text == "??" || strings.Trim(q.Text, "? ") == "" {
		q.Text = "" // Korean text lost when the file was saved
	}
	switch get("Sex") {
	case "1":
		q.Sex = clinical.SexFemale
	case "2":
		q.Sex = clinical.SexMale
	default:
		q.Sex = clinical.SexUnknown
	}
	if v, ok := number(get("Age")); ok && v >= 0 && v <= 125 {
		q.Age = &v
	}
	switch get("Arrival mode") {
	case "1":
		q.Arrival = clinical.ArrivalWalkIn
	case "2", "4":
		q.Arrival = clinical.ArrivalAmbulance
	case "3":
		q.Arrival = clinical.ArrivalPrivateVehicle
	case "5", "6", "7":
		q.Arrival = clinical.ArrivalOther
	}
	switch get("Injury") {
	case "1":
		f := false
		q.Injury = &f
	case "2":
		t := true
		q.Injury = &t
	}
	switch get("Mental") {
	case "1":
		q.AVPU = clinical.AVPUAlert
	case "2":
		q.AVPU = clinical.AVPUVerbal
	case "3":
		q.AVPU = clinical.AVPUPain
	case "4":
		q.AVPU = clinical.AVPUUnresponsive
	}
	vital := func(field, v string) *float64 {
		x, ok := number(v)
		if !ok {
			return nil
		}
		lo, hi := clinical.VitalLimits(field)
		if x < lo || x > hi {
			warn = append(warn, fmt.Sprintf("line %d: %s %g outside %g–%g: treated as missing", line, field, x, lo, hi))
			return nil
		}
		return &x
	}
	q.Vitals.SBP = vital("sbp", get("SBP"))
	q.Vitals.DBP = vital("dbp", get("DBP"))
	q.Vitals.HR = vital("hr", get("HR"))
	q.Vitals.RR = vital("rr", get("RR"))
	q.Vitals.TempC = vital("temp_c", get("BT"))
	q.Vitals.SpO2 = vital("spo2", get("Saturation"))
	if get("Pain") == "0" {
		zero := 0.0
		q.Vitals.Pain = &zero // no pain reported: a score of 0, not unknown
	} else {
		q.Vitals.Pain = vital("pain", get("NRS_pain"))
	}
	return c, warn, nil
}

func level(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 5 {
		return 0, fmt.Errorf("acuity %q", s)
	}
	return n, nil
}

// number parses a KTAS numeric cell: decimal commas accepted; "??",
// "#BOÞ!", empty and non-finite values are missing.
func number(s string) (float64, bool) {
	s = strings.TrimSpace(strings.ReplaceAll(s, ",", "."))
	if s == "" || strings.HasPrefix(s, "?") || strings.HasPrefix(s, "#") {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != v || v > 1e9 || v < -1e9 {
		return 0, false
	}
	return v, true
}

// cp1252High maps Windows-1252 bytes 0x80–0x9F to runes; the rest of the
// upper half is Latin-1.
var cp1252High = [32]rune{
	'€', 0x81, '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', 0x8D, 'Ž', 0x8F,
	0x90, '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', 0x9D, 'ž', 'Ÿ',
}

// decodeCP1252 converts Windows-1252 text to UTF-8. The KTAS file is a
// Turkish Excel export: it is not UTF-8, and reading it as such would
// corrupt "#BOÞ!" and three diagnoses.
func decodeCP1252(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/8)
	for _, c := range b {
		switch {
		case c < 0x80:
			out = append(out, c)
		case c < 0xA0:
			out = utf8.AppendRune(out, cp1252High[c-0x80])
		default:
			out = utf8.AppendRune(out, rune(c))
		}
	}
	return out
}
