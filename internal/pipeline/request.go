// Package pipeline answers one clinical query: text analysis, scores and
// safety floor, cache, the triage model (through the batcher), the
// differential and drug interactions under one deadline, and synthesis.
package pipeline

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"medserve/internal/clinical"
)

// MaxQueryBytes bounds the free text of one query (SPEC section 8: 1 MiB
// per query body).
const MaxQueryBytes = 1 << 20

// Request is the POST /api/v1/inference body (SPEC section 4).
type Request struct {
	Query   string  `json:"query"`
	Patient Patient `json:"patient"`
	Vitals  Vitals  `json:"vitals"`
	Context Context `json:"context"`
	// Medications are checked for interactions with each other.
	Medications []string `json:"medications,omitempty"`
	Options     Options  `json:"options"`
}

// Patient identifies the patient; the id is PHI and never leaves the
// request except as a keyed pseudonym.
type Patient struct {
	ID  string   `json:"id,omitempty"`
	Age *float64 `json:"age,omitempty"`
	Sex string   `json:"sex,omitempty"`
}

// Vitals are the structured vital signs, with AVPU.
type Vitals struct {
	clinical.Vitals
	AVPU string `json:"avpu,omitempty"`
}

// Context carries the encounter's context.
type Context struct {
	ArrivalMode   string `json:"arrival_mode,omitempty"`
	Injury        *bool  `json:"injury,omitempty"`
	MedicalDomain string `json:"medical_domain,omitempty"`
	NurseAcuity   int    `json:"nurse_acuity,omitempty"`
}

// Options adjust the answer.
type Options struct {
	Explain  bool  `json:"explain,omitempty"`
	UseCache *bool `json:"use_cache,omitempty"`
}

// Problems validates the request: field → what is wrong, empty when valid.
func (r *Request) Problems() map[string]string {
	p := map[string]string{}
	if strings.TrimSpace(r.Query) == "" {
		p["query"] = "must not be empty"
	} else if len(r.Query) > MaxQueryBytes {
		p["query"] = "longer than 1 MiB"
	}
	switch r.Patient.Sex {
	case "", clinical.SexFemale, clinical.SexMale, clinical.SexOther, clinical.SexUnknown:
	default:
		p["patient.sex"] = fmt.Sprintf("%q is not female, male, other or unknown", r.Patient.Sex)
	}
	if a := r.Patient.Age; a != nil && (math.IsNaN(*a) || *a < 0 || *a > 125) {
		p["patient.age"] = fmt.Sprintf("%g outside 0–125", *a)
	}
	if len(r.Patient.ID) > 256 {
		p["patient.id"] = "longer than 256 bytes"
	}
	switch r.Vitals.AVPU {
	case "", clinical.AVPUAlert, clinical.AVPUVerbal, clinical.AVPUPain, clinical.AVPUUnresponsive:
	default:
		p["vitals.avpu"] = fmt.Sprintf("%q is not alert, verbal, pain or unresponsive", r.Vitals.AVPU)
	}
	for f, msg := range r.Vitals.Vitals.Problems() {
		p["vitals."+f] = msg
	}
	switch r.Context.ArrivalMode {
	case "", clinical.ArrivalWalkIn, clinical.ArrivalAmbulance, clinical.ArrivalPrivateVehicle, clinical.ArrivalOther:
	default:
		p["context.arrival_mode"] = fmt.Sprintf("%q is not walk-in, ambulance, private-vehicle or other", r.Context.ArrivalMode)
	}
	switch d := r.Context.MedicalDomain; d {
	case "", string(clinical.Cardiology), string(clinical.Neurology), string(clinical.Oncology), string(clinical.Emergency), string(clinical.General):
	default:
		p["context.medical_domain"] = fmt.Sprintf("%q is not cardiology, neurology, oncology, emergency or general", d)
	}
	if n := r.Context.NurseAcuity; n != 0 && (n < 1 || n > 5) {
		p["context.nurse_acuity"] = fmt.Sprintf("%d outside 1–5", n)
	}
	if len(r.Medications) > 1000 {
		p["medications"] = "more than 1,000 entries"
	}
	return p
}

// ProblemList renders Problems as sorted "field: message" lines.
func ProblemList(p map[string]string) []string {
	out := make([]string, 0, len(p))
	for f, m := range p {
		out = append(out, f+": "+m)
	}
	sort.Strings(out)
	return out
}

// Query is the triage view of the request.
func (r *Request) ClinicalQuery() clinical.Query {
	return clinical.Query{Text: r.Query, Age: r.Patient.Age, Sex: r.Patient.Sex, Vitals: r.Vitals.Vitals, AVPU: r.Vitals.AVPU,
		Arrival: r.Context.ArrivalMode, Injury: r.Context.Injury, NurseAcuity: r.Context.NurseAcuity}
}
