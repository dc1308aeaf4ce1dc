package text

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"sort"
	"strings"

	"medserve/internal/clinical"
)

// Lexicon sources, in the order they are trusted: a phrase named by an
// earlier source keeps that source's concept.
const (
	SrcTerms       = "lexicon/terms.tsv"
	SrcEvidences   = "lexicon/ddxplus-evidences.tsv"
	SrcAnatomy     = "lexicon/anatomy.tsv"
	SrcValues      = "lexicon/ddxplus-values.tsv"
	SrcConditions  = "ddxplus/release_conditions.json"
	SrcPharmaco    = "pharmacotherapydb/drugs.tsv"
	SrcCrescenddi  = "crescenddi/derived-csv/drug_mappings.csv"
	SrcSymptomList = "disease-symptom-prediction/Symptom_severity.csv"
	SrcICD10       = "icd10cm/icd10cm-order-Jan-2021.csv.gz"
)

// LoadConfig reads the lexicon, abbreviations and ConText rules from the
// project's data tree (the repository's data/, embedded in the binary).
func LoadConfig(data fs.FS) (Config, error) {
	b := lexBuilder{fsys: data, concepts: map[string]*Concept{}}
	var cfg Config
	var err error
	if cfg.Abbreviations, err = b.abbreviations(); err != nil {
		return Config{}, err
	}
	if err := b.exclusions(); err != nil {
		return Config{}, err
	}
	steps := []func() error{b.terms, b.evidences, b.anatomy, b.values, b.conditions, b.pharmacotherapy, b.crescenddi, b.symptomList, b.icd10}
	for _, step := range steps {
		if err := step(); err != nil {
			return Config{}, err
		}
	}
	if err := b.domains(); err != nil {
		return Config{}, err
	}
	cfg.Entries = b.entries()
	if cfg.Rules, err = LoadRules(data); err != nil {
		return Config{}, err
	}
	if cfg.Sections, err = LoadSections(data); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LoadSections reads the section headers of medspaCy's section_patterns.json
// (the literals that end in a colon; a header without one, like "Consult",
// is too common a word to end a section) and qualifies them from
// lexicon/sections.tsv: by medspaCy category, overridden per header.
func LoadSections(data fs.FS) ([]Section, error) {
	type rule struct {
		Literal  string `json:"literal"`
		Category string `json:"category"`
	}
	doc, err := readWith(data, "medspacy-context/section_patterns.json", func(r io.Reader) (struct {
		Rules []rule `json:"section_rules"`
	}, error) {
		var d struct {
			Rules []rule `json:"section_rules"`
		}
		return d, json.NewDecoder(r).Decode(&d)
	})
	if err != nil {
		return nil, err
	}
	rows, err := readWith(data, "lexicon/sections.tsv", func(r io.Reader) ([]map[string]string, error) {
		return readTSV(r, "kind", "key", "flag")
	})
	if err != nil {
		return nil, err
	}
	type qual struct {
		on   bool
		flag Category
	}
	byCategory, byLiteral := map[string]qual{}, map[string]qual{}
	var order []string
	for i, r := range rows {
		q := qual{}
		if r["flag"] != "-" {
			c, ok := parseCategory(r["flag"])
			if !ok {
				return nil, fmt.Errorf("lexicon/sections.tsv row %d: flag %q", i+2, r["flag"])
			}
			q = qual{on: true, flag: c}
		}
		switch r["kind"] {
		case "category":
			byCategory[r["key"]] = q
		case "literal":
			key := cleanPhrase(r["key"])
			if _, seen := byLiteral[key]; !seen {
				order = append(order, r["key"])
			}
			byLiteral[key] = q
		default:
			return nil, fmt.Errorf("lexicon/sections.tsv row %d: kind %q", i+2, r["kind"])
		}
	}
	var out []Section
	seen := map[string]bool{}
	add := func(header string, q qual) {
		key := cleanPhrase(header)
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, Section{Header: header, Qualifies: q.on, Flag: q.flag})
	}
	for _, r := range doc.Rules {
		lit := strings.TrimSpace(r.Literal)
		if !strings.HasSuffix(lit, ":") {
			continue
		}
		q, ok := byLiteral[cleanPhrase(lit)]
		if !ok {
			q = byCategory[r.Category]
		}
		add(lit, q)
	}
	for _, lit := range order {
		add(lit, byLiteral[cleanPhrase(lit)])
	}
	return out, nil
}

