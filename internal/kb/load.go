package kb

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
	"strconv"
	"strings"

	"medserve/internal/clinical"
)

// row is one record of a table, with its columns by header name.
type row struct {
	cols   map[string]int
	fields []string
	line   int
}

// get returns a column's trimmed value; a missing column reads as "".
func (r row) get(name string) string {
	i, ok := r.cols[name]
	if !ok || i >= len(r.fields) {
		return ""
	}
	return strings.TrimSpace(r.fields[i])
}

// tableError carries the file and line of a malformed record.
type tableError struct {
	file string
	line int
	err  error
}

func (e *tableError) Error() string { return fmt.Sprintf("%s:%d: %v", e.file, e.line, e.err) }
func (e *tableError) Unwrap() error { return e.err }

func rowErr(file string, r row, format string, args ...any) error {
	return &tableError{file: file, line: r.line, err: fmt.Errorf(format, args...)}
}

// readTable reads a header-first CSV (sep ',') or TSV (sep '\t') file,
// gzip-compressed when its name ends in .gz, and calls fn per record. The
// header must hold every required column. Lines starting with "#" are
// comments in TSV files.
func readTable(fsys fs.FS, file string, sep rune, required []string, fn func(row) error) error {
	f, err := fsys.Open(file)
	if err != nil {
		return fmt.Errorf("open %s: %w", file, err)
	}
	defer f.Close()
	var rd io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(file, ".gz") {
		gz, err := gzip.NewReader(rd)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		rd = gz
	}
	cr := csv.NewReader(rd)
	cr.Comma = sep
	cr.ReuseRecord = true
	if sep == '\t' {
		cr.LazyQuotes = true // names such as Alzheimer's; TSVs here are unquoted
		cr.Comment = '#'
		cr.FieldsPerRecord = -1
	}
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%s: read header: %w", file, err)
	}
	cols := make(map[string]int, len(header))
	for i, h := range header {
		cols[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, req := range required {
		if _, ok := cols[req]; !ok {
			return fmt.Errorf("%s:1: missing column %q", file, req)
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < len(required) {
			return &tableError{file: file, line: line, err: fmt.Errorf("%d fields, want at least %d", len(rec), len(required))}
		}
		if err := fn(row{cols: cols, fields: rec, line: line}); err != nil {
			return err
		}
	}
}

func readJSON(fsys fs.FS, file string, v any) error {
	f, err := fsys.Open(file)
	if err != nil {
		return fmt.Errorf("open %s: %w", file, err)
	}
	defer f.Close()
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// icdKey is an ICD-10-CM code as the CMS file writes it: upper case, no dot.
func icdKey(code string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(code), ".", ""))
}

// icdDisplay puts the dot back after the category: "I219" → "I21.9".
func icdDisplay(code string) string {
	c := icdKey(code)
	if len(c) > 3 {
		return c[:3] + "." + c[3:]
	}
	return c
}

const fileICD10 = "icd10cm/icd10cm-order-Jan-2021.csv.gz"

func (k *KB) loadICD10(fsys fs.FS) error {
	k.icd10 = make(map[string]string, 96000)
	return readTable(fsys, fileICD10, ',', []string{"code", "long"}, func(r row) error {
		code := icdKey(r.get("code"))
		if len(code) < 3 || len(code) > 7 {
			return rowErr(fileICD10, r, "code %q is not an ICD-10-CM code", r.get("code"))
		}
		k.icd10[code] = r.get("long")
		return nil
	})
}

// Condition is a DDXPlus pathology with what the differential needs.
type Condition struct {
	Key         string          `json:"key"`
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	ICD10       string          `json:"icd10"`
	ICD10Name   string          `json:"icd10_name,omitempty"`
	Severity    int             `json:"severity"` // 1 most severe … 5
	Domain      clinical.Domain `json:"domain"`
	Symptoms    []string        `json:"symptoms"`
	Antecedents []string        `json:"antecedents"`
}

// Evidence is a DDXPlus question and the lexicon concept it asks about.
type Evidence struct {
	Code       string `json:"code"`
	Question   string `json:"question"`
	Antecedent bool   `json:"antecedent"`
	Concept    string `json:"concept,omitempty"`
}

const (
	fileConditions = "ddxplus/release_conditions.json"
	fileEvidences  = "ddxplus/release_evidences.json"
	fileEvMap      = "lexicon/ddxplus-evidences.tsv"
	fileDomains    = "lexicon/domains.tsv"
)

// conditionName cleans DDXPlus's English names: "Possible NSTEMI / STEMI"
// is the condition NSTEMI/STEMI, and "Larygospasm" [sic] is laryngospasm.
func conditionName(eng string) string {
	name := strings.TrimSpace(eng)
	if strings.EqualFold(name, "Larygospasm") {
		return "Laryngospasm"
	}
	return strings.TrimSpace(strings.TrimPrefix(name, "Possible "))
}

func slug(s string) string {
	var b strings.Builder
	lastSep := true
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			lastSep = false
		} else if !lastSep {
			b.WriteByte('_')
			lastSep = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

func (k *KB) loadDDXPlus(fsys fs.FS) error {
	var evs map[string]struct {
		Question   string `json:"question_en"`
		Antecedent bool   `json:"is_antecedent"`
	}
	if err := readJSON(fsys, fileEvidences, &evs); err != nil {
		return err
	}
	for code, e := range evs {
		k.evidences[code] = &Evidence{Code: code, Question: e.Question, Antecedent: e.Antecedent}
		k.addConcept(Concept{ID: "ddxplus:" + code, Type: TypeEvidence, Name: e.Question, Codes: map[string]string{"DDXPLUS": code}})
	}
	// The curated evidence → concept mapping shared with the text engine.
	if err := readTable(fsys, fileEvMap, '\t', []string{"code", "concept", "type", "name"}, func(r row) error {
		ev, ok := k.evidences[r.get("code")]
		if !ok {
			return rowErr(fileEvMap, r, "evidence %q is not in %s", r.get("code"), fileEvidences)
		}
		if c := r.get("concept"); c != "-" && c != "" {
			ev.Concept = c
			k.addConcept(Concept{ID: c, Type: clinical.ConceptType(r.get("type")), Name: r.get("name")})
		}
		return nil
	}); err != nil {
		return err
	}

	if err := k.loadDomains(fsys); err != nil {
		return err
	}

	// Symptoms and antecedents are objects keyed by evidence code.
	var conds map[string]struct {
		Eng         string                     `json:"cond-name-eng"`
		ICD10       string                     `json:"icd10-id"`
		Symptoms    map[string]json.RawMessage `json:"symptoms"`
		Antecedents map[string]json.RawMessage `json:"antecedents"`
		Severity    int                        `json:"severity"`
	}
	if err := readJSON(fsys, fileConditions, &conds); err != nil {
		return err
	}
	keys := make([]string, 0, len(conds))
	for key := range conds {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		c := conds[key]
		if c.Severity < 1 || c.Severity > 5 {
			return fmt.Errorf("%s: condition %q: severity %d outside 1–5", fileConditions, key, c.Severity)
		}
		// "j17, j18" (pneumonia) names two categories; the first is the
		// condition's code, both are kept.
		codes := strings.Split(c.ICD10, ",")
		primary := icdDisplay(codes[0])
		// Prefer a code that names the disease itself over one for
		// "... in diseases classified elsewhere" (pneumonia: J18 over J17).
		for _, alt := range codes[1:] {
			if d := k.icd10[icdKey(primary)]; strings.Contains(strings.ToLower(d), "classified elsewhere") {
				primary = icdDisplay(alt)
			}
		}
		name := conditionName(c.Eng)
		cond := Condition{Key: key, ID: "ddxplus:" + slug(name), Name: name, ICD10: primary, Severity: c.Severity,
			Symptoms: sortedCodes(c.Symptoms), Antecedents: sortedCodes(c.Antecedents)}
		if d, ok := k.icd10[icdKey(primary)]; ok {
			cond.ICD10Name = d
		} else {
			return fmt.Errorf("%s: condition %q: ICD-10 code %s is not in ICD-10-CM", fileConditions, key, primary)
		}
		cond.Domain = k.Domain(primary)
		codeMap := map[string]string{"ICD10CM": primary}
		for _, alt := range codes {
			if a := icdDisplay(alt); a != primary {
				codeMap["ICD10CM_ALT"] = a
			}
		}
		k.addConcept(Concept{ID: cond.ID, Type: TypeCondition, Name: name, Synonyms: strings.Split(name, " / "), Codes: codeMap})
		for _, e := range cond.Symptoms {
			if _, ok := k.evidences[e]; !ok {
				return fmt.Errorf("%s: condition %q: unknown evidence %s", fileConditions, key, e)
			}
			k.addEdge(Edge{From: cond.ID, To: "ddxplus:" + e, Relation: AssociatedWith, Source: fileConditions})
		}
		for _, e := range cond.Antecedents {
			if _, ok := k.evidences[e]; !ok {
				return fmt.Errorf("%s: condition %q: unknown evidence %s", fileConditions, key, e)
			}
			k.addEdge(Edge{From: "ddxplus:" + e, To: cond.ID, Relation: RiskFactor, Source: fileConditions})
		}
		k.conditions = append(k.conditions, cond)
	}
	return nil
}

func sortedCodes(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for code := range m {
		out = append(out, code)
	}
	sort.Strings(out)
	return out
}

func (k *KB) loadDomains(fsys fs.FS) error {
	k.diff.domainByPrefix = map[string]clinical.Domain{}
	k.diff.domainByConcept = map[string]clinical.Domain{}
	return readTable(fsys, fileDomains, '\t', []string{"kind", "key", "domain"}, func(r row) error {
		d := clinical.Domain(r.get("domain"))
		switch d {
		case clinical.Cardiology, clinical.Neurology, clinical.Oncology, clinical.Emergency, clinical.General:
		default:
			return rowErr(fileDomains, r, "unknown domain %q", d)
		}
		switch r.get("kind") {
		case "icd10":
			k.diff.domainByPrefix[icdKey(r.get("key"))] = d
		case "concept":
			k.diff.domainByConcept[r.get("key")] = d
		default:
			return rowErr(fileDomains, r, "unknown kind %q", r.get("kind"))
		}
		return nil
	})
}

const (
	filePharmacoInd = "pharmacotherapydb/indications.tsv"
	fileMedline     = "medline-cooccurrence/disease-disease-cooccurrence.tsv"
)

func (k *KB) loadPharmacotherapy(fsys fs.FS) error {
	return readTable(fsys, filePharmacoInd, '\t', []string{"doid_id", "drugbank_id", "disease", "drug", "category"}, func(r row) error {
		drug := normalizeGeneric(r.get("drug"))
		if g, ok := k.brands[drug]; ok {
			drug = g
		}
		disease := r.get("doid_id")
		if drug == "" || !strings.HasPrefix(disease, "DOID:") {
			return rowErr(filePharmacoInd, r, "drug %q or disease %q malformed", r.get("drug"), disease)
		}
		k.addConcept(Concept{ID: "drug:" + drug, Type: clinical.Drug, Name: drug, Codes: map[string]string{"DRUGBANK": r.get("drugbank_id")}})
		k.addConcept(Concept{ID: disease, Type: clinical.Disease, Name: r.get("disease"), Codes: map[string]string{"DOID": disease}})
		var rel Relation
		var attr string
		switch r.get("category") {
		case "DM":
			rel, attr = Treats, "disease-modifying"
		case "SYM":
			rel, attr = Treats, "symptomatic"
		case "NOT":
			rel = NotIndicated
		default:
			return rowErr(filePharmacoInd, r, "category %q, want DM, SYM or NOT", r.get("category"))
		}
		k.addEdge(Edge{From: "drug:" + drug, To: disease, Relation: rel, Source: filePharmacoInd, Attr: attr})
		return nil
	})
}

// loadMedline keeps Hetionet's disease–disease edges: co-occurrence in
// MEDLINE beyond chance (p_fisher < 0.005, enrichment > 1). The file lists
// each pair in both directions; one edge per unordered pair is kept.
func (k *KB) loadMedline(fsys fs.FS) error {
	seen := map[[2]string]bool{}
	return readTable(fsys, fileMedline, '\t', []string{"doid_code_0", "doid_name_0", "doid_code_1", "doid_name_1", "enrichment", "p_fisher"}, func(r row) error {
		p, err1 := strconv.ParseFloat(r.get("p_fisher"), 64)
		enr, err2 := strconv.ParseFloat(r.get("enrichment"), 64)
		if err1 != nil || err2 != nil {
			return rowErr(fileMedline, r, "p_fisher %q / enrichment %q not numbers", r.get("p_fisher"), r.get("enrichment"))
		}
		if !(p < 0.005 && enr > 1) {
			return nil
		}
		a, b := r.get("doid_code_0"), r.get("doid_code_1")
		key := [2]string{min(a, b), max(a, b)}
		if seen[key] {
			return nil
		}
		seen[key] = true
		k.addConcept(Concept{ID: a, Type: clinical.Disease, Name: r.get("doid_name_0"), Codes: map[string]string{"DOID": a}})
		k.addConcept(Concept{ID: b, Type: clinical.Disease, Name: r.get("doid_name_1"), Codes: map[string]string{"DOID": b}})
		k.addEdge(Edge{From: key[0], To: key[1], Relation: Resembles, Source: fileMedline, Attr: strconv.FormatFloat(enr, 'f', 2, 64)})
		return nil
	})
}
