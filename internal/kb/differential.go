package kb

import (
	"io/fs"
	"math"
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
	defaultTopN       = 5
	mustNotMissFloor  = 0.01 // a severe condition below this probability is not shown
)

// differential holds the indexes the ranking needs, built once at load.
type differential struct {
	domainByPrefix  map[string]clinical.Domain
	domainByConcept map[string]clinical.Domain
	// evidenceOf maps a concept id to the evidence codes it answers.
	evidenceOf map[string][]string
	// conditionsOf maps an evidence code to the conditions listing it,
	// with whether it is an antecedent there.
	idf      map[string]float64
	symptom  []map[string]bool // per condition
	anteced  []map[string]bool
	profiles []profile
	// siteOf maps a pain concept ("chest_pain") to its body sites;
	// contains maps a coarse site to the finer ones inside it.
	siteOf   map[string][]string
	contains map[string][]string
}

type profile struct {
	painSites, radiation  map[string]bool
	key, against          map[string]bool
	ageMin, ageMax        float64 // NaN when open
	sex                   string
	hasProfile, painfully bool
}

const (
	fileProfiles  = "kb/condition-profiles.tsv"
	fileValues    = "lexicon/ddxplus-values.tsv"
	filePainSites = "kb/pain-sites.tsv"
)

// painEvidence are DDXPlus's pain questions (pain somewhere, its location,
// radiation, character, onset, intensity, precision): any affirmed pain
// concept answers them.
var painEvidence = []string{"E_53", "E_55", "E_57", "E_54", "E_59", "E_56", "E_58"}

func (k *KB) buildDifferential(fsys fs.FS) error {
	df := &k.diff
	df.evidenceOf = map[string][]string{}
	for code, ev := range k.evidences {
		if ev.Concept != "" {
			df.evidenceOf[ev.Concept] = append(df.evidenceOf[ev.Concept], code)
		}
	}
	for _, codes := range df.evidenceOf {
		sort.Strings(codes)
	}
	if err := k.loadPainSites(fsys); err != nil {
		return err
	}
	// Every pain concept also answers the generic pain questions.
	for concept := range df.siteOf {
		for _, e := range painEvidence {
			if !containsStr(df.evidenceOf[concept], e) {
				df.evidenceOf[concept] = append(df.evidenceOf[concept], e)
			}
		}
	}

	n := len(k.conditions)
	dfCount := map[string]int{}
	df.symptom = make([]map[string]bool, n)
	df.anteced = make([]map[string]bool, n)
	for i, c := range k.conditions {
		df.symptom[i], df.anteced[i] = map[string]bool{}, map[string]bool{}
		for _, e := range c.Symptoms {
			df.symptom[i][e] = true
		}
		for _, e := range c.Antecedents {
			df.anteced[i][e] = true
		}
		for e := range unionKeys(df.symptom[i], df.anteced[i]) {
			dfCount[e]++
		}
	}
	df.idf = map[string]float64{}
	for e, c := range dfCount {
		df.idf[e] = math.Log(1 + float64(n)/float64(c))
	}
	return k.loadProfiles(fsys)
}

func unionKeys(a, b map[string]bool) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for x := range a {
		out[x] = true
	}
	for x := range b {
		out[x] = true
	}
	return out
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
}

