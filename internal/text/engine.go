// Package text is medserve's clinical text engine: it turns chief complaints
// and short notes into findings (lexicon concepts with ConText flags), vital
// signs, quantities and a medical-domain hint.
package text

import (
	"fmt"
	"sort"
	"sync"

	"medserve/internal/clinical"
)

// Concept is a canonical clinical concept of the lexicon. Every synonym of a
// concept resolves to the same Concept.
type Concept struct {
	ID     string               `json:"id"`
	Type   clinical.ConceptType `json:"type"`
	Name   string               `json:"name"`
	Code   string               `json:"code"`
	Domain clinical.Domain      `json:"domain,omitempty"`
}

// Entry is one lexicon phrase and the concept it names. Source says which
// data file it came from, for the lexicon report.
type Entry struct {
	Phrase  string
	Concept Concept
	Source  string
}

// Abbreviation expands one token of clinical shorthand into words.
type Abbreviation struct {
	Abbr, Expansion string
}

// Config is everything an Engine is built from. Entries earlier in the list
// win when two name the same phrase, so curated sources go first.
type Config struct {
	Abbreviations []Abbreviation
	Entries       []Entry
	Rules         []Rule
	Sections      []Section
	// MaxScope caps a trigger's scope in words; 0 means the sentence end.
	MaxScope int
}

// Stats describes a built engine, for start-up logs and the lexicon report.
type Stats struct {
	Phrases       int            `json:"phrases"`
	Concepts      int            `json:"concepts"`
	ByType        map[string]int `json:"concepts_by_type"`
	PhrasesBySrc  map[string]int `json:"phrases_by_source"`
	Rules         int            `json:"rules"`
	Overridden    int            `json:"rules_overridden"`
	Sections      int            `json:"section_headers"`
	Abbreviations int            `json:"abbreviations"`
	Dropped       int            `json:"phrases_dropped"`
}

// Section is a note section header ("PAST MEDICAL HISTORY:"). Every header
// ends the section before it; one with Qualifies set marks each finding in
// its section with Flag.
type Section struct {
	Header    string
	Qualifies bool
	Flag      Category
}

// ruleRef is one (category, direction) that a trigger phrase carries.
type ruleRef struct {
	cat Category
	dir Direction
}

// Engine analyses clinical text. It is immutable after New and safe for
// concurrent use.
type Engine struct {
	v           *vocab
	concepts    []Concept
	conceptTrie *trie
	ruleTrie    *trie
	ruleSets    [][]ruleRef
	sectionTrie *trie
	sections    []Section
	maxScope    int
	colon       int32 // word id of ":", which some rules start with
	stats       Stats
	scratch     sync.Pool
}

