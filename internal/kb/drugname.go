package kb

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"unicode"
	"unicode/utf8"
)

// DrugNames resolves typed medication names to generic names. Immutable after
// construction and safe for concurrent use.
type DrugNames struct {
	// names maps a normalised generic or brand to what it resolves to.
	names map[string]dnEntry
	// prefixes holds every proper word-prefix of a key of names ("potassium"
	// for "potassium chloride"), so growing a span stops as soon as no name
	// can continue it.
	prefixes map[string]struct{}
	// maxWords is the most words in any name; no longer span can match.
	maxWords int

	// fuzzy lists the names long enough to be fuzzy-matched; index maps the
	// hash of every deletion variant (up to that name's edit budget) to the
	// ids in postings of the names producing it (SymSpell-style), so a lookup
	// touches only near candidates instead of the whole vocabulary.
	fuzzy    []dnFuzzyName
	index    map[uint64]dnPosting
	postings []int32
}

// DrugMatch says how a name was resolved.
type DrugMatch string

// How a DrugResolution was reached.
const (
	MatchExact   DrugMatch = "exact"     // the generic itself (case, spacing and punctuation aside)
	MatchBrand   DrugMatch = "brand"     // a brand name, possibly after dropping doses and forms
	MatchForm    DrugMatch = "salt-form" // after dropping doses, dosage forms, release modifiers and salts
	MatchFuzzy   DrugMatch = "fuzzy"     // within a small edit distance
	MatchUnknown DrugMatch = "unknown"   // nothing resolved; never a guess
)

// DrugResolution is the result for one input.
type DrugResolution struct {
	Input    string    `json:"input"`
	Generic  string    `json:"generic,omitempty"`
	Match    DrugMatch `json:"match"`
	Distance int       `json:"distance,omitempty"` // edits, for fuzzy matches
}

const (
	// dnMaxFuzzyBytes caps fuzzy work: a normalised input longer than this is
	// free text, not a drug name, and is never fuzzy-matched.
	dnMaxFuzzyBytes = 200
	// dnMaxFuzzyRunes bounds the names and queries the fuzzy matcher sees, so
	// its work (about n²/2 variants for n runes) stays small and its buffers
	// fit on the stack. Longer names are long multi-word products (vaccines,
	// immune globulins) that are matched exactly or not at all.
	dnMaxFuzzyRunes = 48
	// dnHashBase is the odd multiplier of the deletion-variant hash.
	dnHashBase = 1099511628211
	// dnMaxFuzzyWords bounds the per-word fuzzy retries of one input.
	dnMaxFuzzyWords = 6
)

// dnEntry is what a normalised name resolves to.
type dnEntry struct {
	generic string // as spelt in the generics passed to NewDrugNames
	brand   bool
}

// dnFuzzyName is one fuzzy-matchable name (generic or brand).
type dnFuzzyName struct {
	runes    []rune
	maxEdits int    // edit budget from the name's own length
	sig      string // dnSignature: what an edit may never change
	generic  string
}

// dnPosting locates the ids for one deletion-variant hash in postings.
type dnPosting struct{ off, n uint32 }

// Token kinds of a normalised input.
const (
	dnKindContent uint8 = iota // an unknown word: kept
	dnKindNoise                // dose, unit, dosage form, release modifier, frequency: dropped
	dnKindSalt                 // salt or hydrate: dropped on the second try
	dnKindName                 // part of a known generic or brand: never dropped
)

// dnToken is one word of a normalised input, by byte offsets.
type dnToken struct {
	start, end int
	kind       uint8
}

