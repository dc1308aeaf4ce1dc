package triage

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"medserve/internal/clinical"
	"medserve/internal/model"
	"medserve/internal/text"
)

// FeatureSpec describes the feature space, so that a saved model can check
// it is served with the features it was trained on.
type FeatureSpec struct {
	Version   int      `json:"version"`
	HashBits  int      `json:"hash_bits"`  // hashed text and concept features: 2^HashBits
	CharGrams []int    `json:"char_grams"` // character n-gram lengths
	Dense     []string `json:"dense"`      // named features after the hashed block, in order
}

// Dim is the size of the feature space.
func (s FeatureSpec) Dim() int { return 1<<s.HashBits + len(s.Dense) }

// denseNames are the named features. The SpO2 value and a missing-SpO2
// indicator are deliberately absent: in the KTAS data SpO2 is missing for
// exactly one of the two sites, so either would let a model learn the
// hospital instead of the patient. SpO2 enters only as danger bands that
// are 0 when it was not measured.
var denseNames = []string{
	"bias",
	"age", "age_missing", "age_lt18", "age_ge65", "age_ge80",
	"sex_female", "sex_male",
	"arrival_walk_in", "arrival_ambulance", "arrival_private_vehicle", "arrival_other", "arrival_missing",
	"injury", "injury_missing",
	"avpu_alert", "avpu_verbal", "avpu_pain", "avpu_unresponsive", "avpu_missing",
	"gcs_deficit", "gcs_missing",
	"pain", "pain_missing", "pain_ge7",
	"sbp", "sbp_missing", "sbp_lt90", "sbp_lt100",
	"dbp", "dbp_missing",
	"hr", "hr_missing", "hr_gt100", "hr_gt120", "hr_lt50",
	"rr", "rr_missing", "rr_gt20", "rr_gt24",
	"temp", "temp_missing", "temp_ge38", "temp_ge39", "temp_lt35",
	"spo2_lt90", "spo2_lt92", "spo2_lt95",
	"news2", "news2_ge5", "news2_ge7", "news2_red",
	"qsofa", "qsofa_ge2",
	"shock_index", "shock_index_ge1",
	"danger_hr", "danger_rr", "danger_spo2",
	"floor_1", "floor_2", "floor_3",
	"text_missing", "affirmed_findings", "negated_findings",
}

// Featurizer turns a query into model features. It is the one code path
// for training, evaluation and serving; it is immutable and safe for
// concurrent use.
type Featurizer struct {
	eng   *text.Engine
	rules *Rules
	spec  FeatureSpec
	dense map[string]int32
}

// NewFeaturizer builds a featurizer over the text engine and safety rules.
func NewFeaturizer(eng *text.Engine, rules *Rules) *Featurizer {
	spec := FeatureSpec{Version: 1, HashBits: 14, CharGrams: []int{3, 4}, Dense: slices.Clone(denseNames)}
	f := &Featurizer{eng: eng, rules: rules, spec: spec, dense: map[string]int32{}}
	for i, n := range spec.Dense {
		f.dense[n] = int32(1<<spec.HashBits + i)
	}
	return f
}

// Spec describes the feature space.
func (f *Featurizer) Spec() FeatureSpec { return f.spec }

// Rules is the safety floor the featurizer applies.
func (f *Featurizer) Rules() *Rules { return f.rules }

// Prepared is everything derived from one query.
type Prepared struct {
	Row      model.Row
	Analysis text.Analysis
	// Query is the query as the features saw it: structured vitals and age
	// completed from the text. Callers read the merged values from here
	// rather than merging again.
	Query  clinical.Query
	Scores Scores
	Floor  Floor
}

// Prepare analyses the text, merges vitals, computes scores and the safety
// floor, and builds the feature row.
func (f *Featurizer) Prepare(q clinical.Query) Prepared {
	var p Prepared
	p.Analysis = f.eng.Analyze(q.Text, text.Options{})
	q.Vitals = mergeVitals(q.Vitals, p.Analysis.Vitals)
	if q.Age == nil {
		for _, qt := range p.Analysis.Quantities {
			if qt.Kind == clinical.KindAge {
				age := qt.Value
				q.Age = &age
				break
			}
		}
	}
	p.Query = q
	p.Scores = ComputeScores(q)
	affirmed := map[string]bool{}
	for _, fd := range p.Analysis.Findings {
		if fd.Concept != "" && fd.Affirmed() {
			affirmed[fd.Concept] = true
		}
	}
	p.Floor = f.rules.Apply(Input{Query: q, Scores: p.Scores, Affirmed: affirmed})
	p.Row = f.row(q, &p, nil)
	return p
}

