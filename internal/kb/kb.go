// Package kb is medserve's clinical knowledge base: an in-memory typed graph
// of conditions, evidences, drugs and diseases built from the open data in
// data/, queried for drug–drug interactions and the differential.
package kb

import (
	"fmt"
	"io/fs"
	"sort"
	"time"

	"medserve/internal/clinical"
)

// Relation is the type of an edge. Each names what its data means; where
// the seed's name fits the data it is used, and where it does not the edge
// says what the data is instead.
type Relation string

// Relations, with the data each comes from.
const (
	// AssociatedWith: a DDXPlus condition presents with a symptom
	// evidence (release_conditions.json "symptoms").
	AssociatedWith Relation = "ASSOCIATED_WITH"
	// RiskFactor: a DDXPlus antecedent of a condition — a past disease,
	// exposure or behaviour (release_conditions.json "antecedents").
	RiskFactor Relation = "RISK_FACTOR_FOR"
	// Treats: PharmacotherapyDB drug → disease, category "disease-modifying"
	// (DM) or "symptomatic" (SYM), physician-curated.
	Treats Relation = "TREATS"
	// NotIndicated: PharmacotherapyDB's NOT rows: curated as not an
	// indication. Kept so that a TREATS lookup can tell "no" from "unknown".
	NotIndicated Relation = "NOT_INDICATED_FOR"
	// Resembles: MEDLINE co-occurrence of two diseases beyond chance
	// (Hetionet's filter: p_fisher < 0.005, enrichment > 1). The seed calls
	// this DIFFERENTIAL; it is literature co-occurrence, not clinical
	// similarity, so it carries its honest name.
	Resembles Relation = "RESEMBLES"
	// InteractsWith: CRESCENDDI positive control, drug–drug.
	InteractsWith Relation = "INTERACTS_WITH"
	// Causes: an interacting drug pair causes an adverse event (CRESCENDDI
	// event of the positive control).
	Causes Relation = "CAUSES"
	// MemberOf: drug → curated drug class (data/kb/drug-classes.tsv).
	MemberOf Relation = "MEMBER_OF"
)

// Node types beyond the clinical concept types.
const (
	TypeCondition clinical.ConceptType = "CONDITION" // a DDXPlus pathology
	TypeEvidence  clinical.ConceptType = "EVIDENCE"  // a DDXPlus question
	TypeClass     clinical.ConceptType = "DRUG_CLASS"
	TypeEvent     clinical.ConceptType = "ADVERSE_EVENT"
)

// Concept is a node of the graph.
type Concept struct {
	ID       string               `json:"id"`
	Type     clinical.ConceptType `json:"type"`
	Name     string               `json:"name"`
	Synonyms []string             `json:"synonyms,omitempty"`
	// Codes by system: ICD10CM, RXNORM, DRUGBANK, DOID, MESH, DDXPLUS, ATC.
	Codes map[string]string `json:"codes,omitempty"`
}

// Edge is a typed, sourced relation between two concepts.
type Edge struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Relation Relation `json:"relation"`
	Source   string   `json:"source"`
	// Attr carries the edge's qualifier: a TREATS category, a RESEMBLES
	// enrichment, an interaction severity.
	Attr string `json:"attr,omitempty"`
}

// Stats describes the loaded graph.
type Stats struct {
	Concepts       map[string]int `json:"concepts_by_type"`
	Edges          map[string]int `json:"edges_by_relation"`
	EdgesBySource  map[string]int `json:"edges_by_source"`
	Conditions     int            `json:"conditions"`
	Evidences      int            `json:"evidences"`
	ICD10Codes     int            `json:"icd10_codes"`
	Drugs          int            `json:"drugs"`
	DrugNames      int            `json:"brand_and_alias_names"`
	InteractPairs  int            `json:"interaction_pairs"`
	ClassRules     int            `json:"class_rules"`
	LoadDuration   string         `json:"load_duration"`
	Missing        []string       `json:"missing_relations,omitempty"`
	negativePairs  int
	positiveEvents int
}

