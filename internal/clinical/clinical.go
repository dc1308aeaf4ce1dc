// Package clinical holds medserve's domain vocabulary: plain types shared by
// the text engine, the triage models, the pipeline and the server. It depends
// on nothing else in the project.
package clinical

// ConceptType is the kind of thing a finding names.
type ConceptType string

// Concept types produced by the text engine. TARGET marks an occurrence of a
// phrase the caller asked for, scored with the same context flags.
const (
	Symptom   ConceptType = "SYMPTOM"
	Disease   ConceptType = "DISEASE"
	Drug      ConceptType = "DRUG"
	Anatomy   ConceptType = "ANATOMY"
	Procedure ConceptType = "PROCEDURE"
	// Risk is a behaviour or exposure (smoking, alcohol, travel) that a
	// differential weighs but that is not itself a symptom or disease.
	Risk   ConceptType = "RISK"
	Target ConceptType = "TARGET"
)

// Valid reports whether t is one of the known concept types.
func (t ConceptType) Valid() bool {
	switch t {
	case Symptom, Disease, Drug, Anatomy, Procedure, Risk, Target:
		return true
	}
	return false
}

// Finding is one concept or target occurrence in a text with its ConText
// flags. Span is a half-open byte range [start, end) into the analysed text.
type Finding struct {
	Text         string      `json:"text"`
	Type         ConceptType `json:"type"`
	Code         string      `json:"code"`
	Concept      string      `json:"concept,omitempty"`
	Name         string      `json:"name,omitempty"`
	Target       string      `json:"target,omitempty"`
	Negated      bool        `json:"negated"`
	Possible     bool        `json:"possible"`
	Historical   bool        `json:"historical"`
	Hypothetical bool        `json:"hypothetical"`
	Family       bool        `json:"family"`
	Span         [2]int      `json:"span"`
}

// Affirmed reports whether the finding is asserted as present now in the
// patient: not negated, uncertain, historical, hypothetical or about someone
// else. Only affirmed findings may raise urgency.
func (f Finding) Affirmed() bool {
	return !f.Negated && !f.Possible && !f.Historical && !f.Hypothetical && !f.Family
}

// Vitals are vital signs in fixed units (mmHg, beats/min, breaths/min, °C,
// %, GCS points 3–15, pain 0–10). A nil field was not measured or not found.
type Vitals struct {
	SBP   *float64 `json:"sbp,omitempty"`
	DBP   *float64 `json:"dbp,omitempty"`
	HR    *float64 `json:"hr,omitempty"`
	RR    *float64 `json:"rr,omitempty"`
	TempC *float64 `json:"temp_c,omitempty"`
	SpO2  *float64 `json:"spo2,omitempty"`
	GCS   *float64 `json:"gcs,omitempty"`
	Pain  *float64 `json:"pain,omitempty"`
}

// QuantityKind classifies a quantity found in text.
type QuantityKind string

// Quantity kinds.
const (
	KindDose     QuantityKind = "dose"
	KindDuration QuantityKind = "duration"
	KindAge      QuantityKind = "age"
	KindOther    QuantityKind = "other"
)

// Quantity is a number with a unit found in text, normalised: doses to mg,
// mL, U or mEq; durations to days ("d"); ages to years ("a").
type Quantity struct {
	Text  string       `json:"text"`
	Value float64      `json:"value"`
	Unit  string       `json:"unit"`
	Kind  QuantityKind `json:"kind"`
	Span  [2]int       `json:"span"`
}

// Implausible is a value found in text that is outside physiological limits
// and was therefore not accepted as a vital sign.
type Implausible struct {
	Field  string  `json:"field"`
	Value  float64 `json:"value"`
	Reason string  `json:"reason"`
}

// Domain is the medical domain a query is routed to.
type Domain string

// Medical domains, as the seed's domain routing and accuracy targets name them.
const (
	Cardiology Domain = "cardiology"
	Neurology  Domain = "neurology"
	Oncology   Domain = "oncology"
	Emergency  Domain = "emergency"
	General    Domain = "general"
)