// New builds an engine from a configuration.
func New(cfg Config) (*Engine, error) {
	e := &Engine{
		v:           newVocab(),
		conceptTrie: newTrie(),
		ruleTrie:    newTrie(),
		sectionTrie: newTrie(),
		maxScope:    cfg.MaxScope,
		stats:       Stats{ByType: map[string]int{}, PhrasesBySrc: map[string]int{}},
	}
	e.scratch.New = func() any { return new(scratch) }
	// Abbreviations first: phrases below are normalised through them.
	for _, a := range cfg.Abbreviations {
		if err := e.v.addAbbreviation(a.Abbr, a.Expansion); err != nil {
			return nil, err
		}
	}
	e.stats.Abbreviations = len(cfg.Abbreviations)
	e.colon = e.v.intern(":")

	byID := map[string]int32{}
	for _, en := range cfg.Entries {
		c := en.Concept
		if c.ID == "" || !c.Type.Valid() {
			return nil, fmt.Errorf("lexicon entry %q from %s: bad concept %q of type %q", en.Phrase, en.Source, c.ID, c.Type)
		}
		ids := e.v.phraseIDs(en.Phrase)
		if len(ids) == 0 || len(ids) > maxPhraseTokens {
			e.stats.Dropped++
			continue
		}
		ci, ok := byID[c.ID]
		if !ok {
			ci = int32(len(e.concepts))
			byID[c.ID] = ci
			e.concepts = append(e.concepts, c)
			e.stats.ByType[string(c.Type)]++
		}
		node := e.conceptTrie.insert(ids)
		if e.conceptTrie.payload[node] >= 0 {
			continue // an earlier, more trusted source named this phrase
		}
		e.conceptTrie.payload[node] = ci
		e.stats.Phrases++
		e.stats.PhrasesBySrc[en.Source]++
	}
	e.stats.Concepts = len(e.concepts)

	for _, r := range cfg.Rules {
		ids := e.v.phraseIDs(r.Phrase)
		if len(ids) == 0 || len(ids) > maxPhraseTokens {
			return nil, fmt.Errorf("context rule %q from %s: phrase must have 1–%d words", r.Phrase, r.Source, maxPhraseTokens)
		}
		node := e.ruleTrie.insert(ids)
		p := e.ruleTrie.payload[node]
		if p < 0 {
			p = int32(len(e.ruleSets))
			e.ruleSets = append(e.ruleSets, nil)
			e.ruleTrie.payload[node] = p
		}
		ref := ruleRef{cat: r.Category, dir: r.Direction}
		if r.Direction == Pseudo {
			ref.cat = 0 // a pseudo-trigger blocks whatever it contains
		}
		if conflictsOnExistence(e.ruleSets[p], ref) {
			// The first source to call a phrase negated or merely
			// possible decides ("rule out": medspaCy's possible beats
			// NegEx 2001's negated); later sources add other categories.
			e.stats.Overridden++
			continue
		}
		if !containsRef(e.ruleSets[p], ref) {
			e.ruleSets[p] = append(e.ruleSets[p], ref)
			e.stats.Rules++
		}
	}
	for _, sec := range cfg.Sections {
		ids := e.v.phraseIDs(sec.Header)
		if len(ids) == 0 || len(ids) > maxPhraseTokens {
			return nil, fmt.Errorf("section header %q: must have 1–%d words", sec.Header, maxPhraseTokens)
		}
		node := e.sectionTrie.insert(ids)
		if e.sectionTrie.payload[node] < 0 {
			e.sectionTrie.payload[node] = int32(len(e.sections))
			e.sections = append(e.sections, sec)
		}
	}
	e.stats.Sections = len(e.sections)
	return e, nil
}

// conflictsOnExistence reports whether r gives a phrase the other existence
// category (negated vs possible) than a scope rule it already has.
func conflictsOnExistence(refs []ruleRef, r ruleRef) bool {
	if r.dir == Terminate || r.dir == Pseudo || (r.cat != Negated && r.cat != Possible) {
		return false
	}
	for _, x := range refs {
		if x.dir != Terminate && x.dir != Pseudo && (x.cat == Negated || x.cat == Possible) && x.cat != r.cat {
			return true
		}
	}
	return false
}

func containsRef(refs []ruleRef, r ruleRef) bool {
	for _, x := range refs {
		if x == r {
			return true
		}
	}
	return false
}

// Stats reports the size of the lexicon and rule set.
func (e *Engine) Stats() Stats { return e.stats }

// Concepts returns the lexicon's concepts. The slice must not be modified.
func (e *Engine) Concepts() []Concept { return e.concepts }

// Options adjust one analysis.
type Options struct {
	// Targets are phrases to find and qualify with ConText, in addition to
	// the lexicon's concepts: this is how annotated sets are scored.
	Targets []string
}

// Analysis is what the engine finds in one text.
type Analysis struct {
	Findings    []clinical.Finding     `json:"findings"`
	Vitals      clinical.Vitals        `json:"vitals"`
	Quantities  []clinical.Quantity    `json:"quantities"`
	Implausible []clinical.Implausible `json:"implausible"`
	Domain      clinical.Domain        `json:"domain"`
}

