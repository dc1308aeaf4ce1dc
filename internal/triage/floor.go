package triage

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"medserve/internal/clinical"
)

// Rule is one safety-floor rule: when every atom holds, acuity may be no
// less urgent than MaxAcuity.
type Rule struct {
	ID        string `json:"id"`
	MaxAcuity int    `json:"max_acuity"`
	Reason    string `json:"reason"`
	Source    string `json:"source"`
	atoms     []atom
}

type atomKind uint8

const (
	atomCompare atomKind = iota
	atomAVPU
	atomFinding
	atomFlag
)

type atom struct {
	kind  atomKind
	field string
	op    string
	value float64
	set   []string
}

// Floor is the result of the rules for one patient.
type Floor struct {
	// Acuity is the most lenient acuity allowed: 5 when no rule fired.
	Acuity  int      `json:"acuity"`
	Reasons []string `json:"reasons"`
	Rules   []string `json:"rules"`
}

// Rules is a parsed rule set.
type Rules struct {
	rules []Rule
}

var compareFields = map[string]bool{"sbp": true, "dbp": true, "hr": true, "rr": true, "temp_c": true, "spo2": true, "gcs": true,
	"pain": true, "age": true, "news2": true, "qsofa": true, "shock_index": true}

var flagNames = map[string]bool{"news2_red": true, "danger_hr": true, "danger_rr": true, "danger_spo2": true}

// ParseRules reads the safety-floor file (data/triage/safety-floor.tsv);
// errors name the line.
func ParseRules(r io.Reader, source string) (*Rules, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var out Rules
	ids := map[string]bool{}
	line, header := 0, false
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cols := strings.Split(text, "\t")
		if !header {
			header = true
			if len(cols) < 5 || cols[0] != "id" || cols[1] != "when" || cols[2] != "max_acuity" {
				return nil, fmt.Errorf("%s:%d: header must be id, when, max_acuity, reason, source", source, line)
			}
			continue
		}
		if len(cols) != 5 {
			return nil, fmt.Errorf("%s:%d: %d columns, want 5", source, line, len(cols))
		}
		rule := Rule{ID: strings.TrimSpace(cols[0]), Reason: strings.TrimSpace(cols[3]), Source: strings.TrimSpace(cols[4])}
		if rule.ID == "" || ids[rule.ID] || rule.Reason == "" || rule.Source == "" {
			return nil, fmt.Errorf("%s:%d: a rule needs a unique id, a reason and a source", source, line)
		}
		ids[rule.ID] = true
		n, err := strconv.Atoi(strings.TrimSpace(cols[2]))
		if err != nil || n < 1 || n > 4 {
			return nil, fmt.Errorf("%s:%d: max_acuity %q, want 1–4", source, line, cols[2])
		}
		rule.MaxAcuity = n
		for _, part := range strings.Split(cols[1], "&") {
			a, err := parseAtom(strings.TrimSpace(part))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", source, line, err)
			}
			rule.atoms = append(rule.atoms, a)
		}
		out.rules = append(out.rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(out.rules) == 0 {
		return nil, fmt.Errorf("%s: no rules", source)
	}
	return &out, nil
}

func parseAtom(s string) (atom, error) {
	if s == "" {
		return atom{}, fmt.Errorf("empty condition")
	}
	if name, list, ok := strings.Cut(s, "="); ok && !strings.ContainsAny(name, "<>") {
		name = strings.TrimSpace(name)
		set := strings.Split(strings.TrimSpace(list), "|")
		for i := range set {
			set[i] = strings.TrimSpace(set[i])
			if set[i] == "" {
				return atom{}, fmt.Errorf("empty value in %q", s)
			}
		}
		switch name {
		case "avpu":
			for _, v := range set {
				switch v {
				case clinical.AVPUAlert, clinical.AVPUVerbal, clinical.AVPUPain, clinical.AVPUUnresponsive:
				default:
					return atom{}, fmt.Errorf("avpu %q", v)
				}
			}
			return atom{kind: atomAVPU, set: set}, nil
		case "finding":
			return atom{kind: atomFinding, set: set}, nil
		case "flag":
			for _, v := range set {
				if !flagNames[v] {
					return atom{}, fmt.Errorf("unknown flag %q", v)
				}
			}
			return atom{kind: atomFlag, set: set}, nil
		}
		if !compareFields[name] {
			return atom{}, fmt.Errorf("unknown field %q in %q", name, s)
		}
	}
	for _, op := range []string{"<=", ">=", "<", ">", "="} {
		if i := strings.Index(s, op); i > 0 {
			field := strings.TrimSpace(s[:i])
			if !compareFields[field] {
				return atom{}, fmt.Errorf("unknown field %q in %q", field, s)
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(s[i+len(op):]), 64)
			if err != nil || v != v {
				return atom{}, fmt.Errorf("bad number in %q", s)
			}
			return atom{kind: atomCompare, field: field, op: op, value: v}, nil
		}
	}
	return atom{}, fmt.Errorf("cannot read condition %q", s)
}