// NewDrugNames builds a resolver over generic names (lower-case ingredient
// names such as "metoprolol", "potassium chloride", "sulfamethoxazole") and a
// brand → generic map (keys any case). Every brand's generic must be in
// generics; an empty or duplicate-conflicting input is an error.
//
// Names are compared after normalisation; Resolve returns a generic spelt as
// in generics (the first spelling when two normalise alike). brands may be nil.
func NewDrugNames(generics []string, brands map[string]string) (*DrugNames, error) {
	if len(generics) == 0 {
		return nil, errors.New("no generic names")
	}
	d := &DrugNames{
		names:    make(map[string]dnEntry, len(generics)+len(brands)),
		prefixes: make(map[string]struct{}),
	}
	// order lists normalised names in input order, for stable fuzzy ids.
	order := make([]string, 0, len(generics)+len(brands))
	for i, g := range generics {
		key := string(dnAppendNormal(nil, g))
		if key == "" {
			return nil, fmt.Errorf("generic #%d %q is empty after normalisation", i, g)
		}
		if _, dup := d.names[key]; dup {
			continue // the same ingredient spelt twice is harmless: keep the first spelling
		}
		d.names[key] = dnEntry{generic: g}
		order = append(order, key)
	}

	// Sorted so that errors and fuzzy ids do not depend on map order.
	brandKeys := make([]string, 0, len(brands))
	for b := range brands {
		brandKeys = append(brandKeys, b)
	}
	sort.Strings(brandKeys)
	for _, b := range brandKeys {
		g := brands[b]
		key := string(dnAppendNormal(nil, b))
		if key == "" {
			return nil, fmt.Errorf("brand %q is empty after normalisation", b)
		}
		target, ok := d.names[string(dnAppendNormal(nil, g))]
		if !ok || target.brand {
			return nil, fmt.Errorf("brand %q maps to %q, which is not a generic", b, g)
		}
		if prev, ok := d.names[key]; ok {
			if prev.generic != target.generic {
				return nil, fmt.Errorf("%q resolves to both %q and %q", b, prev.generic, target.generic)
			}
			continue
		}
		d.names[key] = dnEntry{generic: target.generic, brand: true}
		order = append(order, key)
	}

	for key := range d.names {
		words := 1
		for i := 0; i < len(key); i++ {
			if key[i] == ' ' {
				d.prefixes[key[:i]] = struct{}{}
				words++
			}
		}
		d.maxWords = max(d.maxWords, words)
	}
	d.buildFuzzyIndex(order)
	return d, nil
}