// Load builds an engine from the data tree.
func Load(data fs.FS) (*Engine, error) {
	cfg, err := LoadConfig(data)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// LoadRules reads the ConText rules, most trusted first: medspaCy's default
// rules (2021), the project's additions, then NegEx's triggers (genConText's
// variant, a superset of the 2009 list) and genConText's historical,
// hypothetical and experiencer triggers. Where sources disagree on whether a
// phrase negates or only doubts, the earlier one wins (see New).
func LoadRules(data fs.FS) ([]Rule, error) {
	rules, err := readWith(data, "medspacy-context/context_rules.json", func(rd io.Reader) ([]Rule, error) {
		return ParseMedspaCyRules(rd, "medspacy-context/context_rules.json")
	})
	if err != nil {
		return nil, err
	}
	files := []struct {
		path string
		cat  Category
	}{
		{"lexicon/context-extra.txt", Negated},
		{"negex/genConText/negex_triggers.txt", Negated},
		{"negex/genConText/history_triggers.txt", Historical},
		{"negex/genConText/hypothetical_triggers.txt", Hypothetical},
		{"negex/genConText/experiencer_triggers.txt", Family},
	}
	for _, f := range files {
		r, err := readWith(data, f.path, func(rd io.Reader) ([]Rule, error) {
			return ParseNegExTriggers(rd, f.cat, f.path)
		})
		if err != nil {
			return nil, err
		}
		rules = append(rules, r...)
	}
	return rules, nil
}

func readWith[T any](fsys fs.FS, path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := fsys.Open(path)
	if err != nil {
		return zero, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	v, err := parse(bufio.NewReader(f))
	if err != nil {
		return zero, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

type lexEntry struct {
	phrase, concept, source string
}

// lexBuilder merges the sources into concepts. A concept's fields are filled
// by the first source that knows them, so a curated ICD-10 code wins over a
// derived one and a derived code fills a curated concept that lacked one.
type lexBuilder struct {
	fsys     fs.FS
	concepts map[string]*Concept
	order    []string
	list     []lexEntry
	exclude  map[string]bool
}

func (b *lexBuilder) add(phrase string, c Concept, source string, curated bool) {
	phrase = cleanPhrase(phrase)
	if phrase == "" || (!curated && (b.exclude[phrase] || len(phrase) <= 3 && !strings.Contains(phrase, " "))) {
		// Derived sources yield words like "or" (French "gold" in a drug
		// list) and "all"; a word of three letters or fewer is matched
		// only when a curated file names it.
		return
	}
	cur, ok := b.concepts[c.ID]
	if !ok {
		cc := c
		b.concepts[c.ID] = &cc
		b.order = append(b.order, c.ID)
		cur = &cc
	}
	if cur.Code == "" {
		cur.Code = c.Code
	}
	if cur.Name == "" {
		cur.Name = c.Name
	}
	b.list = append(b.list, lexEntry{phrase: phrase, concept: c.ID, source: source})
}

func (b *lexBuilder) entries() []Entry {
	out := make([]Entry, 0, len(b.list))
	for _, le := range b.list {
		out = append(out, Entry{Phrase: le.phrase, Concept: *b.concepts[le.concept], Source: le.source})
	}
	return out
}

// tsv reads a header-first, tab-separated file into rows keyed by column.
func (b *lexBuilder) tsv(rel string, required ...string) ([]map[string]string, error) {
	return readWith(b.fsys, rel, func(r io.Reader) ([]map[string]string, error) {
		return readTSV(r, required...)
	})
}

func readTSV(r io.Reader, required ...string) ([]map[string]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var header []string
	var rows []map[string]string
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cols := strings.Split(text, "\t")
		if header == nil {
			header = cols
			for _, req := range required {
				if !containsString(header, req) {
					return nil, fmt.Errorf("missing column %q", req)
				}
			}
			continue
		}
		if len(cols) > len(header) {
			return nil, fmt.Errorf("line %d: %d columns, header has %d", line, len(cols), len(header))
		}
		row := make(map[string]string, len(header))
		for i, h := range header {
			if i < len(cols) {
				row[h] = strings.TrimSpace(cols[i])
			}
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if header == nil {
		return nil, errors.New("empty file")
	}
	return rows, nil
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (b *lexBuilder) abbreviations() ([]Abbreviation, error) {
	rows, err := b.tsv("lexicon/abbreviations.tsv", "abbr", "expansion")
	if err != nil {
		return nil, err
	}
	out := make([]Abbreviation, 0, len(rows))
	for _, r := range rows {
		out = append(out, Abbreviation{Abbr: r["abbr"], Expansion: r["expansion"]})
	}
	return out, nil
}

func (b *lexBuilder) exclusions() error {
	rows, err := b.tsv("lexicon/exclude.tsv", "phrase")
	if err != nil {
		return err
	}
	b.exclude = make(map[string]bool, len(rows))
	for _, r := range rows {
		b.exclude[cleanPhrase(r["phrase"])] = true
	}
	return nil
}

// icdCode formats an ICD-10-CM code for display: upper case, dot after the
// category ("g44.009" → "G44.009", "R509" → "R50.9").
func icdCode(c string) string {
	c = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(c), ".", ""))
	if len(c) > 3 {
		c = c[:3] + "." + c[3:]
	}
	return c
}

func withSystem(system, code string) string {
	if code == "" {
		return ""
	}
	return system + ":" + code
}

func parseType(s string) (clinical.ConceptType, bool) {
	t := clinical.ConceptType(strings.ToUpper(strings.TrimSpace(s)))
	return t, t.Valid() && t != clinical.Target
}

func (b *lexBuilder) terms() error {
	rows, err := b.tsv(SrcTerms, "phrase", "concept", "type", "name", "code")
	if err != nil {
		return err
	}
	for i, r := range rows {
		t, ok := parseType(r["type"])
		if !ok {
			return fmt.Errorf("%s row %d: type %q", SrcTerms, i+2, r["type"])
		}
		code := ""
		if r["code"] != "" {
			code = withSystem("ICD10CM", icdCode(r["code"]))
		}
		b.add(r["phrase"], Concept{ID: r["concept"], Type: t, Name: r["name"], Code: code}, SrcTerms, true)
	}
	return nil
}

func (b *lexBuilder) evidences() error {
	rows, err := b.tsv(SrcEvidences, "code", "concept", "type", "name", "synonyms")
	if err != nil {
		return err
	}
	for _, r := range rows {
		t, ok := parseType(r["type"])
		if r["concept"] == "-" || !ok {
			continue // scales, RISK factors and other non-matchable evidences
		}
		c := Concept{ID: r["concept"], Type: t, Name: r["name"], Code: withSystem("DDXPLUS", r["code"])}
		b.add(r["name"], c, SrcEvidences, true)
		for _, syn := range strings.Split(r["synonyms"], "|") {
			b.add(syn, c, SrcEvidences, true)
		}
	}
	return nil
}

func (b *lexBuilder) anatomy() error {
	rows, err := b.tsv(SrcAnatomy, "phrase", "concept", "name")
	if err != nil {
		return err
	}
	for _, r := range rows {
		b.add(r["phrase"], Concept{ID: r["concept"], Type: clinical.Anatomy, Name: r["name"], Code: withSystem("MEDSERVE", r["concept"])}, SrcAnatomy, true)
	}
	return nil
}

func (b *lexBuilder) values() error {
	rows, err := b.tsv(SrcValues, "evidence", "value", "concept", "type", "name")
	if err != nil {
		return err
	}
	for _, r := range rows {
		t, ok := parseType(r["type"])
		if r["concept"] == "-" || !ok {
			continue
		}
		b.add(r["name"], Concept{ID: r["concept"], Type: t, Name: r["name"], Code: withSystem("MEDSERVE", r["concept"])}, SrcValues, true)
	}
	return nil
}

// conditions adds DDXPlus's 49 pathologies with their ICD-10 codes. Names
// such as "Possible NSTEMI / STEMI" and "Larygospasm" [sic] are cleaned:
// a leading "possible" is dropped and "/"-separated alternatives become
// synonyms of one concept.
func (b *lexBuilder) conditions() error {
	conds, err := readWith(b.fsys, SrcConditions, func(r io.Reader) (map[string]struct {
		Eng   string `json:"cond-name-eng"`
		ICD10 string `json:"icd10-id"`
	}, error) {
		var m map[string]struct {
			Eng   string `json:"cond-name-eng"`
			ICD10 string `json:"icd10-id"`
		}
		return m, json.NewDecoder(r).Decode(&m)
	})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(conds))
	for k := range conds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := conds[k]
		name := strings.TrimSpace(c.Eng)
		if strings.EqualFold(name, "Larygospasm") {
			name = "Laryngospasm"
		}
		name = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(name, "Possible "), "possible "))
		code := strings.Split(c.ICD10, ",")[0]
		concept := Concept{ID: Slug(name), Type: clinical.Disease, Name: name, Code: withSystem("ICD10CM", icdCode(code))}
		b.add(name, concept, SrcConditions, false)
		for _, alt := range strings.Split(name, "/") {
			b.add(alt, concept, SrcConditions, false)
		}
	}
	return nil
}

