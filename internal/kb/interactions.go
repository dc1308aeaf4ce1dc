package kb

import (
	"fmt"
	"io/fs"
	"maps"
	"sort"
	"strings"

	"medserve/internal/clinical"
)

// Severity is the project's one interaction scale. CRESCENDDI's three
// compendia are merged onto it (see severityOf); the curated rules use it
// directly.
type Severity uint8

// Severities, least to most serious.
const (
	SevNone Severity = iota
	SevMinor
	SevModerate
	SevMajor
	SevContraindicated
)

var severityNames = [...]string{"none", "minor", "moderate", "major", "contraindicated"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("Severity(%d)", s)
}

// ParseSeverity reads a severity name of the project scale.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(strings.TrimSpace(s), n) && i > 0 {
			return Severity(i), nil
		}
	}
	return SevNone, fmt.Errorf("unknown severity %q (want minor, moderate, major or contraindicated)", s)
}

// severityOf merges one CRESCENDDI row's three severity labels, taking the
// most serious:
//
//	contraindicated: Micromedex "Contraindicated", ANSM "Contre-indication"
//	major:           Micromedex "Major", BNF "Severe", ANSM "Not recommended"
//	moderate:        Micromedex "Moderate", BNF "Moderate", ANSM "Precautions for use"
//	minor:           Micromedex "Minor", BNF "Mild", ANSM "Take into consideration"
func severityOf(bnf, ansm, micromedex string) Severity {
	best := SevNone
	for _, l := range []string{bnf, ansm, micromedex} {
		var s Severity
		switch strings.ToLower(strings.TrimSpace(l)) {
		case "contraindicated":
			s = SevContraindicated
		case "major", "severe", "not recommended":
			s = SevMajor
		case "moderate", "precautions for use":
			s = SevModerate
		case "minor", "mild", "take into consideration":
			s = SevMinor
		}
		best = max(best, s)
	}
	return best
}

// pairInfo is what CRESCENDDI says of one unordered drug pair.
type pairInfo struct {
	severity Severity
	events   []string // adverse events, most severe first
	sources  []string // BNF, Micromedex, ANSM as the row's EVENT_SOURCE names them
}

// ClassRule is a curated class-level interaction (data/kb/ddi-rules.tsv).
type ClassRule struct {
	ID       string   `json:"id"`
	A        string   `json:"a"` // "class:maoi" or "drug:warfarin"
	B        string   `json:"b"`
	Severity Severity `json:"-"`
	Effect   string   `json:"effect"`
	List     string   `json:"list"` // phansalkar2012, consensus
	Source   string   `json:"source"`
}

// drugIndex holds the drug vocabulary and every interaction, indexed so
// that checking a pair is a map lookup and a merge of two short slices.
type drugIndex struct {
	brands   map[string]string // brand or synonym → generic
	generics []string
	id       map[string]int32
	names    *DrugNames
	pairs    map[uint64]*pairInfo
	classes  map[string][]int32 // class → member drug ids
	classOf  [][]string         // drug id → its classes
	rules    []ClassRule
	// sides[d] lists rule<<1|side for every rule side drug d belongs to,
	// sorted, so a pair's rules are found by merging two lists.
	sides     [][]uint32
	negatives [][2]string // CRESCENDDI negative-control pairs, for evaluation
	positives [][2]string // distinct positive pairs with their severity, for evaluation
	posSev    []Severity
	posSource []string
}

func pairKey(a, b int32) uint64 {
	if a > b {
		a, b = b, a
	}
	return uint64(uint32(a))<<32 | uint64(uint32(b))
}

