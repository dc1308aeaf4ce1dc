package kb

import (
	"fmt"
	"io/fs"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"medserve/internal/clinical"
)

// The differential ranks the DDXPlus conditions by how well a patient's
// findings fit each one. No patient cases come with the open data, so the
// score is not fitted: it is an explicit, explainable sum of evidence, with
// weights that express clinical reasoning rather than tuned numbers.
//
//   - An affirmed finding that the condition lists counts for it, weighted
//     by how specific the evidence is (inverse document frequency over the
//     49 conditions: "fever" says less than "hemoptysis").
//   - An affirmed finding the condition does not list counts a little
//     against it (it leaves the finding unexplained).
//   - A negated finding the condition lists counts against it.
//   - Past diseases and exposures (antecedents) count when affirmed or
//     historical; current symptoms only when affirmed now.
//   - The curated profile (data/kb/condition-profiles.tsv) adds what the
//     DDXPlus file lacks: where the pain is, the classic findings, findings
//     that argue against, and the plausible age range.
//
// Scores become probabilities by a softmax over the conditions with at
// least one supporting finding. The ranking then keeps dangerous
// conditions in view: a severity 1–2 condition with support is never cut
// from the list by the top-N limit.
const (
	weightUnexplained = 0.25 // per IDF unit of an affirmed finding the condition lacks
	weightNegated     = 1.0  // per IDF unit of a denied finding the condition lists
	weightKey         = 1.5  // a classic finding of the condition
	weightAgainst     = 1.5  // a finding that argues against it
	weightSite        = 1.0  // pain where this condition hurts (or elsewhere: against)
	weightAge         = 2.0  // age outside the plausible range
	softmaxTemp       = 1.0
	// Log-prior of each frequency band (data/kb/condition-priors.tsv).
	priorUncommon    = 0.0 // uncommon is where most dangerous conditions sit: no penalty
	priorRare        = -2.0
	priorVeryRare    = -3.5
	defaultTopN      = 5
	mustNotMissFloor = 0.01 // a severe condition below this probability is not shown
)

// differential holds the indexes the ranking needs, built once at load, so
// that ranking is slice arithmetic: evidence codes and conditions are small
// integers, and each condition's evidence set is a bitset.
type differential struct {
	domainByPrefix  map[string]clinical.Domain
	domainByConcept map[string]clinical.Domain

	evID      map[string]int   // evidence code → id
	idf       []float64        // per evidence id
	isPain    []bool           // per evidence id: one of DDXPlus's pain questions
	conceptEv map[string][]int // concept → the evidence ids it answers
	symBits   []evBits         // per condition: its symptom evidences
	antBits   []evBits         // per condition: its antecedent evidences
	symCond   [][]int32        // per evidence id: conditions listing it as a symptom
	antCond   [][]int32        // per evidence id: conditions listing it as an antecedent

	profiles    []profile
	keyCond     map[string][]int32 // concept → conditions with it as a key finding
	againstCond map[string][]int32
	// siteOf maps a pain concept ("chest_pain") to its body sites;
	// contains maps a coarse site to the finer ones inside it.
	siteOf   map[string][]string
	contains map[string][]string
}

// evBits is a set of evidence ids (DDXPlus has 223).
type evBits [4]uint64

func (b *evBits) set(i int)     { b[i>>6] |= 1 << (i & 63) }
func (b evBits) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }

type profile struct {
	painSites, radiation  map[string]bool
	key, against          map[string]bool
	ageMin, ageMax        float64 // NaN when open
	prior                 float64 // log-prior from the frequency band
	sex                   string
	hasProfile, painfully bool
}

const (
	fileProfiles  = "kb/condition-profiles.tsv"
	fileValues    = "lexicon/ddxplus-values.tsv"
	filePainSites = "kb/pain-sites.tsv"
	filePriors    = "kb/condition-priors.tsv"
)

// painEvidence are DDXPlus's pain questions (pain somewhere, its location,
// radiation, character, onset, intensity, precision): any affirmed pain
// concept answers them.
var painEvidence = []string{"E_53", "E_55", "E_57", "E_54", "E_59", "E_56", "E_58"}

