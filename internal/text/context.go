package text

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Category is a ConText modifier category (Harkema et al. 2009).
type Category uint8

// ConText categories. Each sets one flag on the findings in its scope.
const (
	Negated Category = iota
	Possible
	Historical
	Hypothetical
	Family
	numCategories
)

var categoryNames = [numCategories]string{"NEGATED_EXISTENCE", "POSSIBLE_EXISTENCE", "HISTORICAL", "HYPOTHETICAL", "FAMILY"}

func (c Category) String() string {
	if c < numCategories {
		return categoryNames[c]
	}
	return fmt.Sprintf("Category(%d)", c)
}

// Direction says which way a trigger's scope extends.
type Direction uint8

// Directions, as in medspaCy. A pseudo-trigger matches only to stop a
// shorter trigger inside it from firing ("no increase" is not "no").
const (
	Forward Direction = iota
	Backward
	Bidirectional
	Terminate
	Pseudo
)

// Rule is one ConText trigger phrase with its category and direction.
type Rule struct {
	Phrase    string
	Category  Category
	Direction Direction
	Source    string
}

// parseCategory maps the category names used by medspaCy, pyConText and the
// genConText files to ours; ok is false for categories that set no flag.
func parseCategory(s string) (Category, bool) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "NEGATED_EXISTENCE", "DEFINITE_NEGATED_EXISTENCE", "PROBABLE_NEGATED_EXISTENCE":
		return Negated, true
	case "POSSIBLE_EXISTENCE", "PROBABLE_EXISTENCE":
		return Possible, true
	case "HISTORICAL":
		return Historical, true
	case "HYPOTHETICAL", "FUTURE":
		return Hypothetical, true
	case "FAMILY", "EXPERIENCER":
		return Family, true
	}
	return 0, false
}

func parseDirection(s string) (Direction, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "FORWARD":
		return Forward, nil
	case "BACKWARD", "BACKWARDS":
		return Backward, nil
	case "BIDIRECTIONAL":
		return Bidirectional, nil
	case "TERMINATE":
		return Terminate, nil
	case "PSEUDO":
		return Pseudo, nil
	}
	return 0, fmt.Errorf("unknown direction %q", s)
}

// ParseNegExTriggers reads a NegEx/genConText trigger file ("phrase\t\t[TAG]"
// per line). base is the category of the file's plain triggers: Negated for
// negex_triggers.txt, Historical, Hypothetical or Family for the genConText
// files. NegEx's possible-existence tags (PREP, POSP) always mean Possible.
func ParseNegExTriggers(r io.Reader, base Category, source string) ([]Rule, error) {
	var rules []Rule
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		raw := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(raw) == "" || strings.HasPrefix(raw, "#") {
			continue
		}
		// An optional category after the tag ("now\t\t[CONJ]\tHISTORICAL")
		// lets one file hold rules of several categories.
		cat := base
		body := strings.TrimRight(raw, " \t")
		if i := strings.LastIndexByte(body, ']'); i >= 0 && i < len(body)-1 {
			c, ok := parseCategory(body[i+1:])
			if !ok {
				return nil, fmt.Errorf("%s:%d: unknown category %q", source, line, strings.TrimSpace(body[i+1:]))
			}
			cat, body = c, body[:i+1]
		}
		open := strings.LastIndexByte(body, '[')
		if open < 0 || !strings.HasSuffix(body, "]") {
			return nil, fmt.Errorf("%s:%d: no [TAG] in %q", source, line, raw)
		}
		phrase := strings.TrimSpace(body[:open])
		tag := body[open+1 : len(body)-1]
		if phrase == "" {
			return nil, fmt.Errorf("%s:%d: empty phrase", source, line)
		}
		rule := Rule{Phrase: phrase, Category: cat, Source: source}
		switch tag {
		case "PREN", "ONEW":
			// ONEW ("pre-existing", "status post", "prior") precedes the
			// finding it qualifies, like PREN.
			rule.Direction = Forward
		case "POST":
			rule.Direction = Backward
		case "PREP":
			rule.Category, rule.Direction = Possible, Forward
		case "POSP":
			rule.Category, rule.Direction = Possible, Backward
		case "PSEU":
			rule.Direction = Pseudo
		case "CONJ":
			rule.Direction = Terminate
		default:
			return nil, fmt.Errorf("%s:%d: unknown tag [%s]", source, line, tag)
		}
		rules = append(rules, rule)
		// NegEx's terminators end possible-existence scopes too.
		if tag == "CONJ" && cat == Negated {
			rules = append(rules, Rule{Phrase: phrase, Category: Possible, Direction: Terminate, Source: source})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	return rules, nil
}

// medspacyToken is one element of a spaCy Matcher pattern, in the subset
// that medspaCy's context_rules.json uses: LOWER as a string or {"IN": [...]},
// and OP "?".
type medspacyToken struct {
	Lower json.RawMessage `json:"LOWER"`
	OP    string          `json:"OP"`
}

type medspacyRule struct {
	Category  string          `json:"category"`
	Literal   string          `json:"literal"`
	Direction string          `json:"direction"`
	Pattern   []medspacyToken `json:"pattern"`
}

// maxPatternVariants bounds the phrases one spaCy pattern expands into, so a
// malformed rule file cannot blow up start-up.
const maxPatternVariants = 512

// ParseMedspaCyRules reads medspaCy's context_rules.json. Token patterns are
// expanded at load time into the literal phrases they match (every choice of
// each IN list, with and without each optional token), so one matcher serves
// every rule source.
func ParseMedspaCyRules(r io.Reader, source string) ([]Rule, error) {
	var doc struct {
		Rules []medspacyRule `json:"context_rules"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", source, err)
	}
	var rules []Rule
	for i, mr := range doc.Rules {
		cat, ok := parseCategory(mr.Category)
		if !ok {
			continue
		}
		dir, err := parseDirection(mr.Direction)
		if err != nil {
			return nil, fmt.Errorf("%s rule %d (%q): %w", source, i, mr.Literal, err)
		}
		phrases := []string{mr.Literal}
		if len(mr.Pattern) > 0 {
			phrases, err = expandPattern(mr.Pattern)
			if err != nil {
				return nil, fmt.Errorf("%s rule %d (%q): %w", source, i, mr.Literal, err)
			}
		}
		for _, p := range phrases {
			if strings.TrimSpace(p) == "" {
				continue
			}
			rules = append(rules, Rule{Phrase: p, Category: cat, Direction: dir, Source: source})
		}
	}
	return rules, nil
}

func expandPattern(pat []medspacyToken) ([]string, error) {
	variants := []string{""}
	for _, tok := range pat {
		var choices []string
		var one string
		if err := json.Unmarshal(tok.Lower, &one); err == nil {
			choices = []string{one}
		} else {
			var in struct {
				IN []string `json:"IN"`
			}
			if err := json.Unmarshal(tok.Lower, &in); err != nil || len(in.IN) == 0 {
				return nil, fmt.Errorf("unsupported token pattern %s", tok.Lower)
			}
			choices = in.IN
		}
		switch tok.OP {
		case "":
		case "?":
			choices = append(choices, "")
		default:
			return nil, fmt.Errorf("unsupported OP %q", tok.OP)
		}
		next := make([]string, 0, len(variants)*len(choices))
		for _, v := range variants {
			for _, c := range choices {
				next = append(next, strings.TrimSpace(v+" "+c))
			}
		}
		if len(next) > maxPatternVariants {
			return nil, fmt.Errorf("pattern expands to more than %d phrases", maxPatternVariants)
		}
		variants = next
	}
	return variants, nil
}