// scratch holds per-call buffers, pooled so that steady-state analysis does
// not allocate them again.
type scratch struct {
	sents [][2]int
	raw   []rawToken
	norm  []normTok
	cov   []uint8
	trigs []trigger
	// sentWords holds each sentence's range of words in norm; sentOf is
	// filled only when targets need it.
	sentWords [][2]int
	sentOf    []int32
	targets   []targetWords
	norms     []string
	buf       []byte
	domains   [len(domainOrder)]int
}

type trigger struct {
	start, end int // norm token range within the sentence
	refs       []ruleRef
}

type targetWords struct {
	phrase string
	words  []string
}

// Analyze finds concepts, targets, vitals and quantities in text. It never
// panics and runs in time linear in len(text) (times the number of target
// words, when targets are given).
func (e *Engine) Analyze(text string, opts Options) Analysis {
	sc := e.scratch.Get().(*scratch)
	defer e.scratch.Put(sc)

	var out Analysis
	sc.domains = [len(domainOrder)]int{}
	sc.targets = sc.targets[:0]
	for _, t := range opts.Targets {
		if w := e.normalWords(t, sc); len(w) > 0 {
			sc.targets = append(sc.targets, targetWords{phrase: t, words: w})
		}
	}

	// Tokenize the whole text once; sentences become ranges of words.
	n := normalizer{v: e.v, buf: sc.buf}
	sc.raw, sc.norm, sc.sentWords = sc.raw[:0], sc.norm[:0], sc.sentWords[:0]
	sc.sents = splitSentences(sc.sents[:0], text)
	for _, sent := range sc.sents {
		first, from := len(sc.raw), len(sc.norm)
		sc.raw = scanTokens(sc.raw, text, sent[0], sent[1])
		for i := first; i < len(sc.raw); i++ {
			sc.norm = n.appendNorm(sc.norm, text, sc.raw[i], i)
		}
		if len(sc.norm) > from {
			sc.sentWords = append(sc.sentWords, [2]int{from, len(sc.norm)})
		}
	}
	sc.buf = n.buf
	if cap(sc.cov) < len(sc.norm) {
		sc.cov = make([]uint8, len(sc.norm))
	}
	sc.cov = sc.cov[:len(sc.norm)]
	clear(sc.cov)

	if len(e.sections) > 0 {
		e.markSections(sc)
	}
	for _, sw := range sc.sentWords {
		out.Findings = e.analyzeSentence(out.Findings, text, sc, sw[0], sw[1])
	}
	if len(sc.targets) > 0 {
		out.Findings = e.findTargets(out.Findings, text, sc)
	}

	sort.SliceStable(out.Findings, func(i, j int) bool {
		a, b := out.Findings[i], out.Findings[j]
		if a.Span[0] != b.Span[0] {
			return a.Span[0] < b.Span[0]
		}
		return a.Type == clinical.Target && b.Type != clinical.Target
	})

	vr := ExtractVitals(text)
	out.Vitals, out.Quantities, out.Implausible = vr.Vitals, vr.Quantities, vr.Implausible
	out.Domain = domain(&sc.domains, out.Vitals)
	return out
}

// markSections finds section headers and marks the words of each
// qualifying section with its flag, up to the next header.
func (e *Engine) markSections(sc *scratch) {
	toks := sc.norm
	var flag uint8
	for i := 0; i < len(toks); {
		end, p := e.sectionTrie.longest(toks, i)
		if end > i {
			flag = 0
			if sec := e.sections[p]; sec.Qualifies {
				flag = 1 << sec.Flag
			}
			i = end
			continue
		}
		sc.cov[i] |= flag
		i++
	}
}

// span is the byte range of words [a, b).
func (sc *scratch) span(a, b int) [2]int {
	return [2]int{sc.raw[sc.norm[a].raw].start, sc.raw[sc.norm[b-1].raw].end}
}