// normalizeGeneric is the key form of a generic name: lower case, single
// spaces.
func normalizeGeneric(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

const (
	filePositives = "crescenddi/derived-csv/positive_controls.csv"
	fileNegatives = "crescenddi/derived-csv/negative_controls.csv"
	fileDrugMaps  = "crescenddi/derived-csv/drug_mappings.csv"
	fileClasses   = "kb/drug-classes.tsv"
	fileRules     = "kb/ddi-rules.tsv"
	fileBrands    = "kb/brands.tsv"
	filePharmaco  = "pharmacotherapydb/drugs.tsv"
)

func (d *drugIndex) intern(name string) int32 {
	name = d.canonical(name)
	if i, ok := d.id[name]; ok {
		return i
	}
	i := int32(len(d.generics))
	d.id[name] = i
	d.generics = append(d.generics, name)
	d.classOf = append(d.classOf, nil)
	d.sides = append(d.sides, nil)
	return i
}

// canonical is the generic a name stands for: a name that brands.tsv maps
// to a generic ("acetylsalicylic acid" → aspirin, "paracetamol" →
// acetaminophen) is never a generic of its own, whichever source used it.
func (d *drugIndex) canonical(name string) string {
	n := normalizeGeneric(name)
	if g, ok := d.brands[n]; ok {
		return g
	}
	return n
}

// loadBrands reads data/kb/brands.tsv first, so that every source's drug
// names are made canonical the same way.
func (k *KB) loadBrands(fsys fs.FS) error {
	k.brands = map[string]string{}
	return readTable(fsys, fileBrands, '\t', []string{"brand", "generic"}, func(r row) error {
		b, g := normalizeGeneric(r.get("brand")), normalizeGeneric(r.get("generic"))
		if b == "" || g == "" || b == g {
			return rowErr(fileBrands, r, "brand and a different generic are required")
		}
		if cur, ok := k.brands[b]; ok && cur != g {
			return rowErr(fileBrands, r, "%q maps to both %q and %q", b, cur, g)
		}
		k.brands[b] = g
		return nil
	})
}

func (k *KB) loadDrugs(fsys fs.FS) error {
	d := &drugIndex{id: map[string]int32{}, pairs: map[uint64]*pairInfo{}, classes: map[string][]int32{}, brands: k.brands}
	k.drugs = d
	aliases := map[string]string{}

	// Generic names: PharmacotherapyDB, CRESCENDDI's RxNorm ingredients.
	if err := readTable(fsys, filePharmaco, '\t', []string{"drugbank_id", "drug"}, func(r row) error {
		d.intern(r.get("drug"))
		return nil
	}); err != nil {
		return err
	}
	if err := readTable(fsys, fileDrugMaps, ',', []string{"DRUG_INITIAL_NAME", "DRUG_CONCEPT_NAME"}, func(r row) error {
		generic := d.canonical(r.get("DRUG_CONCEPT_NAME"))
		if generic == "" {
			return nil
		}
		gi := d.intern(generic)
		code := r.get("RXNORM_CODE/RXNORM_EXTENSION_CODE (OHDSI)")
		c := k.addConcept(Concept{ID: "drug:" + generic, Type: clinical.Drug, Name: generic})
		if code != "" && code != "0" {
			if c.Codes == nil {
				c.Codes = map[string]string{}
			}
			if _, ok := c.Codes["RXNORM"]; !ok {
				c.Codes["RXNORM"] = code
			}
		}
		// The name as the compendium wrote it ("doxycycline hyclate",
		// "doxorubicine") resolves to the ingredient.
		if alias := normalizeGeneric(r.get("DRUG_INITIAL_NAME")); alias != "" && alias != d.generics[gi] {
			addAlias(aliases, alias, d.generics[gi])
		}
		return nil
	}); err != nil {
		return err
	}

	// Curated classes; members join the vocabulary.
	if err := readTable(fsys, fileClasses, '\t', []string{"class", "drug", "source"}, func(r row) error {
		class, drug := r.get("class"), d.canonical(r.get("drug"))
		if class == "" || drug == "" || r.get("source") == "" {
			return rowErr(fileClasses, r, "class, drug and source are required")
		}
		di := d.intern(drug)
		for _, m := range d.classes[class] {
			if m == di {
				return rowErr(fileClasses, r, "%s listed twice in class %s", drug, class)
			}
		}
		d.classes[class] = append(d.classes[class], di)
		d.classOf[di] = append(d.classOf[di], class)
		k.addConcept(Concept{ID: "class:" + class, Type: TypeClass, Name: class})
		k.addConcept(Concept{ID: "drug:" + drug, Type: clinical.Drug, Name: drug})
		k.addEdge(Edge{From: "drug:" + drug, To: "class:" + class, Relation: MemberOf, Source: r.get("source")})
		return nil
	}); err != nil {
		return err
	}

	brands := maps.Clone(k.brands)
	for _, g := range brands {
		d.intern(g)
	}
	// CRESCENDDI's source spellings become aliases unless they collide, in
	// the resolver's normal form, with a generic or with an alias of
	// another drug ("povidone iodine" vs the generic "povidone-iodine").
	taken := map[string]string{}
	for _, g := range d.generics {
		taken[string(dnAppendNormal(nil, g))] = g
	}
	for b, g := range brands {
		taken[string(dnAppendNormal(nil, b))] = g
	}
	aliasKeys := make([]string, 0, len(aliases))
	for a := range aliases {
		aliasKeys = append(aliasKeys, a)
	}
	sort.Strings(aliasKeys)
	for _, a := range aliasKeys {
		g := aliases[a]
		key := string(dnAppendNormal(nil, a))
		if g == "" || key == "" {
			continue
		}
		if cur, ok := taken[key]; ok && cur != g {
			continue
		} else if ok {
			continue
		}
		taken[key] = g
		brands[a] = g
	}
	k.stats.DrugNames = len(brands)
	names, err := NewDrugNames(d.generics, brands)
	if err != nil {
		return fmt.Errorf("drug names: %w", err)
	}
	d.names = names

	if err := k.loadPositives(fsys); err != nil {
		return err
	}
	if err := readTable(fsys, fileNegatives, ',', []string{"DRUG_1_CONCEPT_NAME", "DRUG_2_CONCEPT_NAME"}, func(r row) error {
		d.negatives = append(d.negatives, [2]string{d.canonical(r.get("DRUG_1_CONCEPT_NAME")), d.canonical(r.get("DRUG_2_CONCEPT_NAME"))})
		return nil
	}); err != nil {
		return err
	}
	return k.loadRules(fsys)
}

// addAlias records alias → generic; an alias claimed by two generics is
// ambiguous and resolves to nothing.
func addAlias(m map[string]string, alias, generic string) {
	if cur, ok := m[alias]; ok && cur != generic {
		m[alias] = ""
		return
	}
	m[alias] = generic
}

func (k *KB) loadPositives(fsys fs.FS) error {
	d := k.drugs
	events := map[uint64]map[string]Severity{}
	return readTable(fsys, filePositives, ',', []string{"DRUG_1_CONCEPT_NAME", "DRUG_2_CONCEPT_NAME", "EVENT_CONCEPT_NAME", "EVENT_SOURCE", "BNF_SEV_LEVEL", "ANSM_SEV_LEVEL", "MICROMEDEX_SEV_LEVEL"}, func(r row) error {
		a, b := d.canonical(r.get("DRUG_1_CONCEPT_NAME")), d.canonical(r.get("DRUG_2_CONCEPT_NAME"))
		if a == "" || b == "" || a == b {
			return rowErr(filePositives, r, "drug pair %q + %q malformed", a, b)
		}
		ai, bi := d.intern(a), d.intern(b)
		sev := severityOf(r.get("BNF_SEV_LEVEL"), r.get("ANSM_SEV_LEVEL"), r.get("MICROMEDEX_SEV_LEVEL"))
		if sev == SevNone {
			return rowErr(filePositives, r, "no severity in any source")
		}
		key := pairKey(ai, bi)
		p, ok := d.pairs[key]
		if !ok {
			p = &pairInfo{}
			d.pairs[key] = p
			events[key] = map[string]Severity{}
			d.positives = append(d.positives, [2]string{a, b})
			d.posSev = append(d.posSev, sev)
			d.posSource = append(d.posSource, r.get("EVENT_SOURCE"))
			k.addEdge(Edge{From: "drug:" + a, To: "drug:" + b, Relation: InteractsWith, Source: filePositives})
		}
		ev := r.get("EVENT_CONCEPT_NAME")
		if _, seen := events[key][ev]; !seen {
			k.addConcept(Concept{ID: "event:" + slug(ev), Type: TypeEvent, Name: ev, Codes: map[string]string{"MEDDRA": r.get("MDR_CODE")}})
			k.addEdge(Edge{From: "drug:" + a + "+" + b, To: "event:" + slug(ev), Relation: Causes, Source: filePositives, Attr: sev.String()})
		}
		events[key][ev] = max(events[key][ev], sev)
		if sev > p.severity {
			p.severity = sev
		}
		src := r.get("EVENT_SOURCE")
		if !containsStr(p.sources, src) {
			p.sources = append(p.sources, src)
		}
		// Events, most severe first, then by name, for a stable report.
		p.events = p.events[:0]
		for e := range events[key] {
			p.events = append(p.events, e)
		}
		evs := events[key]
		sort.Slice(p.events, func(i, j int) bool {
			if evs[p.events[i]] != evs[p.events[j]] {
				return evs[p.events[i]] > evs[p.events[j]]
			}
			return p.events[i] < p.events[j]
		})
		return nil
	})
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (k *KB) loadRules(fsys fs.FS) error {
	d := k.drugs
	ids := map[string]bool{}
	if err := readTable(fsys, fileRules, '\t', []string{"id", "a", "b", "severity", "effect", "list", "source"}, func(r row) error {
		sev, err := ParseSeverity(r.get("severity"))
		if err != nil {
			return rowErr(fileRules, r, "%v", err)
		}
		rule := ClassRule{ID: r.get("id"), A: r.get("a"), B: r.get("b"), Severity: sev, Effect: r.get("effect"), List: r.get("list"), Source: r.get("source")}
		if rule.ID == "" || ids[rule.ID] || rule.Source == "" || rule.Effect == "" {
			return rowErr(fileRules, r, "rule needs a unique id, an effect and a source")
		}
		ids[rule.ID] = true
		ri := uint32(len(d.rules))
		for side, spec := range []string{rule.A, rule.B} {
			members, err := d.members(spec)
			if err != nil {
				return rowErr(fileRules, r, "%v", err)
			}
			for _, m := range members {
				d.sides[m] = append(d.sides[m], ri<<1|uint32(side))
			}
		}
		d.rules = append(d.rules, rule)
		return nil
	}); err != nil {
		return err
	}
	for i := range d.sides {
		s := d.sides[i]
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	}
	return nil
}

// members resolves "class:NAME" or "drug:NAME" to drug ids.
func (d *drugIndex) members(spec string) ([]int32, error) {
	kind, name, ok := strings.Cut(spec, ":")
	name = normalizeGeneric(name)
	switch {
	case ok && kind == "class":
		m, found := d.classes[name]
		if !found {
			return nil, fmt.Errorf("unknown class %q", name)
		}
		return m, nil
	case ok && kind == "drug":
		return []int32{d.intern(d.canonical(name))}, nil
	}
	return nil, fmt.Errorf("rule side %q: want class:NAME or drug:NAME", spec)
}

// Alert is one interacting pair found in a medication list.
type Alert struct {
	Drugs    [2]string `json:"drugs"`  // generic names, in list order
	Inputs   [2]string `json:"inputs"` // as given
	Severity string    `json:"severity"`
	Effect   string    `json:"effect"`
	Source   string    `json:"source"`
	Rules    []string  `json:"rules,omitempty"`  // curated rule ids that fired
	Events   []string  `json:"events,omitempty"` // CRESCENDDI adverse events
	sev      Severity
}

// InteractionReport is the result of checking one medication list.
type InteractionReport struct {
	Medications  []DrugResolution `json:"medications"`
	Interactions []Alert          `json:"interactions"`
	// Unknown lists inputs that resolved to no known drug: they were not
	// checked, and a caller must show that rather than imply safety.
	Unknown    []string `json:"unknown"`
	Duplicates []string `json:"duplicates"`
}

// CheckInteractions checks every pair of a medication list. Alerts come
// most severe first.
func (k *KB) CheckInteractions(meds []string) InteractionReport {
	d := k.drugs
	rep := InteractionReport{Medications: make([]DrugResolution, 0, len(meds)), Interactions: []Alert{}, Unknown: []string{}, Duplicates: []string{}}
	type known struct {
		id    int32
		input string
	}
	var list []known
	seen := map[int32]bool{}
	for _, m := range meds {
		res := d.names.Resolve(m)
		rep.Medications = append(rep.Medications, res)
		if res.Match == MatchUnknown {
			rep.Unknown = append(rep.Unknown, m)
			continue
		}
		id := d.id[res.Generic]
		if seen[id] {
			rep.Duplicates = append(rep.Duplicates, m)
			continue
		}
		seen[id] = true
		list = append(list, known{id: id, input: m})
	}
	for i := 0; i < len(list); i++ {
		for j := i + 1; j < len(list); j++ {
			if a, ok := d.check(list[i].id, list[j].id); ok {
				a.Inputs = [2]string{list[i].input, list[j].input}
				rep.Interactions = append(rep.Interactions, a)
			}
		}
	}
	sort.SliceStable(rep.Interactions, func(i, j int) bool { return rep.Interactions[i].sev > rep.Interactions[j].sev })
	return rep
}

// check reports the interaction of one pair of known drugs, merging the
// CRESCENDDI pair with any curated rule that covers it: the most severe
// finding sets the severity and the effect; every source is named.
func (d *drugIndex) check(a, b int32) (Alert, bool) {
	alert := Alert{Drugs: [2]string{d.generics[a], d.generics[b]}}
	var sources []string
	if p, ok := d.pairs[pairKey(a, b)]; ok {
		alert.sev = p.severity
		alert.Events = p.events
		alert.Effect = strings.Join(p.events, "; ")
		sources = append(sources, "CRESCENDDI ("+strings.Join(p.sources, ", ")+")")
	}
	sa, sb := d.sides[a], d.sides[b]
	for _, x := range sa {
		rule := x >> 1
		want := rule<<1 | (x&1 ^ 1) // the other side of the same rule
		i := sort.Search(len(sb), func(i int) bool { return sb[i] >= want })
		if i == len(sb) || sb[i] != want {
			continue
		}
		r := &d.rules[rule]
		if containsStr(alert.Rules, r.ID) {
			continue
		}
		alert.Rules = append(alert.Rules, r.ID)
		src := r.Source + " [" + r.ID + "]"
		if !containsStr(sources, src) {
			sources = append(sources, src)
		}
		if r.Severity > alert.sev {
			alert.sev = r.Severity
			alert.Effect = r.Effect
		}
	}
	if alert.sev == SevNone {
		return Alert{}, false
	}
	alert.Severity = alert.sev.String()
	alert.Source = strings.Join(sources, "; ")
	return alert, true
}

// ResolveDrug maps a typed medication name to a generic.
func (k *KB) ResolveDrug(name string) DrugResolution { return k.drugs.names.Resolve(name) }

// DrugClasses returns the curated classes of a generic drug.
func (k *KB) DrugClasses(generic string) []string {
	if i, ok := k.drugs.id[normalizeGeneric(generic)]; ok {
		return k.drugs.classOf[i]
	}
	return nil
}

// ClassMembers returns the generic names of a class's members.
func (k *KB) ClassMembers(class string) []string {
	var out []string
	for _, i := range k.drugs.classes[class] {
		out = append(out, k.drugs.generics[i])
	}
	return out
}

// Rules returns the curated class-level rules.
func (k *KB) Rules() []ClassRule { return k.drugs.rules }
