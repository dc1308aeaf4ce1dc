package text

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// rawToken is a word, number or significant punctuation mark in the input,
// with its byte span. Tokens never straddle invalid UTF-8 bytes, which act as
// separators, so spans are always valid offsets into the input.
type rawToken struct {
	start, end int
	punct      byte // ':' or ';' for those tokens, 0 for a word or number
}

// isWordRune reports whether r can be part of a word token.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// isShortLetters reports whether s[i:j] is a run of one or two ASCII letters,
// the shape of the halves of slash abbreviations such as "n/v" and "s/p".
func isShortLetters(s string, i, j int) bool {
	if j-i < 1 || j-i > 2 {
		return false
	}
	for k := i; k < j; k++ {
		c := s[k] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// scanTokens splits s[from:to] into tokens, appending to dst. Punctuation is
// dropped, so "ant. chest pain" and "pain, chest" tokenize like plain words,
// except a colon, which some ConText rules (": none") anchor on, and a
// semicolon, which joins independent clauses and so ends scopes. A one- or
// two-letter run, a slash and another one- or two-letter run is one token, so
// that clinical abbreviations like "n/v", "s/p" and "r/o" survive intact.
func scanTokens(dst []rawToken, s string, from, to int) []rawToken {
	i := from
	for i < to {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == ':' || c == ';' {
				dst = append(dst, rawToken{start: i, end: i + 1, punct: c})
				i++
				continue
			}
			if !isWordRune(rune(c)) {
				i++
				continue
			}
		} else {
			r, size := utf8.DecodeRuneInString(s[i:to])
			if r == utf8.RuneError || !isWordRune(r) {
				i += size
				continue
			}
		}
		start := i
		for i < to {
			c := s[i]
			if c < utf8.RuneSelf {
				if !isWordRune(rune(c)) {
					break
				}
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:to])
			if r == utf8.RuneError || !isWordRune(r) {
				break
			}
			i += size
		}
		// Join "n/v"-shaped abbreviations into one token.
		if i+1 < to && s[i] == '/' && isShortLetters(s, start, i) {
			j := i + 1
			for j < to && j-i <= 3 && s[j] < utf8.RuneSelf && isWordRune(rune(s[j])) {
				j++
			}
			if isShortLetters(s, i+1, j) && (j == to || !isWordRune(rune(s[j]))) {
				i = j
			}
		}
		// "-ve" and "+ve" (negative, positive) keep their sign: without it
		// "-ve for bleeding" would lose its negation.
		if i-start == 2 && start > from && (s[start-1] == '-' || s[start-1] == '+') && (s[start]|0x20) == 'v' && (s[start+1]|0x20) == 'e' &&
			(start-1 == from || !isWordRune(rune(s[start-2]))) {
			start--
		}
		dst = append(dst, rawToken{start: start, end: i})
	}
	return dst
}

// lowerInto writes the lower-case form of w into buf and returns it. ASCII is
// the fast path; other text goes through unicode.ToLower rune by rune.
func lowerInto(buf []byte, w string) []byte {
	buf = buf[:0]
	for i := 0; i < len(w); {
		c := w[i]
		if c < utf8.RuneSelf {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf = append(buf, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(w[i:])
		buf = utf8.AppendRune(buf, unicode.ToLower(r))
		i += size
	}
	return buf
}

// stem strips English plural endings so that "pains", "allergies" and
// "rashes" meet "pain", "allergy" and "rash". It is deliberately light:
// lexicon and text pass through the same function, so it only has to be
// consistent, not linguistically right. Short words and endings that are not
// plurals (-ss, -us, -is) are left alone.
func stem(w []byte) []byte {
	n := len(w)
	if n <= 3 || w[n-1] != 's' {
		return w
	}
	switch {
	case hasSuffix(w, "ies") && n > 4:
		w = append(w[:n-3], 'y')
	case hasSuffix(w, "sses"), hasSuffix(w, "ches"), hasSuffix(w, "shes"), hasSuffix(w, "xes"):
		w = w[:n-2]
	case hasSuffix(w, "ss"), hasSuffix(w, "us"), hasSuffix(w, "is"):
	default:
		w = w[:n-1]
	}
	return w
}

func hasSuffix(w []byte, suf string) bool {
	return len(w) >= len(suf) && string(w[len(w)-len(suf):]) == suf
}

// normalizeWord is the normal form of a single word: lower-cased and stemmed.
func normalizeWord(w string) string {
	var buf [64]byte
	return string(stem(lowerInto(buf[:0], w)))
}

// splitPhrase tokenizes a lexicon or rule phrase into its raw words, with
// the same rules as the text it will be matched against.
func splitPhrase(p string) []string {
	toks := scanTokens(nil, p, 0, len(p))
	words := make([]string, 0, len(toks))
	for _, t := range toks {
		words = append(words, p[t.start:t.end])
	}
	return words
}

// cleanPhrase lower-cases a phrase and collapses its whitespace, for keys
// and display names built from data files.
func cleanPhrase(p string) string {
	return strings.Join(strings.Fields(strings.ToLower(p)), " ")
}
