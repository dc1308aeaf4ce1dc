package text

import "strings"

// sentenceAbbrevs are words that end with a period without ending a
// sentence: titles, Latin dosing abbreviations and common clinical short
// forms. Dotted forms ("b.i.d.") are caught by the single-letter rule.
var sentenceAbbrevs = map[string]bool{
	"dr": true, "mr": true, "mrs": true, "ms": true, "prof": true, "st": true, "jr": true, "sr": true,
	"vs": true, "etc": true, "approx": true, "pt": true, "pts": true, "fig": true,
	"bid": true, "tid": true, "qid": true, "qd": true, "qhs": true, "prn": true, "po": true, "iv": true,
	"im": true, "sc": true, "subq": true, "q": true, "hx": true, "dx": true, "tx": true, "sx": true,
	"abd": true, "ant": true, "lt": true, "rt": true, "rhs": true, "lhs": true,
	"temp": true, "resp": true, "min": true, "hr": true, "hrs": true, "wk": true, "wks": true,
	"mo": true, "yr": true, "yrs": true, "yo": true, "sat": true,
	"cm": true, "mm": true, "mg": true, "mcg": true, "kg": true, "ml": true, "dl": true, "inc": true,
	"e.g": true, "i.e": true, "ca": true, "cf": true, "esp": true, "c/o": true, "h/o": true,
}

// splitSentences appends the byte ranges of the sentences of s to dst.
// A sentence ends at ".", "!" or "?" followed by white space and a word that
// does not start in lower case, unless the period closes a known abbreviation
// ("Dr.", "b.i.d.") or sits inside a number ("2.5 mg"); at a blank line;
// before a line that starts a list item; and before a section header in
// capitals ("CLINICAL HISTORY:"), which starts a new topic even where the
// report runs sections together on one line. ConText scopes never cross the
// ranges returned here.
func splitSentences(dst [][2]int, s string) [][2]int {
	start := 0
	emit := func(end int) {
		// Trim white space so empty ranges are dropped.
		a, b := start, end
		for a < b && isSpace(s[a]) {
			a++
		}
		for b > a && isSpace(s[b-1]) {
			b--
		}
		if a < b {
			dst = append(dst, [2]int{a, b})
		}
		start = end
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '.', '!', '?':
			j := i + 1
			for j < len(s) && (s[j] == '"' || s[j] == '\'' || s[j] == ')') {
				j++
			}
			if j < len(s) && !isSpace(s[j]) {
				continue // "2.5", "b.i.d", "e.g.,"
			}
			if c == '.' && isAbbrevBefore(s, i) {
				continue
			}
			k := j
			for k < len(s) && isSpace(s[k]) {
				k++
			}
			if k < len(s) && s[k] >= 'a' && s[k] <= 'z' {
				continue
			}
			emit(j)
			i = j - 1
		case ':':
			if h := headerStart(s, start, i); h > start {
				emit(h)
			}
		case '\n':
			k := i + 1
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r') {
				k++
			}
			if k < len(s) && (s[k] == '\n' || startsListItem(s[k:])) {
				emit(i)
			}
		}
	}
	emit(len(s))
	return dst
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// isAbbrevBefore reports whether the word that ends at the period s[i] is an
// abbreviation or a single letter (an initial, or the last letter of "b.i.d").
func isAbbrevBefore(s string, i int) bool {
	j := i
	for j > 0 && !isSpace(s[j-1]) && s[j-1] != '(' {
		j--
	}
	w := s[j:i]
	if len(w) == 0 {
		return false
	}
	if len(w) == 1 && (w[0]|0x20) >= 'a' && (w[0]|0x20) <= 'z' {
		return true
	}
	if len(w) > 2 && w[len(w)-2] == '.' {
		return true // "b.i.d", "e.g", "p.o"
	}
	if len(w) > 8 {
		return false
	}
	var buf [8]byte
	return sentenceAbbrevs[string(lowerInto(buf[:0], w))]
}

// startsListItem reports whether a line begins with "-", "*", "•" or "1." /
// "1)" followed by a space: a new item, so a new sentence.
func startsListItem(s string) bool {
	if len(s) >= 2 && (s[0] == '-' || s[0] == '*') && s[1] == ' ' {
		return true
	}
	if len(s) >= 4 && s[:3] == "•" {
		return true
	}
	i := 0
	for i < len(s) && i < 3 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 0 && i+1 < len(s) && (s[i] == '.' || s[i] == ')') && s[i+1] == ' '
}

// headerStart returns where an upper-case section header ending with the
// colon at s[colon] starts, or -1. A header is one to five words of capital
// letters (and "/", "-", "&", parentheses) separated by single spaces, and
// preceded by the sentence start, a line break, a tab, a period or two
// spaces: "BP:" inside a running sentence is not a header, nor is
// "Extremities:".
func headerStart(s string, from, colon int) int {
	i := colon
	for i > from && colon-i < 48 {
		c := s[i-1]
		if isHeaderByte(c) || c == ' ' && i-2 >= from && isHeaderByte(s[i-2]) {
			i--
			continue
		}
		break
	}
	h := i
	for h < colon && s[h] == ' ' {
		h++
	}
	if !hasUpper(s[h:colon]) || strings.Count(strings.TrimSpace(s[h:colon]), " ") > 4 {
		return -1
	}
	if i == from {
		return h
	}
	switch c := s[i-1]; {
	case c == '\n' || c == '\t' || c == '.':
		return h
	case c == ' ' && i-2 >= from && (s[i-2] == ' ' || s[i-2] == '.' || s[i-2] == '\n' || s[i-2] == ':'):
		return h
	}
	return -1
}

func isHeaderByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c == '/' || c == '-' || c == '&' || c == '(' || c == ')'
}

// hasUpper reports whether w holds at least two capital letters, so that
// "A:" or "-:" is not taken for a header.
func hasUpper(w string) bool {
	n := 0
	for i := 0; i < len(w); i++ {
		if w[i] >= 'A' && w[i] <= 'Z' {
			n++
		}
	}
	return n >= 2
}