// buildFuzzyIndex indexes every deletion variant of every name in order
// (distinct normalised keys of names).
func (d *DrugNames) buildFuzzyIndex(order []string) {
	type pair struct {
		hash uint64
		id   int32
	}
	var pairs []pair
	for _, key := range order {
		runes := []rune(key)
		if len(runes) > dnMaxFuzzyRunes {
			continue
		}
		k := dnMaxEdits(dnLetters(runes))
		if k == 0 {
			continue // too short to fuzz: only an exact spelling may reach it
		}
		id := int32(len(d.fuzzy))
		d.fuzzy = append(d.fuzzy, dnFuzzyName{
			runes:    runes,
			maxEdits: k,
			sig:      string(dnSignature(nil, runes)),
			generic:  d.names[key].generic,
		})
		dnDeletionHashes(runes, k, func(h uint64) { pairs = append(pairs, pair{h, id}) })
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	pairs = slices.Compact(pairs)
	d.postings = make([]int32, len(pairs))
	d.index = make(map[uint64]dnPosting)
	for i := 0; i < len(pairs); {
		j := i
		for j < len(pairs) && pairs[j].hash == pairs[i].hash {
			d.postings[j] = pairs[j].id
			j++
		}
		d.index[pairs[i].hash] = dnPosting{off: uint32(i), n: uint32(j - i)}
		i = j
	}
}

// Resolve maps one typed name to a generic, or MatchUnknown.
//
// Order: (1) the normalised whole is a generic (MatchExact: case, spacing,
// punctuation and common accents aside) or (2) a brand (MatchBrand); (3)
// doses ("50mg", "500mg/5ml"), units, dosage forms and routes ("tab", "oral
// solution"), release modifiers ("ER", "XL"), frequencies ("bid", "q6h") and
// salts ("tartrate", "sodium") are dropped and the rest looked up again
// (MatchForm, or MatchBrand for a brand). A word that is part of a known name
// is never dropped: the longest run of words naming a generic or brand is
// protected first, so "potassium chloride 20 meq" stays "potassium chloride"
// while "losartan potassium 50 mg" becomes "losartan". (4) Fuzzy (MatchFuzzy):
// optimal-string-alignment distance (Damerau–Levenshtein, an adjacent
// transposition counts 1) within 1 edit for 4–7 letters, 2 for 8 or more,
// none below 4, against generics and brands; edits may not change digits or
// one- and two-letter words ("vitamin b 6" is not "vitamin b 12"); a tie
// between different generics is unknown. Normalised inputs over 200 bytes
// are not fuzzy-matched.
//
// Combinations ("amoxicillin/clavulanate", "a + b", "a with b") resolve to
// the whole if it is a known generic or brand, otherwise to the first
// component that resolves, an exactly named component before a misspelt
// one. Callers that want every ingredient should split on "/" and "+" and
// resolve each part.
//
// Resolve never panics, whatever the input (invalid UTF-8, control
// characters, very long text), and a nil *DrugNames resolves everything to
// MatchUnknown. Input is always the raw argument.
func (d *DrugNames) Resolve(raw string) DrugResolution {
	res := DrugResolution{Input: raw, Match: MatchUnknown}
	if d == nil {
		return res
	}
	// Stack buffers keep the common case allocation-free; longer inputs
	// simply grow onto the heap.
	var normBuf, coreBuf, bareBuf [128]byte
	var tokBuf [24]dnToken

	norm := dnAppendNormal(normBuf[:0], raw)
	if len(norm) == 0 {
		return res
	}
	if e, ok := d.names[string(norm)]; ok {
		return dnResolved(res, e, MatchExact)
	}

	toks := dnTokenize(tokBuf[:0], norm)
	walk, walked := d.markNameSpans(norm, toks)
	// core keeps salts so "potassium chloride" or a generic that includes a
	// salt word can still match whole; bare drops them too.
	core := dnJoin(coreBuf[:0], norm, toks, true)
	if e, ok := d.names[string(core)]; ok {
		return dnResolved(res, e, MatchForm)
	}
	bare := dnJoin(bareBuf[:0], norm, toks, false)
	if e, ok := d.names[string(bare)]; ok {
		return dnResolved(res, e, MatchForm)
	}
	if walked {
		return dnResolved(res, walk, MatchForm)
	}

	if len(norm) > dnMaxFuzzyBytes {
		return res
	}
	if g, dist, ok := d.fuzzyLookup(core); ok {
		return dnFuzzyResolved(res, g, dist)
	}
	if string(bare) != string(core) {
		if g, dist, ok := d.fuzzyLookup(bare); ok {
			return dnFuzzyResolved(res, g, dist)
		}
	}
	// A combination or a name with stray words: fuzz its words one by one,
	// first resolvable wins.
	tries := 0
	for _, t := range toks {
		w := norm[t.start:t.end]
		if t.kind != dnKindContent || string(w) == string(core) || string(w) == string(bare) {
			continue // not a candidate, or already tried above
		}
		if tries++; tries > dnMaxFuzzyWords {
			break
		}
		if g, dist, ok := d.fuzzyLookup(w); ok {
			return dnFuzzyResolved(res, g, dist)
		}
	}
	return res
}

// dnResolved fills res from a name entry; a brand always reports MatchBrand
// so callers can tell that a brand was translated.
func dnResolved(res DrugResolution, e dnEntry, m DrugMatch) DrugResolution {
	res.Generic, res.Match = e.generic, m
	if e.brand {
		res.Match = MatchBrand
	}
	return res
}

func dnFuzzyResolved(res DrugResolution, generic string, dist int) DrugResolution {
	res.Generic, res.Match, res.Distance = generic, MatchFuzzy, dist
	return res
}

// markNameSpans marks, left to right, the longest run of words at each
// position that is a known name as dnKindName, so no later step strips a
// word belonging to a name ("potassium chloride", "penicillin g"). It
// returns the first such name. A lone salt word that is itself a generic
// ("potassium" in "losartan potassium") is left a salt and only returned when
// no other word, known or not, can name the drug ("potassium citrate 10 meq").
func (d *DrugNames) markNameSpans(norm []byte, toks []dnToken) (dnEntry, bool) {
	var first, salt dnEntry
	found, saltFound := false, false
	for i := 0; i < len(toks); {
		end := -1
		var e dnEntry
		for j := i; j < len(toks) && j-i < d.maxWords; j++ {
			span := norm[toks[i].start:toks[j].end]
			if got, ok := d.names[string(span)]; ok {
				end, e = j+1, got
			}
			if _, ok := d.prefixes[string(span)]; !ok {
				break
			}
		}
		switch {
		case end < 0:
			i++
			continue
		case end == i+1 && toks[i].kind == dnKindSalt:
			if !saltFound {
				salt, saltFound = e, true
			}
		default:
			for k := i; k < end; k++ {
				toks[k].kind = dnKindName
			}
			if !found {
				first, found = e, true
			}
		}
		i = end
	}
	if !found && saltFound {
		for _, t := range toks {
			if t.kind == dnKindContent {
				// "xyzartan potassium": the drug is the unknown word, not its salt.
				return dnEntry{}, false
			}
		}
		return salt, true
	}
	return first, found
}

// dnJoin appends the words of norm worth keeping (names, unknown words and,
// if keepSalts, salts), one space apart.
func dnJoin(dst, norm []byte, toks []dnToken, keepSalts bool) []byte {
	for _, t := range toks {
		if t.kind == dnKindNoise || (t.kind == dnKindSalt && !keepSalts) {
			continue
		}
		if len(dst) > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, norm[t.start:t.end]...)
	}
	return dst
}