// FeatureNames names the features of a prepared query's row, for
// explanations: hashed features by what was hashed ("w:chest", "con:fever"),
// with colliding names joined.
func (f *Featurizer) FeatureNames(p Prepared) map[int32]string {
	names := map[int32]string{}
	f.row(p.Query, &p, names)
	return names
}

// mergeVitals keeps every structured value and fills gaps from the text.
func mergeVitals(structured, fromText clinical.Vitals) clinical.Vitals {
	pick := func(a, b *float64) *float64 {
		if a != nil {
			return a
		}
		return b
	}
	return clinical.Vitals{
		SBP: pick(structured.SBP, fromText.SBP), DBP: pick(structured.DBP, fromText.DBP),
		HR: pick(structured.HR, fromText.HR), RR: pick(structured.RR, fromText.RR),
		TempC: pick(structured.TempC, fromText.TempC), SpO2: pick(structured.SpO2, fromText.SpO2),
		GCS: pick(structured.GCS, fromText.GCS), Pain: pick(structured.Pain, fromText.Pain),
	}
}

type feat struct {
	idx int32
	val float32
}

func (f *Featurizer) row(q clinical.Query, p *Prepared, names map[int32]string) model.Row {
	feats := make([]feat, 0, 96)
	mask := uint32(1)<<f.spec.HashBits - 1
	name := func(idx int32, n string) {
		if names == nil {
			return
		}
		if cur, ok := names[idx]; ok && cur != n {
			names[idx] = cur + " | " + n
		} else if !ok {
			names[idx] = n
		}
	}
	hashed := func(prefix, s string) {
		idx := int32(fnv(prefix, s) & mask)
		feats = append(feats, feat{idx, 1})
		name(idx, prefix+s)
	}
	set := func(n string, v float64) {
		if v != 0 {
			feats = append(feats, feat{f.dense[n], float32(v)})
			name(f.dense[n], n)
		}
	}
	flag := func(name string, on bool) {
		if on {
			set(name, 1)
		}
	}

	// Text: word unigrams and bigrams, character n-grams of each word.
	words := complaintWords(q.Text)
	for i, w := range words {
		hashed("w:", w)
		if i > 0 {
			hashed("b:", words[i-1]+" "+w)
		}
		padded := "<" + w + ">"
		for _, n := range f.spec.CharGrams {
			for j := 0; j+n <= len(padded); j++ {
				hashed("c:", padded[j:j+n])
			}
		}
	}
	// Concepts: affirmed and negated are separate signals.
	var aff, neg int
	for _, fd := range p.Analysis.Findings {
		switch {
		case fd.Concept == "":
		case fd.Negated:
			neg++
			hashed("neg:", fd.Concept)
		case fd.Affirmed():
			aff++
			hashed("con:", fd.Concept)
			hashed("type:", string(fd.Type))
		default:
			hashed("ctx:", fd.Concept)
		}
	}
	set("bias", 1)
	flag("text_missing", len(words) == 0)
	set("affirmed_findings", min(float64(aff), 5)/5)
	set("negated_findings", min(float64(neg), 5)/5)

	if q.Age != nil {
		a := *q.Age
		set("age", a/100)
		flag("age_lt18", a < 18)
		flag("age_ge65", a >= 65)
		flag("age_ge80", a >= 80)
	} else {
		set("age_missing", 1)
	}
	flag("sex_female", q.Sex == clinical.SexFemale)
	flag("sex_male", q.Sex == clinical.SexMale)
	switch q.Arrival {
	case clinical.ArrivalWalkIn:
		set("arrival_walk_in", 1)
	case clinical.ArrivalAmbulance:
		set("arrival_ambulance", 1)
	case clinical.ArrivalPrivateVehicle:
		set("arrival_private_vehicle", 1)
	case clinical.ArrivalOther:
		set("arrival_other", 1)
	default:
		set("arrival_missing", 1)
	}
	if q.Injury != nil {
		flag("injury", *q.Injury)
	} else {
		set("injury_missing", 1)
	}
	switch q.AVPU {
	case clinical.AVPUAlert:
		set("avpu_alert", 1)
	case clinical.AVPUVerbal:
		set("avpu_verbal", 1)
	case clinical.AVPUPain:
		set("avpu_pain", 1)
	case clinical.AVPUUnresponsive:
		set("avpu_unresponsive", 1)
	default:
		set("avpu_missing", 1)
	}
	v := q.Vitals
	numeric := func(name string, p *float64, center, scale float64) bool {
		if p == nil {
			set(name+"_missing", 1)
			return false
		}
		set(name, clamp((*p-center)/scale, -5, 5))
		return true
	}
	if v.GCS != nil {
		set("gcs_deficit", (15-*v.GCS)/12)
	} else {
		set("gcs_missing", 1)
	}
	if numeric("pain", v.Pain, 0, 10) {
		flag("pain_ge7", *v.Pain >= 7)
	}
	if numeric("sbp", v.SBP, 120, 30) {
		flag("sbp_lt90", *v.SBP < 90)
		flag("sbp_lt100", *v.SBP < 100)
	}
	numeric("dbp", v.DBP, 75, 20)
	if numeric("hr", v.HR, 80, 20) {
		flag("hr_gt100", *v.HR > 100)
		flag("hr_gt120", *v.HR > 120)
		flag("hr_lt50", *v.HR < 50)
	}
	if numeric("rr", v.RR, 18, 5) {
		flag("rr_gt20", *v.RR > 20)
		flag("rr_gt24", *v.RR > 24)
	}
	if numeric("temp", v.TempC, 37, 1) {
		flag("temp_ge38", *v.TempC >= 38)
		flag("temp_ge39", *v.TempC >= 39)
		flag("temp_lt35", *v.TempC < 35)
	}
	if v.SpO2 != nil {
		flag("spo2_lt90", *v.SpO2 < 90)
		flag("spo2_lt92", *v.SpO2 < 92)
		flag("spo2_lt95", *v.SpO2 < 95)
	}
	s := p.Scores
	set("news2", float64(s.NEWS2)/10)
	flag("news2_ge5", s.NEWS2 >= 5)
	flag("news2_ge7", s.NEWS2 >= 7)
	flag("news2_red", s.NEWS2Red)
	set("qsofa", float64(s.QSOFA)/3)
	flag("qsofa_ge2", s.QSOFA >= 2)
	if s.ShockIndex > 0 {
		set("shock_index", clamp(s.ShockIndex-0.7, -2, 3))
		flag("shock_index_ge1", s.ShockIndex >= 1)
	}
	flag("danger_hr", s.DangerHR)
	flag("danger_rr", s.DangerRR)
	flag("danger_spo2", s.DangerSpO2)
	flag("floor_1", p.Floor.Acuity <= 1)
	flag("floor_2", p.Floor.Acuity <= 2)
	flag("floor_3", p.Floor.Acuity <= 3)

	// Sorted, with hash collisions summed into one entry.
	slices.SortFunc(feats, func(a, b feat) int { return int(a.idx - b.idx) })
	row := model.Row{Idx: make([]int32, 0, len(feats)), Val: make([]float32, 0, len(feats))}
	for _, ft := range feats {
		if n := len(row.Idx); n > 0 && row.Idx[n-1] == ft.idx {
			row.Val[n-1] += ft.val
			continue
		}
		row.Idx = append(row.Idx, ft.idx)
		row.Val = append(row.Val, ft.val)
	}
	return row
}

func clamp(x, lo, hi float64) float64 { return max(lo, min(hi, x)) }

// complaintWords lower-cases the text and splits it into words of letters
// and digits; at most 64 words count, since a complaint is short and a note
// adds little to the hashed features beyond its start.
func complaintWords(s string) []string {
	var words []string
	start := -1
	for i := 0; i <= len(s) && len(words) < 64; {
		var r rune
		size := 1
		if i < len(s) {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		word := i < len(s) && r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if word && start < 0 {
			start = i
		}
		if !word && start >= 0 {
			words = append(words, strings.ToLower(s[start:i]))
			start = -1
		}
		i += size
	}
	return words
}

// fnv is 32-bit FNV-1a over prefix and s, without allocating.
func fnv(prefix, s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(prefix); i++ {
		h ^= uint32(prefix[i])
		h *= 16777619
	}
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