func (b *lexBuilder) pharmacotherapy() error {
	rows, err := b.tsv(SrcPharmaco, "drugbank_id", "drug")
	if err != nil {
		return err
	}
	for _, r := range rows {
		name := cleanPhrase(r["drug"])
		b.add(name, Concept{ID: Slug(name), Type: clinical.Drug, Name: name, Code: withSystem("DRUGBANK", r["drugbank_id"])}, SrcPharmaco, false)
	}
	return nil
}

// crescenddi adds CRESCENDDI's drug names: the concept name (an RxNorm
// ingredient) and the name as the source compendium wrote it, which is
// often a salt or a brand.
func (b *lexBuilder) crescenddi() error {
	return b.csv(SrcCrescenddi, func(rec []string) {
		if len(rec) < 3 {
			return
		}
		name := cleanPhrase(rec[1])
		if name == "" {
			return
		}
		c := Concept{ID: Slug(name), Type: clinical.Drug, Name: name, Code: withSystem("RXNORM", strings.TrimSpace(rec[2]))}
		b.add(name, c, SrcCrescenddi, false)
		b.add(rec[0], c, SrcCrescenddi, false)
	})
}

func (b *lexBuilder) symptomList() error {
	return b.csv(SrcSymptomList, func(rec []string) {
		if len(rec) < 1 {
			return
		}
		name := cleanPhrase(strings.ReplaceAll(rec[0], "_", " "))
		if name == "" {
			return
		}
		b.add(name, Concept{ID: Slug(name), Type: clinical.Symptom, Name: name}, SrcSymptomList, false)
	}, true)
}