// setFlags copies the ConText categories whose scope covers words [a, b).
func setFlags(f *clinical.Finding, m uint8) {
	f.Negated = m&(1<<Negated) != 0
	f.Possible = m&(1<<Possible) != 0
	f.Historical = m&(1<<Historical) != 0
	f.Hypothetical = m&(1<<Hypothetical) != 0
	f.Family = m&(1<<Family) != 0
}

// analyzeSentence marks the ConText scopes of the sentence's words [lo, hi)
// and appends its concept findings.
func (e *Engine) analyzeSentence(dst []clinical.Finding, text string, sc *scratch, lo, hi int) []clinical.Finding {
	toks := sc.norm[:hi]
	// Triggers: the longest rule phrase starting at each word. One that lies
	// inside an earlier, longer match is dropped, so a pseudo-trigger ("no
	// increase") silences the trigger it contains ("no"). Triggers that only
	// partly overlap both fire: in "is negative for bleeding", "is negative"
	// looks back and "negative for" looks forward.
	sc.trigs = sc.trigs[:0]
	maxEnd := lo
	for i := lo; i < hi; i++ {
		end, p := e.ruleTrie.longest(toks, i)
		if end == i || end <= maxEnd {
			continue
		}
		if toks[i].id == e.colon && end < hi {
			// ": no" and ": none" close a list item ("Hematuria: no."); in
			// "Extremities: no edema" the "no" is a trigger of its own.
			continue
		}
		maxEnd = end
		if refs := e.ruleSets[p]; !(len(refs) == 1 && refs[0].dir == Pseudo) {
			sc.trigs = append(sc.trigs, trigger{start: i, end: end, refs: refs})
		}
	}
	cov := sc.cov[lo:hi]
	if len(sc.trigs) > 0 {
		e.markScopes(cov, sc.trigs, lo)
	}

	for i := lo; i < hi; {
		end, p := e.conceptTrie.longest(toks, i)
		if end == i {
			i++
			continue
		}
		c := &e.concepts[p]
		sp := sc.span(i, end)
		f := clinical.Finding{Text: text[sp[0]:sp[1]], Type: c.Type, Code: c.Code, Concept: c.ID, Name: c.Name, Span: sp}
		setFlags(&f, sc.cov[i]&sc.cov[end-1])
		if f.Affirmed() {
			for k, d := range domainOrder {
				if c.Domain == d {
					sc.domains[k]++
				}
			}
		}
		dst = append(dst, f)
		i = end
	}
	return dst
}

// findTargets appends every occurrence of each target phrase. A target
// usually lies within a sentence and takes the ConText flags whose scope
// covers all of it; one that straddles a sentence split takes the flags of
// its last word, the head of an English noun phrase.
func (e *Engine) findTargets(dst []clinical.Finding, text string, sc *scratch) []clinical.Finding {
	words := e.textWords(text, sc)
	sent := sc.sentenceIndex()
	for _, t := range sc.targets {
		for i := 0; i+len(t.words) <= len(words); i++ {
			if !wordsAt(words, i, t.words) {
				continue
			}
			end := i + len(t.words)
			sp := sc.span(i, end)
			f := clinical.Finding{Text: text[sp[0]:sp[1]], Type: clinical.Target, Target: t.phrase, Span: sp}
			m := sc.cov[end-1]
			if sent[i] == sent[end-1] {
				m &= sc.cov[i]
			}
			setFlags(&f, m)
			dst = append(dst, f)
			i = end - 1
		}
	}
	return dst
}

// sentenceIndex maps each word to the number of its sentence.
func (sc *scratch) sentenceIndex() []int32 {
	sc.sentOf = sc.sentOf[:0]
	for k, sw := range sc.sentWords {
		for i := sw[0]; i < sw[1]; i++ {
			sc.sentOf = append(sc.sentOf, int32(k))
		}
	}
	return sc.sentOf
}