// dnTokenize splits a normalised input (single spaces, no edge spaces) into
// classified words.
func dnTokenize(dst []dnToken, norm []byte) []dnToken {
	for i := 0; i < len(norm); {
		j := i
		for j < len(norm) && norm[j] != ' ' {
			j++
		}
		dst = append(dst, dnToken{start: i, end: j, kind: dnClassifyWord(norm[i:j])})
		i = j + 1
	}
	return dst
}

// dnClassifyWord says whether a normalised word can be dropped, and when.
func dnClassifyWord(w []byte) uint8 {
	switch {
	case dnIsDose(w), dnIsFrequencyCode(w):
		return dnKindNoise
	}
	if _, ok := drugNoiseWords[string(w)]; ok {
		return dnKindNoise
	}
	if _, ok := drugUnitWords[string(w)]; ok {
		return dnKindNoise
	}
	if _, ok := drugSaltWords[string(w)]; ok {
		return dnKindSalt
	}
	return dnKindContent
}

// dnIsDose reports a number, with or without a unit ("50", "2.5mg", "10%",
// "40meq"); a bare unit is handled by drugUnitWords.
func dnIsDose(w []byte) bool {
	n, digits := 0, 0
	for n < len(w) && (dnIsDigit(w[n]) || w[n] == '.') {
		if w[n] != '.' {
			digits++
		}
		n++
	}
	if digits == 0 {
		return false
	}
	if n == len(w) {
		return true
	}
	_, ok := drugUnitWords[string(w[n:])]
	return ok
}

// dnIsFrequencyCode reports sig codes such as "q6h", "q12h", "q2d".
func dnIsFrequencyCode(w []byte) bool {
	if len(w) < 2 || w[0] != 'q' || !dnIsDigit(w[1]) {
		return false
	}
	n := 1
	for n < len(w) && dnIsDigit(w[n]) {
		n++
	}
	switch string(w[n:]) {
	case "", "h", "hr", "hrs", "d", "wk":
		return true
	}
	return false
}

func dnIsDigit(c byte) bool { return c >= '0' && c <= '9' }

func dnIsASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// dnAppendNormal appends the normalised form of s to dst: lower-case
// (Unicode-aware, full-width folded to ASCII, common accents and combining
// marks removed), words of letters and digits separated by single spaces.
// Every other character (punctuation such as - _ / , ( ) +, control
// characters, invalid UTF-8) separates words, except that a decimal point
// inside a number is kept ("2.5mg"), dots between single letters join
// ("A.S.A." → "asa") and apostrophes and invisible format characters join
// ("john's" → "johns").
func dnAppendNormal(dst []byte, s string) []byte {
	start := len(dst)
	sep := false
	seg := 0 // characters since the word began or since dotted initials joined
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
			if r >= 0xFF01 && r <= 0xFF5E {
				r -= 0xFEE0 // full-width ASCII variants
			}
		}
		i += size
		var fold string
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '%':
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		case r == '.':
			switch {
			case sep || len(dst) == start || i == len(s):
				sep = true
			case dnIsDigit(dst[len(dst)-1]) && dnIsDigit(s[i]):
				dst = append(dst, '.') // a decimal point: "2.5mg" stays one dose word
				seg++
			case seg == 1 && dnIsASCIILetter(dst[len(dst)-1]) && dnIsASCIILetter(s[i]) && (i+1 == len(s) || !dnIsASCIILetter(s[i+1]) && !dnIsDigit(s[i+1])):
				seg = 0 // dotted initials: "A.S.A." → "asa", "b.i.d." → "bid"
			default:
				sep = true
			}
			continue
		case r == '\'' || r == '\u2019':
			continue
		case r < utf8.RuneSelf, r == utf8.RuneError:
			sep = true
			continue
		default:
			if unicode.In(r, unicode.Mn, unicode.Cf) {
				continue // combining accents and zero-width characters are invisible to the typist
			}
			r = unicode.ToLower(r)
			if f, ok := drugFoldRunes[r]; ok {
				fold = f
			} else if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				sep = true
				continue
			}
		}
		if sep && len(dst) > start {
			dst = append(dst, ' ')
			seg = 0
		}
		sep = false
		seg++
		switch {
		case fold != "":
			dst = append(dst, fold...)
		case r < utf8.RuneSelf:
			dst = append(dst, byte(r))
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

// dnMaxEdits is the edit budget for a name of n letters: short names are
// too close to each other to fuzz safely.
func dnMaxEdits(n int) int {
	switch {
	case n < 4:
		return 0
	case n < 8:
		return 1
	default:
		return 2
	}
}

// dnLetters counts the runes of a name other than spaces.
func dnLetters(r []rune) int {
	n := 0
	for _, c := range r {
		if c != ' ' {
			n++
		}
	}
	return n
}

// dnDeletionHashes calls emit with the hash of r and of every variant of r
// with up to k (at most 2) runes deleted. If two strings are within k edits
// (insertions, deletions, substitutions, adjacent transpositions), some
// variant of one equals some variant of the other, which is what makes the
// deletion index complete.
//
// The hash is positional, h(s) = Σ s[p]·B^(C−p) mod 2^64 with C =
// dnMaxFuzzyRunes, so deleting a rune just multiplies the sum of the runes
// after it by B: every variant costs O(1) from prefix sums instead of O(len).
// A collision only costs one wasted distance check. r must be at most
// dnMaxFuzzyRunes long.
func dnDeletionHashes(r []rune, k int, emit func(uint64)) {
	b := uint64(dnHashBase)
	b2 := b * b // wraps mod 2^64, like every product here
	n := len(r)
	if n > dnMaxFuzzyRunes {
		return
	}
	var pre [dnMaxFuzzyRunes + 1]uint64
	w := uint64(1)
	for range dnMaxFuzzyRunes - n {
		w *= b
	}
	// w is B^(C−t) at t = n; prefix sums need it from t = 0 upward, so fill
	// the weights backwards first.
	var weight [dnMaxFuzzyRunes]uint64
	for t := n - 1; t >= 0; t-- {
		w *= b
		weight[t] = w
	}
	for t := range n {
		pre[t+1] = pre[t] + uint64(r[t])*weight[t]
	}
	total := pre[n]
	emit(total)
	if k < 1 {
		return
	}
	for i := range n {
		// Deleting either of two equal neighbours gives the same string:
		// emit each variant once, from its lowest positions.
		if i == 0 || r[i] != r[i-1] {
			emit(pre[i] + (total-pre[i+1])*b)
		}
		if k < 2 {
			continue
		}
		for j := i + 1; j < n; j++ {
			if (i > 0 && r[i] == r[i-1]) || (j-1 > i && r[j] == r[j-1]) {
				continue
			}
			emit(pre[i] + (pre[j]-pre[i+1])*b + (total-pre[j+1])*b2)
		}
	}
}

// fuzzyLookup finds the unique generic closest to q (a normalised name)
// within the edit budget of both q and the candidate. ok is false when
// nothing is close enough or two different generics tie.
func (d *DrugNames) fuzzyLookup(q []byte) (generic string, dist int, ok bool) {
	if len(q) == 0 || len(q) > dnMaxFuzzyBytes {
		return "", 0, false
	}
	var runeBuf [dnMaxFuzzyRunes]rune
	qr := runeBuf[:0]
	for i := 0; i < len(q); {
		if len(qr) == dnMaxFuzzyRunes {
			return "", 0, false // longer than any fuzzy-matchable name
		}
		r, size := utf8.DecodeRune(q[i:])
		qr = append(qr, r)
		i += size
	}
	k := dnMaxEdits(dnLetters(qr))
	if k == 0 {
		return "", 0, false
	}

	var sigBuf [2*dnMaxFuzzyRunes + 2]byte
	sig := dnSignature(sigBuf[:0], qr)
	var seenBuf [32]int32
	seen := seenBuf[:0]
	best, bestGeneric, tied := k+1, "", false
	visit := func(h uint64) {
		p, ok := d.index[h]
		if !ok {
			return
		}
		for _, id := range d.postings[p.off : p.off+p.n] {
			if slices.Contains(seen, id) {
				continue
			}
			seen = append(seen, id)
			c := &d.fuzzy[id]
			limit := min(k, c.maxEdits)
			if abs := len(c.runes) - len(qr); abs > limit || -abs > limit || c.sig != string(sig) {
				continue
			}
			dist := dnOSA(qr, c.runes, limit)
			switch {
			case dist > limit:
			case dist < best:
				best, bestGeneric, tied = dist, c.generic, false
			case dist == best && c.generic != bestGeneric:
				tied = true
			}
		}
	}
	dnDeletionHashes(qr, k, visit)
	if best > k || tied {
		return "", 0, false
	}
	return bestGeneric, best, true
}

// dnSignature appends the parts of a name that an edit must not change:
// its digits in order, then its words of one or two characters. Those carry
// the difference between distinct drugs one edit apart ("vitamin b 6" and
// "vitamin b 12", "interferon alfa 2a" and "2b", "penicillin g" and "v").
func dnSignature(dst []byte, r []rune) []byte {
	for _, c := range r {
		if c >= '0' && c <= '9' {
			dst = append(dst, byte(c))
		}
	}
	dst = append(dst, '|')
	for i := 0; i < len(r); {
		j := i
		for j < len(r) && r[j] != ' ' {
			j++
		}
		if j-i <= 2 {
			for _, c := range r[i:j] {
				dst = utf8.AppendRune(dst, c)
			}
			dst = append(dst, ' ')
		}
		i = j + 1
	}
	return dst
}

// dnOSA is the optimal-string-alignment (restricted Damerau–Levenshtein)
// distance between a and b, or limit+1 once it must exceed limit. Both are
// at most dnMaxFuzzyRunes long.
func dnOSA(a, b []rune, limit int) int {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > limit {
		return limit + 1
	}
	if len(a) == 0 {
		return len(b)
	}
	var buf [3 * (dnMaxFuzzyRunes + 1)]int
	w := len(b) + 1
	prev2, prev, cur := buf[:w], buf[w:2*w], buf[2*w:3*w]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > limit {
			return limit + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// drugFoldRunes folds lower-case accented letters to ASCII so "métoprolol"
// and "metoprolol" meet; µ and μ become "u" so "µg" reads as the unit "ug".
var drugFoldRunes = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a", 'ā': "a", 'ă': "a", 'ą': "a",
	'æ': "ae", 'ç': "c", 'ć': "c", 'č': "c", 'ď': "d", 'đ': "d", 'ð': "d",
	'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ē': "e", 'ė': "e", 'ę': "e", 'ě': "e",
	'ğ': "g", 'ì': "i", 'í': "i", 'î': "i", 'ï': "i", 'ī': "i", 'į': "i", 'ı': "i",
	'ł': "l", 'ñ': "n", 'ń': "n", 'ň': "n",
	'ò': "o", 'ó': "o", 'ô': "o", 'õ': "o", 'ö': "o", 'ø': "o", 'ō': "o", 'ő': "o", 'œ': "oe",
	'ř': "r", 'ś': "s", 'š': "s", 'ş': "s", 'ß': "ss", 'ť': "t", 'ţ': "t", 'þ': "th",
	'ù': "u", 'ú': "u", 'û': "u", 'ü': "u", 'ū': "u", 'ů': "u", 'ű': "u", 'ų': "u",
	'ý': "y", 'ÿ': "y", 'ź': "z", 'ż': "z", 'ž': "z",
	'µ': "u", 'μ': "u",
}

// drugUnitWords are dose units, alone ("mg") or after a number ("50mg").
// "mg/ml" arrives as "mg ml" because "/" separates words.
var drugUnitWords = map[string]struct{}{
	"%": {}, "mg": {}, "mgs": {}, "mcg": {}, "mcgs": {}, "ug": {}, "g": {}, "gm": {}, "gms": {},
	"gram": {}, "grams": {}, "kg": {}, "ng": {}, "ml": {}, "mls": {}, "l": {}, "cc": {}, "dl": {},
	"litre": {}, "liter": {}, "milligram": {}, "milligrams": {}, "microgram": {}, "micrograms": {},
	"millilitre": {}, "milliliter": {}, "millilitres": {}, "milliliters": {}, "m2": {},
	"unit": {}, "units": {}, "u": {}, "iu": {}, "ius": {}, "meq": {}, "mmol": {}, "mol": {},
	"million": {}, "mu": {}, "h": {}, "hr": {}, "hrs": {}, "hour": {}, "hours": {},
	"puff": {}, "puffs": {}, "actuation": {}, "actuations": {}, "dose": {}, "doses": {},
	"tsp": {}, "tbsp": {}, "teaspoon": {}, "teaspoons": {}, "tablespoon": {}, "x": {},
}

// drugNoiseWords are dosage forms, routes, release and strength modifiers,
// frequencies and connectives: none of them changes the ingredient.
var drugNoiseWords = map[string]struct{}{
	// dosage forms and packaging
	"tab": {}, "tabs": {}, "tablet": {}, "tablets": {}, "tbl": {}, "caplet": {}, "caplets": {},
	"cap": {}, "caps": {}, "capsule": {}, "capsules": {}, "gelcap": {}, "softgel": {}, "softgels": {},
	"inj": {}, "injection": {}, "injections": {}, "injectable": {}, "infusion": {}, "inf": {},
	"solution": {}, "solutions": {}, "soln": {}, "sol": {}, "susp": {}, "suspension": {},
	"syrup": {}, "syr": {}, "elixir": {}, "liquid": {}, "concentrate": {}, "emulsion": {}, "drink": {},
	"cream": {}, "crm": {}, "ointment": {}, "oint": {}, "gel": {}, "lotion": {}, "foam": {},
	"shampoo": {}, "paste": {}, "patch": {}, "patches": {}, "drop": {}, "drops": {}, "gtt": {}, "gtts": {},
	"eyedrops": {}, "inhaler": {}, "inhalers": {}, "inh": {}, "inhalation": {}, "spray": {}, "sprays": {},
	"aerosol": {}, "mdi": {}, "dpi": {}, "hfa": {}, "nebuliser": {}, "nebulizer": {}, "neb": {},
	"nebs": {}, "nebules": {}, "respules": {}, "powder": {}, "pwd": {}, "granules": {}, "granule": {},
	"sachet": {}, "sachets": {}, "lozenge": {}, "lozenges": {}, "suppository": {}, "suppositories": {},
	"supp": {}, "pessary": {}, "pessaries": {}, "vial": {}, "vials": {}, "amp": {}, "amps": {},
	"ampoule": {}, "ampoules": {}, "ampule": {}, "pen": {}, "pens": {}, "prefilled": {}, "syringe": {},
	"syringes": {}, "cartridge": {}, "kit": {}, "bag": {}, "bottle": {}, "pack": {}, "wafer": {},
	"mouthwash": {}, "gargle": {}, "chewable": {}, "chew": {}, "dispersible": {}, "orodispersible": {},
	"effervescent": {}, "soluble": {}, "disintegrating": {}, "ec": {}, "enteric": {}, "coated": {},
	"film": {}, "fc": {}, "reconstitution": {}, "preservative": {}, "free": {}, "pf": {},
	// routes
	"oral": {}, "orally": {}, "po": {}, "iv": {}, "im": {}, "sc": {}, "sq": {}, "subq": {}, "subcut": {},
	"subcutaneous": {}, "intravenous": {}, "intramuscular": {}, "pr": {}, "sl": {}, "sublingual": {},
	"buccal": {}, "topical": {}, "transdermal": {}, "nasal": {}, "rectal": {}, "vaginal": {},
	"ophthalmic": {}, "ophth": {}, "otic": {}, "eye": {}, "ear": {}, "mouth": {},
	// release and strength modifiers
	"er": {}, "xr": {}, "xl": {}, "sr": {}, "cr": {}, "la": {}, "dr": {}, "odt": {}, "ir": {}, "cd": {},
	"xt": {}, "mr": {}, "ds": {}, "ss": {}, "es": {}, "ext": {}, "rel": {}, "extended": {}, "release": {},
	"delayed": {}, "sustained": {}, "controlled": {}, "modified": {}, "immediate": {}, "prolonged": {},
	"retard": {}, "depot": {}, "mite": {}, "forte": {}, "strength": {}, "extra": {}, "maximum": {}, "max": {},
	"double": {}, "low": {}, "baby": {}, "junior": {}, "pediatric": {}, "paediatric": {}, "adult": {},
	"children": {}, "childrens": {}, "infant": {}, "infants": {},
	// frequencies and directions
	"daily": {}, "od": {}, "bd": {}, "bid": {}, "tid": {}, "qid": {}, "qds": {}, "tds": {}, "qd": {},
	"qod": {}, "qhs": {}, "qam": {}, "qpm": {}, "hs": {}, "ac": {}, "pc": {}, "prn": {}, "stat": {},
	"once": {}, "twice": {}, "thrice": {}, "times": {}, "every": {}, "each": {}, "other": {},
	"day": {}, "days": {}, "week": {}, "weekly": {}, "monthly": {}, "morning": {}, "evening": {},
	"night": {}, "nightly": {}, "bedtime": {}, "nocte": {}, "mane": {}, "am": {}, "pm": {},
	"as": {}, "needed": {}, "directed": {}, "required": {}, "take": {}, "give": {}, "use": {},
	"apply": {}, "inhale": {}, "by": {},
	// connectives: a combination is resolved component by component
	"and": {}, "with": {}, "w": {}, "plus": {}, "or": {}, "in": {}, "of": {}, "per": {}, "for": {},
	"to": {}, "a": {}, "s": {}, "then": {}, "at": {}, "on": {}, "up": {},
}

// drugSaltWords are salts, esters and hydrates that name the same active
// ingredient; a word that is part of a known generic is never stripped.
var drugSaltWords = map[string]struct{}{
	"tartrate": {}, "bitartrate": {}, "hemitartrate": {}, "succinate": {}, "hydrochloride": {},
	"dihydrochloride": {}, "hcl": {}, "hydrobromide": {}, "hbr": {}, "sodium": {}, "disodium": {},
	"potassium": {}, "dipotassium": {}, "calcium": {}, "magnesium": {}, "sulfate": {}, "sulphate": {},
	"besylate": {}, "besilate": {}, "maleate": {}, "mesylate": {}, "mesilate": {}, "dimesylate": {},
	"citrate": {}, "phosphate": {}, "diphosphate": {}, "acetate": {}, "bromide": {}, "chloride": {},
	"iodide": {}, "fumarate": {}, "hemifumarate": {}, "hyclate": {}, "monohydrate": {}, "dihydrate": {},
	"trihydrate": {}, "hemihydrate": {}, "sesquihydrate": {}, "hydrate": {}, "anhydrous": {},
	"dipropionate": {}, "propionate": {}, "valerate": {}, "butyrate": {}, "tosylate": {}, "tosilate": {},
	"lactate": {}, "gluconate": {}, "carbonate": {}, "stearate": {}, "palmitate": {}, "pamoate": {},
	"embonate": {}, "napsylate": {}, "oxalate": {}, "tromethamine": {}, "trometamol": {},
	"meglumine": {}, "benzoate": {}, "estolate": {}, "ethylsuccinate": {}, "nitrate": {},
	"mononitrate": {}, "decanoate": {}, "enanthate": {}, "cypionate": {}, "undecanoate": {},
	"acetonide": {}, "furoate": {}, "xinafoate": {}, "malate": {}, "mandelate": {}, "glycinate": {},
	"aspartate": {}, "isethionate": {}, "edisylate": {}, "pivoxil": {}, "axetil": {}, "medoxomil": {},
	"cilexetil": {}, "proxetil": {}, "dipivoxil": {}, "base": {},
}