// icdReject marks ICD-10-CM descriptions that are not names a clinician
// writes: residual categories, encounter and sequela codes, combinations.
var icdReject = []string{"other", "unspecified", "encounter", "sequela", "classified elsewhere", " due to ", " with ", "without", " and ", " or ", ",", "specified", "elsewhere", "following", "complicating", "affecting", "personal history", "family history"}

// icd10 adds disease names from ICD-10-CM categories and their first
// subdivisions (3–4 character codes), outside the external-cause (V–Y) and
// health-status (Z) chapters, after dropping residual and combination
// descriptions (see icdReject) and phrases longer than six words.
func (b *lexBuilder) icd10() error {
	f, err := b.fsys.Open(SrcICD10)
	if err != nil {
		return fmt.Errorf("open %s: %w", SrcICD10, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", SrcICD10, err)
	}
	r := csv.NewReader(gz)
	r.ReuseRecord = true
	if _, err := r.Read(); err != nil {
		return fmt.Errorf("read %s header: %w", SrcICD10, err)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", SrcICD10, err)
		}
		code := rec[0]
		if len(code) < 3 || len(code) > 4 || strings.ContainsAny(code[:1], "VWXYZ") {
			continue
		}
		name := strings.ToLower(rec[3])
		for _, suf := range []string{", unspecified", " unspecified", ", not elsewhere classified"} {
			name = strings.TrimSuffix(name, suf)
		}
		name = dropParenthesized(name)
		if rejectICD(name) || len(strings.Fields(name)) > 6 {
			continue
		}
		b.add(name, Concept{ID: Slug(name), Type: clinical.Disease, Name: name, Code: withSystem("ICD10CM", icdCode(code))}, SrcICD10, false)
	}
	return nil
}