// markScopes sets, for every category, the bit of each word inside a
// trigger's scope. A scope runs from the trigger to the sentence end (or
// start, backwards), stopping at a terminating trigger of its category, at
// the next trigger of the same category, or after MaxScope words. Scopes of
// one category never overlap, so the marking is linear in the sentence.
func (e *Engine) markScopes(cov []uint8, trigs []trigger, lo int) {
	n := len(cov)
	for c := Category(0); c < numCategories; c++ {
		bit := uint8(1) << c
		// prevEnd is where the previous trigger of category c ended.
		prevEnd := 0
		for k := range trigs {
			t := &trigs[k]
			start, end := t.start-lo, t.end-lo
			fwd, bwd, has := t.directions(c)
			if !has {
				continue
			}
			if bwd {
				from := prevEnd
				if e.maxScope > 0 && start-e.maxScope > from {
					from = start - e.maxScope
				}
				for j := from; j < start; j++ {
					cov[j] |= bit
				}
			}
			if fwd {
				hi := n
				for m := k + 1; m < len(trigs); m++ {
					if _, _, h := trigs[m].directions(c); h {
						hi = trigs[m].start - lo
						break
					}
				}
				if e.maxScope > 0 && end+e.maxScope < hi {
					hi = end + e.maxScope
				}
				for j := end; j < hi; j++ {
					cov[j] |= bit
				}
			}
			prevEnd = end
		}
	}
}

// directions reports whether the trigger opens a forward or backward scope of
// category c, and whether it takes part in category c at all (terminators
// do, without a scope of their own).
func (t *trigger) directions(c Category) (fwd, bwd, has bool) {
	for _, r := range t.refs {
		if r.dir == Pseudo || r.cat != c {
			continue
		}
		has = true
		switch r.dir {
		case Forward:
			fwd = true
		case Backward:
			bwd = true
		case Bidirectional:
			fwd, bwd = true, true
		}
	}
	return fwd, bwd, has
}

// normalWords is the normal form of a target phrase as words (strings, as a
// target may contain words the vocabulary has never seen).
func (e *Engine) normalWords(p string, sc *scratch) []string {
	var out []string
	for _, w := range splitPhrase(p) {
		sc.buf = lowerInto(sc.buf, w)
		if exp, ok := e.v.abbrev[string(sc.buf)]; ok {
			for _, id := range exp {
				out = append(out, e.v.words[id])
			}
			continue
		}
		out = append(out, string(stem(sc.buf)))
	}
	return out
}

// textWords gives the sentence's normalised words as strings, for target
// matching.
func (e *Engine) textWords(text string, sc *scratch) []string {
	sc.norms = sc.norms[:0]
	for _, t := range sc.norm {
		if t.id != noWord {
			sc.norms = append(sc.norms, e.v.words[t.id])
			continue
		}
		r := sc.raw[t.raw]
		sc.buf = stem(lowerInto(sc.buf, text[r.start:r.end]))
		sc.norms = append(sc.norms, string(sc.buf))
	}
	return sc.norms
}

func wordsAt(words []string, i int, want []string) bool {
	for k, w := range want {
		if words[i+k] != w {
			return false
		}
	}
	return true
}

// domainOrder breaks ties between domains: the more urgent routing wins.
var domainOrder = [...]clinical.Domain{clinical.Emergency, clinical.Cardiology, clinical.Neurology, clinical.Oncology}

// domain routes the analysis: the domain with the most affirmed findings,
// emergency first on ties, general when none has any. Vital signs in a
// danger zone count as one emergency finding.
func domain(counts *[len(domainOrder)]int, v clinical.Vitals) clinical.Domain {
	if below(v.SpO2, 90) || below(v.SBP, 90) || below(v.GCS, 9) {
		counts[0]++
	}
	best, bestN := clinical.General, 0
	for i, d := range domainOrder {
		if counts[i] > bestN {
			best, bestN = d, counts[i]
		}
	}
	return best
}

func below(p *float64, limit float64) bool { return p != nil && *p < limit }