func (k *KB) buildDifferential(fsys fs.FS) error {
	df := &k.diff
	codes := make([]string, 0, len(k.evidences))
	for code := range k.evidences {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	if len(codes) > len(evBits{})*64 {
		return fmt.Errorf("%d evidences exceed the bitset", len(codes))
	}
	df.evID = make(map[string]int, len(codes))
	for i, c := range codes {
		df.evID[c] = i
	}
	df.isPain = make([]bool, len(codes))
	for _, e := range painEvidence {
		if i, ok := df.evID[e]; ok {
			df.isPain[i] = true
		}
	}
	df.conceptEv = map[string][]int{}
	for _, code := range codes {
		if c := k.evidences[code].Concept; c != "" {
			df.conceptEv[c] = append(df.conceptEv[c], df.evID[code])
		}
	}
	if err := k.loadPainSites(fsys); err != nil {
		return err
	}
	// Every pain concept also answers the generic pain questions.
	for concept := range df.siteOf {
		for _, e := range painEvidence {
			if id, ok := df.evID[e]; ok && !slices.Contains(df.conceptEv[concept], id) {
				df.conceptEv[concept] = append(df.conceptEv[concept], id)
			}
		}
	}

	n := len(k.conditions)
	df.symBits, df.antBits = make([]evBits, n), make([]evBits, n)
	df.symCond, df.antCond = make([][]int32, len(codes)), make([][]int32, len(codes))
	count := make([]int, len(codes))
	for i, c := range k.conditions {
		for _, e := range c.Symptoms {
			id := df.evID[e]
			df.symBits[i].set(id)
			df.symCond[id] = append(df.symCond[id], int32(i))
		}
		for _, e := range c.Antecedents {
			id := df.evID[e]
			df.antBits[i].set(id)
			df.antCond[id] = append(df.antCond[id], int32(i))
		}
		for id := range codes {
			if df.symBits[i].has(id) || df.antBits[i].has(id) {
				count[id]++
			}
		}
	}
	df.idf = make([]float64, len(codes))
	for id, c := range count {
		if c > 0 {
			df.idf[id] = math.Log(1 + float64(n)/float64(c))
		}
	}
	if err := k.loadProfiles(fsys); err != nil {
		return err
	}
	df.keyCond, df.againstCond = map[string][]int32{}, map[string][]int32{}
	for i, p := range df.profiles {
		for c := range p.key {
			df.keyCond[c] = append(df.keyCond[c], int32(i))
		}
		for c := range p.against {
			df.againstCond[c] = append(df.againstCond[c], int32(i))
		}
	}
	return nil
}

// loadPainSites reads data/kb/pain-sites.tsv: the body sites that pain
// concepts name ("chest_pain" → chest), since the lexicon's longest match
// swallows the site word, and which coarse sites contain finer ones, so
// "abdominal pain" fits a condition that hurts in the epigastrium.
func (k *KB) loadPainSites(fsys fs.FS) error {
	df := &k.diff
	df.siteOf = map[string][]string{}
	df.contains = map[string][]string{}
	return readTable(fsys, filePainSites, '\t', []string{"kind", "a", "b"}, func(r row) error {
		switch r.get("kind") {
		case "site":
			df.siteOf[r.get("a")] = append(df.siteOf[r.get("a")], r.get("b"))
		case "contains":
			df.contains[r.get("a")] = append(df.contains[r.get("a")], r.get("b"))
		default:
			return rowErr(filePainSites, r, "kind %q, want site or contains", r.get("kind"))
		}
		return nil
	})
}

func (k *KB) loadProfiles(fsys fs.FS) error {
	df := &k.diff
	df.profiles = make([]profile, len(k.conditions))
	byKey := map[string]int{}
	for i, c := range k.conditions {
		byKey[c.Key] = i
		df.profiles[i] = profile{ageMin: math.NaN(), ageMax: math.NaN()}
	}
	set := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, x := range strings.Split(s, "|") {
			if x = strings.TrimSpace(x); x != "" {
				m[x] = true
			}
		}
		return m
	}
	age := func(r row, col string) (float64, error) {
		v := r.get(col)
		if v == "" {
			return math.NaN(), nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 130 {
			return 0, rowErr(fileProfiles, r, "%s %q is not an age in years", col, v)
		}
		return f, nil
	}
	if err := readTable(fsys, filePriors, '\t', []string{"condition", "band"}, func(r row) error {
		i, ok := byKey[r.get("condition")]
		if !ok {
			return rowErr(filePriors, r, "condition %q is not in %s", r.get("condition"), fileConditions)
		}
		switch r.get("band") {
		case "common":
			df.profiles[i].prior = 0
		case "uncommon":
			df.profiles[i].prior = priorUncommon
		case "rare":
			df.profiles[i].prior = priorRare
		case "very_rare":
			df.profiles[i].prior = priorVeryRare
		default:
			return rowErr(filePriors, r, "band %q, want common, uncommon, rare or very_rare", r.get("band"))
		}
		return nil
	}); err != nil {
		return err
	}
	return readTable(fsys, fileProfiles, '\t', []string{"condition", "pain_sites", "radiation_sites", "key_findings", "against_findings", "age_min", "age_max", "sex"}, func(r row) error {
		i, ok := byKey[r.get("condition")]
		if !ok {
			return rowErr(fileProfiles, r, "condition %q is not in %s", r.get("condition"), fileConditions)
		}
		p := &df.profiles[i]
		var err error
		if p.ageMin, err = age(r, "age_min"); err != nil {
			return err
		}
		if p.ageMax, err = age(r, "age_max"); err != nil {
			return err
		}
		p.painSites, p.radiation = set(r.get("pain_sites")), set(r.get("radiation_sites"))
		p.key, p.against = set(r.get("key_findings")), set(r.get("against_findings"))
		p.sex = strings.ToUpper(r.get("sex"))
		p.hasProfile, p.painfully = true, len(p.painSites) > 0
		return nil
	})
}

// Patient is what the differential knows about the patient besides the
// findings. Zero values mean unknown.
type Patient struct {
	Age *float64 // years
	Sex string   // female, male, other, unknown
}

// Candidate is one ranked condition.
type Candidate struct {
	Condition   string          `json:"condition"`
	ICD10       string          `json:"icd10"`
	Probability float64         `json:"probability"`
	Severity    int             `json:"severity"`
	Domain      clinical.Domain `json:"domain"`
	// MustNotMiss marks a severe condition kept in view although it ranks
	// below the top N.
	MustNotMiss bool     `json:"must_not_miss,omitempty"`
	Supporting  []string `json:"supporting,omitempty"` // concept ids that counted for it
	Against     []string `json:"against,omitempty"`
	score       float64
	index       int
}

// observation is what one query's findings say, as evidence ids.
type observation struct {
	now, past, neg   []obsEv // affirmed now; affirmed or historical; negated
	affirmed, denied []string
	sites            []string
}

type obsEv struct {
	id      int
	concept string
	sited   bool // the concept names a body site ("chest_pain")
}

func (df *differential) observe(findings []clinical.Finding) observation {
	var o observation
	var nowSeen, pastSeen, negSeen evBits
	for _, f := range findings {
		if f.Concept == "" || f.Type == clinical.Target || f.Family || f.Hypothetical || f.Possible {
			continue
		}
		sited := df.siteOf[f.Concept] != nil
		evs := df.conceptEv[f.Concept]
		switch {
		case f.Negated:
			o.denied = append(o.denied, f.Concept)
			for _, e := range evs {
				if !negSeen.has(e) {
					negSeen.set(e)
					o.neg = append(o.neg, obsEv{e, f.Concept, sited})
				}
			}
		case f.Historical:
			for _, e := range evs {
				if !pastSeen.has(e) {
					pastSeen.set(e)
					o.past = append(o.past, obsEv{e, f.Concept, sited})
				}
			}
		default:
			o.affirmed = append(o.affirmed, f.Concept)
			for _, e := range evs {
				if !nowSeen.has(e) {
					nowSeen.set(e)
					o.now = append(o.now, obsEv{e, f.Concept, sited})
				}
				if !pastSeen.has(e) {
					pastSeen.set(e)
					o.past = append(o.past, obsEv{e, f.Concept, sited})
				}
			}
			if s, ok := df.siteOf[f.Concept]; ok {
				o.sites = append(o.sites, s...)
			} else if f.Type == clinical.Anatomy {
				o.sites = append(o.sites, f.Concept)
			}
		}
	}
	return o
}

// Differential ranks the conditions for a set of findings. topN ≤ 0 means
// the default (5); severe conditions with support are added beyond it.
func (k *KB) Differential(findings []clinical.Finding, pt Patient, topN int) []Candidate {
	if topN <= 0 {
		topN = defaultTopN
	}
	df := &k.diff
	o := df.observe(findings)
	if len(o.now) == 0 && len(o.past) == 0 && len(o.affirmed) == 0 {
		return []Candidate{}
	}
	n := len(k.conditions)
	score := make([]float64, n)
	support := make([]int16, n)
	// Pain elsewhere than where a condition hurts does not answer its pain
	// questions: a headache is not evidence for an MI.
	painMismatch := make([]bool, n)
	for i := range n {
		p := &df.profiles[i]
		score[i] = p.prior
		painMismatch[i] = p.painfully && len(o.sites) > 0 && df.siteFit(p, o.sites) == 0
	}

	// An affirmed finding counts for the conditions that list it (by its
	// specificity) and a little against every condition that does not.
	var unexplained float64
	for _, ob := range o.now {
		pen := weightUnexplained * df.idf[ob.id]
		unexplained += pen
		for _, i := range df.symCond[ob.id] {
			score[i] += pen // listed: no penalty
			if df.isPain[ob.id] && ob.sited && painMismatch[i] {
				continue
			}
			score[i] += df.idf[ob.id]
			support[i]++
		}
		for _, i := range df.antCond[ob.id] {
			if !df.symBits[i].has(ob.id) {
				score[i] += pen
			}
		}
	}
	for _, ob := range o.past {
		for _, i := range df.antCond[ob.id] {
			score[i] += df.idf[ob.id]
			support[i]++
		}
	}
	for _, ob := range o.neg {
		for _, i := range df.symCond[ob.id] {
			score[i] -= weightNegated * df.idf[ob.id]
		}
		for _, i := range df.antCond[ob.id] {
			if !df.symBits[i].has(ob.id) {
				score[i] -= weightNegated * df.idf[ob.id]
			}
		}
	}
	for _, c := range o.affirmed {
		for _, i := range df.keyCond[c] {
			// A key finding already counted through its DDXPlus evidence
			// is not counted twice.
			if !df.listsConcept(int(i), c) {
				score[i] += weightKey
				support[i]++
			}
		}
		for _, i := range df.againstCond[c] {
			score[i] -= weightAgainst
		}
	}
	for _, c := range o.denied {
		// Absence of a classic feature is weak evidence, and none at all
		// against a dangerous condition (atypical presentations).
		for _, i := range df.keyCond[c] {
			if k.conditions[i].Severity > 2 {
				score[i] -= weightKey / 2
			}
		}
	}

	cands := make([]Candidate, 0, 16)
	for i := range n {
		if support[i] == 0 {
			continue
		}
		c := &k.conditions[i]
		p := &df.profiles[i]
		s := score[i] - unexplained
		// Profile evidence reorders look-alikes but never pushes a severe
		// condition down: for severity 1–2 only its positive side applies.
		severe := c.Severity <= 2
		if p.painfully && len(o.sites) > 0 {
			switch df.siteFit(p, o.sites) {
			case 2:
				s += weightSite
				if df.radiates(p, o.sites) {
					s += weightSite / 2
				}
			case 1:
				s += weightSite / 2
			default:
				if !severe {
					s -= weightSite
				}
			}
		}
		if !severe && pt.Age != nil && (*pt.Age < p.ageMin || *pt.Age > p.ageMax) {
			s -= weightAge
		}
		if !severe && p.sex != "" && (pt.Sex == "female" || pt.Sex == "male") && !strings.EqualFold(pt.Sex[:1], p.sex) {
			s -= weightAge
		}
		cands = append(cands, Candidate{Condition: c.Name, ICD10: c.ICD10, Severity: c.Severity, Domain: c.Domain, score: s, index: i})
	}
	if len(cands) == 0 {
		return []Candidate{}
	}
	// Softmax over the supported conditions.
	maxScore := math.Inf(-1)
	for _, c := range cands {
		maxScore = math.Max(maxScore, c.score)
	}
	var z float64
	for i := range cands {
		cands[i].Probability = math.Exp((cands[i].score - maxScore) / softmaxTemp)
		z += cands[i].Probability
	}
	for i := range cands {
		cands[i].Probability = round3(cands[i].Probability / z)
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].Severity < cands[j].Severity
	})
	n = min(topN, len(cands))
	out := append(make([]Candidate, 0, n+4), cands[:n]...)
	for _, c := range cands[n:] {
		if c.Severity <= 2 && c.Probability >= mustNotMissFloor {
			c.MustNotMiss = true
			out = append(out, c)
		}
	}
	for i := range out {
		df.explain(&out[i], &o, painMismatch[out[i].index])
	}
	return out
}