// Differential ranks the conditions for a set of findings. topN ≤ 0 means
// the default (5); severe conditions with support are added beyond it.
func (k *KB) Differential(findings []clinical.Finding, pt Patient, topN int) []Candidate {
	if topN <= 0 {
		topN = defaultTopN
	}
	df := &k.diff
	// Collect the evidence the findings answer.
	posNow := map[string]string{}  // evidence → concept, affirmed now
	posPast := map[string]string{} // evidence → concept, affirmed or historical
	neg := map[string]string{}
	affirmed := map[string]bool{}
	denied := map[string]bool{}
	var sites []string
	for _, f := range findings {
		if f.Concept == "" || f.Type == clinical.Target || f.Family || f.Hypothetical || f.Possible {
			continue
		}
		switch {
		case f.Negated:
			denied[f.Concept] = true
			for _, e := range df.evidenceOf[f.Concept] {
				neg[e] = f.Concept
			}
		case f.Historical:
			for _, e := range df.evidenceOf[f.Concept] {
				posPast[e] = f.Concept
			}
		default:
			affirmed[f.Concept] = true
			for _, e := range df.evidenceOf[f.Concept] {
				posNow[e] = f.Concept
				posPast[e] = f.Concept
			}
			if s, ok := df.siteOf[f.Concept]; ok {
				sites = append(sites, s...)
			} else if f.Type == clinical.Anatomy {
				sites = append(sites, f.Concept)
			}
		}
	}
	if len(posNow) == 0 && len(posPast) == 0 && len(affirmed) == 0 {
		return []Candidate{}
	}

	cands := make([]Candidate, 0, len(k.conditions))
	for i := range k.conditions {
		c := &k.conditions[i]
		p := &df.profiles[i]
		var score float64
		support := 0
		var sup, against []string
		for e, concept := range posNow {
			if df.symptom[i][e] {
				score += df.idf[e]
				support++
				sup = appendUnique(sup, concept)
			} else if !df.anteced[i][e] {
				score -= weightUnexplained * df.idf[e]
			}
		}
		for e, concept := range posPast {
			if df.anteced[i][e] {
				score += df.idf[e]
				support++
				sup = appendUnique(sup, concept)
			}
		}
		for e, concept := range neg {
			if df.symptom[i][e] || df.anteced[i][e] {
				score -= weightNegated * df.idf[e]
				against = appendUnique(against, concept)
			}
		}
		for concept := range affirmed {
			// A key finding already counted through its DDXPlus evidence
			// is not counted twice.
			if p.key[concept] && !containsStr(sup, concept) {
				score += weightKey
				support++
				sup = appendUnique(sup, concept)
			}
			if p.against[concept] {
				score -= weightAgainst
				against = appendUnique(against, concept)
			}
		}
		for concept := range denied {
			// Absence of a classic feature is weak evidence, and none at
			// all against a dangerous condition (atypical presentations).
			if p.key[concept] && c.Severity > 2 {
				score -= weightKey / 2
				against = appendUnique(against, concept)
			}
		}
		// Profile evidence reorders look-alikes but never pushes a severe
		// condition down: for severity 1–2 only its positive side applies.
		severe := c.Severity <= 2
		if p.painfully && len(sites) > 0 {
			switch df.siteFit(p, sites) {
			case 2:
				score += weightSite
			case 1:
				score += weightSite / 2
			default:
				if !severe {
					score -= weightSite
				}
			}
		}
		if !severe && pt.Age != nil && (*pt.Age < p.ageMin || *pt.Age > p.ageMax) {
			score -= weightAge
		}
		if !severe && p.sex != "" && (pt.Sex == "female" || pt.Sex == "male") && !strings.EqualFold(pt.Sex[:1], p.sex) {
			score -= weightAge
		}
		if support == 0 {
			continue
		}
		sort.Strings(sup)
		sort.Strings(against)
		cands = append(cands, Candidate{Condition: c.Name, ICD10: c.ICD10, Severity: c.Severity, Domain: c.Domain,
			Supporting: sup, Against: against, score: score})
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
	n := min(topN, len(cands))
	out := append(make([]Candidate, 0, n+4), cands[:n]...)
	for _, c := range cands[n:] {
		if c.Severity <= 2 && c.Probability >= mustNotMissFloor {
			c.MustNotMiss = true
			out = append(out, c)
		}
	}
	return out
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

func appendUnique(xs []string, s string) []string {
	if containsStr(xs, s) {
		return xs
	}
	return append(xs, s)
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// Conditions returns the DDXPlus conditions.
func (k *KB) Conditions() []Condition { return k.conditions }
