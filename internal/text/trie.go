package text

import "fmt"

// maxPhraseTokens bounds the length of any lexicon or rule phrase, and so the
// depth of every trie walk: matching costs O(text tokens × maxPhraseTokens)
// however large the lexicon grows.
const maxPhraseTokens = 12

// vocab interns normalised words as small integers, so that trie edges are
// integer map keys and the text is normalised once per call.
type vocab struct {
	ids   map[string]int32
	words []string
	// abbrev maps a lower-cased raw token (before stemming) to the word ids
	// it expands to: "abd" → [abdominal], "n/v" → [nausea and vomiting].
	abbrev map[string][]int32
}

func newVocab() *vocab {
	return &vocab{ids: make(map[string]int32), abbrev: make(map[string][]int32)}
}

// intern returns the id of an already normalised word, adding it if new.
func (v *vocab) intern(w string) int32 {
	if id, ok := v.ids[w]; ok {
		return id
	}
	id := int32(len(v.words))
	v.ids[w] = id
	v.words = append(v.words, w)
	return id
}

// noWord is the id of a text word that occurs in no phrase; it never matches.
const noWord int32 = -1

// normTok is one normalised word of the text. An abbreviation expands into
// several normTok entries that share the raw token they came from.
type normTok struct {
	id  int32
	raw int32 // index into the raw token slice
}

// normalizer turns raw tokens into word ids. It holds scratch space, so each
// Analyze call uses its own.
type normalizer struct {
	v   *vocab
	buf []byte
}

// appendNorm normalises raw token t (text s) and appends its word ids.
func (n *normalizer) appendNorm(dst []normTok, s string, t rawToken, rawIdx int) []normTok {
	if t.punct != 0 {
		// Only ':' and ';' are punctuation tokens (see scanTokens).
		p := ":"
		if t.punct == ';' {
			p = ";"
		}
		id, ok := n.v.ids[p]
		if !ok {
			id = noWord
		}
		return append(dst, normTok{id: id, raw: int32(rawIdx)})
	}
	n.buf = lowerInto(n.buf, s[t.start:t.end])
	if exp, ok := n.v.abbrev[string(n.buf)]; ok {
		for _, id := range exp {
			dst = append(dst, normTok{id: id, raw: int32(rawIdx)})
		}
		return dst
	}
	n.buf = stem(n.buf)
	id, ok := n.v.ids[string(n.buf)]
	if !ok {
		id = noWord
	}
	return append(dst, normTok{id: id, raw: int32(rawIdx)})
}

// phraseIDs normalises a phrase at build time, interning its words.
func (v *vocab) phraseIDs(p string) []int32 {
	var ids []int32
	var buf []byte
	for _, w := range splitPhrase(p) {
		buf = lowerInto(buf, w)
		if exp, ok := v.abbrev[string(buf)]; ok {
			ids = append(ids, exp...)
			continue
		}
		ids = append(ids, v.intern(string(stem(buf))))
	}
	return ids
}

// addAbbreviation registers a raw token that expands to other words.
func (v *vocab) addAbbreviation(abbr, expansion string) error {
	key := string(lowerInto(nil, abbr))
	words := splitPhrase(expansion)
	if len(words) == 0 {
		return fmt.Errorf("abbreviation %q: empty expansion", abbr)
	}
	ids := make([]int32, 0, len(words))
	for _, w := range words {
		ids = append(ids, v.intern(normalizeWord(w)))
	}
	v.abbrev[key] = ids
	return nil
}

// trie maps word-id sequences to payload indexes. Edges live in one map keyed
// by (node, word), which keeps the structure compact for a large lexicon.
type trie struct {
	edges   map[uint64]int32
	payload []int32 // per node: payload index, or -1
}

func newTrie() *trie {
	return &trie{edges: make(map[uint64]int32), payload: []int32{-1}}
}

func edgeKey(node, word int32) uint64 { return uint64(uint32(node))<<32 | uint64(uint32(word)) }

// insert adds a phrase and returns its node. The caller decides what the
// node's payload is, so that it can keep the first source's meaning.
func (t *trie) insert(ids []int32) int32 {
	node := int32(0)
	for _, w := range ids {
		k := edgeKey(node, w)
		next, ok := t.edges[k]
		if !ok {
			next = int32(len(t.payload))
			t.payload = append(t.payload, -1)
			t.edges[k] = next
		}
		node = next
	}
	return node
}

// longest returns the end (exclusive) and payload of the longest phrase that
// starts at toks[i], or end == i when none does.
func (t *trie) longest(toks []normTok, i int) (end int, payload int32) {
	end, payload = i, -1
	node := int32(0)
	for j := i; j < len(toks) && j-i < maxPhraseTokens; j++ {
		w := toks[j].id
		if w == noWord {
			break
		}
		next, ok := t.edges[edgeKey(node, w)]
		if !ok {
			break
		}
		node = next
		if p := t.payload[node]; p >= 0 {
			end, payload = j+1, p
		}
	}
	return end, payload
}