func rejectICD(name string) bool {
	padded := " " + name + " "
	for _, r := range icdReject {
		if strings.Contains(padded, r) {
			return true
		}
	}
	return false
}

// dropParenthesized removes "(primary)" from "essential (primary)
// hypertension": notes write the name without the qualifier.
func dropParenthesized(s string) string {
	for {
		i := strings.IndexByte(s, '(')
		j := strings.IndexByte(s, ')')
		if i < 0 || j < i {
			return strings.Join(strings.Fields(s), " ")
		}
		s = s[:i] + " " + s[j+1:]
	}
}

func (b *lexBuilder) csv(rel string, fn func([]string), noHeader ...bool) error {
	f, err := b.fsys.Open(rel)
	if err != nil {
		return fmt.Errorf("open %s: %w", rel, err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	first := len(noHeader) == 0 || !noHeader[0]
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		if first {
			first = false
			continue
		}
		fn(rec)
	}
}

// domains reads lexicon/domains.tsv: concept rows name a concept's domain;
// icd10 rows give a domain to every concept whose ICD-10-CM code starts with
// the prefix, the longest prefix winning. Concept rows win over prefixes.
func (b *lexBuilder) domains() error {
	rows, err := b.tsv("lexicon/domains.tsv", "kind", "key", "domain")
	if err != nil {
		return err
	}
	byConcept := map[string]clinical.Domain{}
	byPrefix := map[string]clinical.Domain{}
	for i, r := range rows {
		d := clinical.Domain(r["domain"])
		switch d {
		case clinical.Cardiology, clinical.Neurology, clinical.Oncology, clinical.Emergency, clinical.General:
		default:
			return fmt.Errorf("lexicon/domains.tsv row %d: unknown domain %q", i+2, d)
		}
		switch r["kind"] {
		case "concept":
			byConcept[r["key"]] = d
		case "icd10":
			byPrefix[strings.ToUpper(strings.ReplaceAll(r["key"], ".", ""))] = d
		default:
			return fmt.Errorf("lexicon/domains.tsv row %d: unknown kind %q", i+2, r["kind"])
		}
	}
	for _, c := range b.concepts {
		if d, ok := byConcept[c.ID]; ok {
			c.Domain = d
			continue
		}
		code, ok := strings.CutPrefix(c.Code, "ICD10CM:")
		if !ok {
			continue
		}
		code = strings.ReplaceAll(code, ".", "")
		for n := len(code); n > 0; n-- {
			if d, ok := byPrefix[code[:n]]; ok {
				c.Domain = d
				break
			}
		}
	}
	return nil
}

// Slug makes a concept id from a name: lower case, words joined by "_".
func Slug(name string) string {
	var sb strings.Builder
	for _, w := range splitPhrase(strings.ToLower(name)) {
		if sb.Len() > 0 {
			sb.WriteByte('_')
		}
		sb.WriteString(w)
	}
	return sb.String()
}