// Input is what the rules look at.
type Input struct {
	Query    clinical.Query
	Scores   Scores
	Affirmed map[string]bool // affirmed finding concepts
}

func (in *Input) number(field string) (float64, bool) {
	v := in.Query.Vitals
	ptr := func(p *float64) (float64, bool) {
		if p == nil {
			return 0, false
		}
		return *p, true
	}
	switch field {
	case "sbp":
		return ptr(v.SBP)
	case "dbp":
		return ptr(v.DBP)
	case "hr":
		return ptr(v.HR)
	case "rr":
		return ptr(v.RR)
	case "temp_c":
		return ptr(v.TempC)
	case "spo2":
		return ptr(v.SpO2)
	case "gcs":
		return ptr(v.GCS)
	case "pain":
		return ptr(v.Pain)
	case "age":
		return ptr(in.Query.Age)
	case "news2":
		return float64(in.Scores.NEWS2), in.Scores.NEWS2Params > 0
	case "qsofa":
		return float64(in.Scores.QSOFA), true
	case "shock_index":
		return in.Scores.ShockIndex, in.Scores.ShockIndex > 0
	}
	return 0, false
}

func (in *Input) flag(name string) bool {
	switch name {
	case "news2_red":
		return in.Scores.NEWS2Red
	case "danger_hr":
		return in.Scores.DangerHR
	case "danger_rr":
		return in.Scores.DangerRR
	case "danger_spo2":
		return in.Scores.DangerSpO2
	}
	return false
}

func (a atom) holds(in *Input) bool {
	switch a.kind {
	case atomCompare:
		x, ok := in.number(a.field)
		if !ok {
			return false // a missing value never fires a rule: absence is not danger
		}
		switch a.op {
		case "<":
			return x < a.value
		case "<=":
			return x <= a.value
		case ">":
			return x > a.value
		case ">=":
			return x >= a.value
		default:
			return x == a.value
		}
	case atomAVPU:
		for _, v := range a.set {
			if in.Query.AVPU == v {
				return true
			}
		}
	case atomFinding:
		for _, v := range a.set {
			if in.Affirmed[v] {
				return true
			}
		}
	case atomFlag:
		for _, v := range a.set {
			if in.flag(v) {
				return true
			}
		}
	}
	return false
}

// Apply evaluates every rule. The floor is the most urgent max_acuity of
// the rules that fire; every firing rule's reason is listed.
func (rs *Rules) Apply(in Input) Floor {
	f := Floor{Acuity: 5, Reasons: []string{}, Rules: []string{}}
	for _, r := range rs.rules {
		fire := true
		for _, a := range r.atoms {
			if !a.holds(&in) {
				fire = false
				break
			}
		}
		if !fire {
			continue
		}
		f.Rules = append(f.Rules, r.ID)
		f.Reasons = append(f.Reasons, r.Reason)
		f.Acuity = min(f.Acuity, r.MaxAcuity)
	}
	return f
}

// All returns the rules, for reports.
func (rs *Rules) All() []Rule { return rs.rules }

// RedFlags are the finding codes that on their own make a patient acuity
// 1–2 (a rule of one finding atom with MaxAcuity ≤ 2): the red-flag
// symptoms whose affirmed presence answered with acuity ≥ 3 is a critical
// miss (SPEC section 11).
func (rs *Rules) RedFlags() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rs.rules {
		if r.MaxAcuity > 2 || len(r.atoms) != 1 || r.atoms[0].kind != atomFinding {
			continue
		}
		for _, c := range r.atoms[0].set {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}