// KB is the loaded knowledge base. It is immutable after Load and safe for
// concurrent use; every query is map and slice lookups.
type KB struct {
	concepts map[string]*Concept
	edges    []Edge
	out      map[string][]int32 // concept id → indexes of edges from it

	icd10 map[string]string // code without dot → description

	conditions []Condition
	evidences  map[string]*Evidence
	diff       differential

	brands map[string]string // brand or synonym → generic (data/kb/brands.tsv)
	drugs  *drugIndex
	stats  Stats
}

// Load builds the knowledge base from the data tree.
func Load(data fs.FS) (*KB, error) {
	start := time.Now()
	k := &KB{concepts: map[string]*Concept{}, out: map[string][]int32{}, evidences: map[string]*Evidence{}}
	steps := []struct {
		name string
		fn   func(fs.FS) error
	}{
		{"icd10", k.loadICD10},
		{"brands", k.loadBrands},
		{"ddxplus", k.loadDDXPlus},
		{"pharmacotherapydb", k.loadPharmacotherapy},
		{"medline", k.loadMedline},
		{"drugs", k.loadDrugs},
		{"differential", k.buildDifferential},
	}
	for _, s := range steps {
		if err := s.fn(data); err != nil {
			return nil, fmt.Errorf("load knowledge base (%s): %w", s.name, err)
		}
	}
	k.computeStats()
	k.stats.LoadDuration = time.Since(start).Round(time.Millisecond).String()
	return k, nil
}

func (k *KB) addConcept(c Concept) *Concept {
	if cur, ok := k.concepts[c.ID]; ok {
		for sys, code := range c.Codes {
			if cur.Codes == nil {
				cur.Codes = map[string]string{}
			}
			if _, has := cur.Codes[sys]; !has {
				cur.Codes[sys] = code
			}
		}
		return cur
	}
	cc := c
	k.concepts[c.ID] = &cc
	return &cc
}

func (k *KB) addEdge(e Edge) {
	k.out[e.From] = append(k.out[e.From], int32(len(k.edges)))
	k.edges = append(k.edges, e)
}

// Concept returns a concept by id.
func (k *KB) Concept(id string) (Concept, bool) {
	c, ok := k.concepts[id]
	if !ok {
		return Concept{}, false
	}
	return *c, true
}

// EdgesFrom returns the edges leaving a concept, optionally of one relation.
func (k *KB) EdgesFrom(id string, rel Relation) []Edge {
	var out []Edge
	for _, i := range k.out[id] {
		if rel == "" || k.edges[i].Relation == rel {
			out = append(out, k.edges[i])
		}
	}
	return out
}

// ICD10 returns the description of an ICD-10-CM code ("I21.9" or "I219").
func (k *KB) ICD10(code string) (string, bool) {
	d, ok := k.icd10[icdKey(code)]
	return d, ok
}

// Stats reports the graph's size and load time.
func (k *KB) Stats() Stats { return k.stats }

func (k *KB) computeStats() {
	s := &k.stats
	s.Concepts, s.Edges, s.EdgesBySource = map[string]int{}, map[string]int{}, map[string]int{}
	for _, c := range k.concepts {
		s.Concepts[string(c.Type)]++
	}
	for _, e := range k.edges {
		s.Edges[string(e.Relation)]++
		s.EdgesBySource[e.Source]++
	}
	s.Conditions = len(k.conditions)
	s.Evidences = len(k.evidences)
	s.ICD10Codes = len(k.icd10)
	s.Drugs = len(k.drugs.generics)
	s.InteractPairs = len(k.drugs.pairs)
	s.ClassRules = len(k.drugs.rules)
	// The seed's COMPLICATION_OF has no source in the open data.
	s.Missing = []string{"COMPLICATION_OF (no open data source shipped)"}
	sort.Strings(s.Missing)
}

// Domain maps an ICD-10-CM code to a medical domain, by the longest prefix
// in data/lexicon/domains.tsv.
func (k *KB) Domain(icd string) clinical.Domain {
	code := icdKey(icd)
	for n := len(code); n > 0; n-- {
		if d, ok := k.diff.domainByPrefix[code[:n]]; ok {
			return d
		}
	}
	return clinical.General
}