// listsConcept reports whether condition i lists one of the concept's
// evidences.
func (df *differential) listsConcept(i int, concept string) bool {
	for _, e := range df.conceptEv[concept] {
		if df.symBits[i].has(e) || df.antBits[i].has(e) {
			return true
		}
	}
	return false
}

// explain fills the concepts that counted for and against one candidate.
func (df *differential) explain(c *Candidate, o *observation, painMismatch bool) {
	i := c.index
	p := &df.profiles[i]
	for _, ob := range o.now {
		if df.symBits[i].has(ob.id) && !(df.isPain[ob.id] && ob.sited && painMismatch) {
			c.Supporting = appendUnique(c.Supporting, ob.concept)
		}
	}
	for _, ob := range o.past {
		if df.antBits[i].has(ob.id) {
			c.Supporting = appendUnique(c.Supporting, ob.concept)
		}
	}
	for _, a := range o.affirmed {
		if p.key[a] {
			c.Supporting = appendUnique(c.Supporting, a)
		}
		if p.against[a] {
			c.Against = appendUnique(c.Against, a)
		}
	}
	for _, ob := range o.neg {
		if df.symBits[i].has(ob.id) || df.antBits[i].has(ob.id) {
			c.Against = appendUnique(c.Against, ob.concept)
		}
	}
	sort.Strings(c.Supporting)
	sort.Strings(c.Against)
}

// siteFit is 2 when an observed site is one of the condition's pain sites
// (or contains one), 1 when it is only where the pain radiates, else 0.
func (df *differential) siteFit(p *profile, sites []string) int {
	fit := 0
	for _, s := range sites {
		if p.painSites[s] {
			return 2
		}
		for _, sub := range df.contains[s] {
			if p.painSites[sub] {
				return 2
			}
		}
		if p.radiation[s] {
			fit = 1
		}
	}
	return fit
}

// radiates reports whether an observed site is one this condition's pain
// radiates to and not one where it starts ("chest pain radiating to the
// left arm").
func (df *differential) radiates(p *profile, sites []string) bool {
	for _, s := range sites {
		if p.radiation[s] && !p.painSites[s] {
			return true
		}
	}
	return false
}

func appendUnique(xs []string, s string) []string {
	if containsStr(xs, s) {
		return xs
	}
	return append(xs, s)
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// Conditions returns the DDXPlus conditions.
func (k *KB) Conditions() []Condition { return k.conditions }
