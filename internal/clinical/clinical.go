// Package clinical holds medserve's domain vocabulary: plain types shared by
// the text engine, the triage models, the pipeline and the server. It depends
// on nothing else in the project.
package clinical

import "fmt"

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

// Sex values accepted by the API.
const (
	SexFemale  = "female"
	SexMale    = "male"
	SexOther   = "other"
	SexUnknown = "unknown"
)

// AVPU levels of consciousness.
const (
	AVPUAlert        = "alert"
	AVPUVerbal       = "verbal"
	AVPUPain         = "pain"
	AVPUUnresponsive = "unresponsive"
)

// Arrival modes.
const (
	ArrivalWalkIn         = "walk-in"
	ArrivalAmbulance      = "ambulance"
	ArrivalPrivateVehicle = "private-vehicle"
	ArrivalOther          = "other"
)

// Query is one patient presentation as the triage features see it: the
// same type serves training rows, evaluation rows and live requests.
type Query struct {
	Text    string   // chief complaint or short note
	Age     *float64 // years
	Sex     string   // female, male, other, unknown or ""
	Vitals  Vitals
	AVPU    string // alert, verbal, pain, unresponsive or ""
	Arrival string // walk-in, ambulance, private-vehicle, other or ""
	Injury  *bool
	// NurseAcuity is the triage nurse's proposed level (1–5), 0 when absent.
	NurseAcuity int
}

// Urgency is the seed's four-level urgency.
type Urgency string

// Urgency levels.
const (
	Critical Urgency = "critical"
	High     Urgency = "high"
	Medium   Urgency = "medium"
	Low      Urgency = "low"
)

// UrgencyOf maps acuity to urgency: 1 critical, 2 high, 3 medium, 4–5 low.
func UrgencyOf(acuity int) Urgency {
	switch acuity {
	case 1:
		return Critical
	case 2:
		return High
	case 3:
		return Medium
	}
	return Low
}

// VitalLimits returns the physiological limits of a vital sign outside which
// a value is rejected (SPEC section 4); GCS and pain by their scales.
func VitalLimits(field string) (lo, hi float64) {
	switch field {
	case "sbp", "hr":
		return 0, 300
	case "dbp":
		return 0, 200
	case "rr":
		return 0, 80
	case "temp_c":
		return 25, 45
	case "spo2":
		return 0, 100
	case "gcs":
		return 3, 15
	case "pain":
		return 0, 10
	}
	return 0, 0
}

// Problems lists the vital signs outside physiological limits, by field.
func (v Vitals) Problems() map[string]string {
	out := map[string]string{}
	check := func(name string, p *float64) {
		if p == nil {
			return
		}
		lo, hi := VitalLimits(name)
		if *p != *p || *p < lo || *p > hi {
			out[name] = fmt.Sprintf("%s %g outside %g–%g", name, *p, lo, hi)
		}
	}
	check("sbp", v.SBP)
	check("dbp", v.DBP)
	check("hr", v.HR)
	check("rr", v.RR)
	check("temp_c", v.TempC)
	check("spo2", v.SpO2)
	check("gcs", v.GCS)
	check("pain", v.Pain)
	return out
}
