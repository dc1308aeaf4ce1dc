package triage

import (
	"math"
	"slices"
	"sort"
	"strconv"

	"medserve/internal/clinical"
	"medserve/internal/model"
)

// ModelRef names the model version behind an answer.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Family  string `json:"family,omitempty"`
}

// FloorReport is the safety floor as the response shows it.
type FloorReport struct {
	Acuity  int      `json:"acuity"`
	Reasons []string `json:"reasons"`
	Rules   []string `json:"rules"`
}

// Assessment is the triage answer for one query.
type Assessment struct {
	Acuity         int                `json:"acuity"`
	Urgency        clinical.Urgency   `json:"urgency"`
	Probabilities  map[string]float64 `json:"probabilities"`
	SafetyFloor    FloorReport        `json:"safety_floor"`
	Findings       []clinical.Finding `json:"findings"`
	Vitals         clinical.Vitals    `json:"vitals"`
	Scores         Scores             `json:"scores"`
	Domain         clinical.Domain    `json:"domain"`
	ReviewRequired bool               `json:"review_required"`
	ReviewReasons  []string           `json:"review_reasons"`
	Model          ModelRef           `json:"model"`
	// ModelAcuity is the model's own level before the floor and the nurse.
	ModelAcuity int `json:"model_acuity"`
}

// ReasonBelowThresholds is the review reason every answer of a model that
// failed the validation gate carries (SPEC section 6).
const ReasonBelowThresholds = "model below validation thresholds"

// Assessor answers triage queries with one model version.
type Assessor struct {
	feat *Featurizer
	art  *Artifact
}

// NewAssessor serves a loaded model version with the featurizer it was
// trained with.
func NewAssessor(f *Featurizer, art *Artifact) *Assessor { return &Assessor{feat: f, art: art} }

// Artifact is the model version the assessor serves.
func (a *Assessor) Artifact() *Artifact { return a.art }

// Assess triages one query. It is safe for concurrent use.
func (a *Assessor) Assess(q clinical.Query) Assessment {
	p := a.feat.Prepare(q)
	probs := a.art.Model.Predict(p.Row, make([]float64, 5))
	return a.assemble(q, p, probs)
}

// Prepare and Finish split Assess so that a batcher can predict many rows
// at once between them.
func (a *Assessor) Prepare(q clinical.Query) Prepared { return a.feat.Prepare(q) }

// Finish turns a prepared query and its probabilities into the answer.
func (a *Assessor) Finish(q clinical.Query, p Prepared, probs []float64) Assessment {
	return a.assemble(q, p, probs)
}

func (a *Assessor) assemble(q clinical.Query, p Prepared, probs []float64) Assessment {
	m := a.art.Manifest
	d := m.Policy.Decide(probs, p.Floor, q.NurseAcuity)
	out := Assessment{
		Acuity:         d.Acuity,
		Urgency:        clinical.UrgencyOf(d.Acuity),
		Probabilities:  map[string]float64{},
		SafetyFloor:    FloorReport{Acuity: p.Floor.Acuity, Reasons: p.Floor.Reasons, Rules: p.Floor.Rules},
		Findings:       p.Analysis.Findings,
		Vitals:         p.Query.Vitals,
		Scores:         p.Scores,
		Domain:         p.Analysis.Domain,
		ReviewRequired: d.Review,
		ReviewReasons:  slices.Clone(d.Reasons),
		Model:          ModelRef{Name: m.Name, Version: m.Version, Family: m.Family},
		ModelAcuity:    d.ModelAcuity,
	}
	if out.Findings == nil {
		out.Findings = []clinical.Finding{}
	}
	if out.ReviewReasons == nil {
		out.ReviewReasons = []string{}
	}
	for k, v := range probs {
		out.Probabilities[strconv.Itoa(k+1)] = float64(int(v*1000+0.5)) / 1000
	}
	if m.Gate == nil || !m.Gate.Pass {
		out.ReviewRequired = true
		out.ReviewReasons = append(out.ReviewReasons, ReasonBelowThresholds)
	}
	return out
}

// ReasonRulesOnly is added when the model could not answer.
const ReasonRulesOnly = "rules-only answer: the model did not answer"

// RulesOnly is the answer without the model: the safety floor, the nurse's
// level when given, and otherwise acuity 3 — a conservative default that
// keeps an unassessed patient on the emergency side until someone looks.
func (a *Assessor) RulesOnly(q clinical.Query, p Prepared) Assessment {
	acuity := 3
	if q.NurseAcuity >= 1 && q.NurseAcuity <= 5 {
		acuity = q.NurseAcuity
	}
	acuity = min(acuity, p.Floor.Acuity)
	m := a.art.Manifest
	out := Assessment{
		Acuity: acuity, Urgency: clinical.UrgencyOf(acuity), Probabilities: map[string]float64{},
		SafetyFloor:    FloorReport{Acuity: p.Floor.Acuity, Reasons: p.Floor.Reasons, Rules: p.Floor.Rules},
		Findings:       p.Analysis.Findings,
		Vitals:         p.Query.Vitals,
		Scores:         p.Scores,
		Domain:         p.Analysis.Domain,
		ReviewRequired: true,
		ReviewReasons:  []string{ReasonRulesOnly},
		Model:          ModelRef{Name: m.Name, Version: m.Version, Family: m.Family},
	}
	if out.Findings == nil {
		out.Findings = []clinical.Finding{}
	}
	return out
}

// Driver is one feature's contribution to the answer: how much removing it
// would lower the model's probability of an emergency (acuity 1–3).
// Positive weights push towards urgency.
type Driver struct {
	Feature string  `json:"feature"`
	Weight  float64 `json:"weight"`
}

// maxDrivers bounds an explanation.
const maxDrivers = 8

// Drivers explains the model's answer by occlusion: each present feature
// is removed in turn and the change in P(acuity ≤ 3) is its weight. It
// works for every model family and costs one prediction per feature, so
// it runs only when a caller asks (options.explain).
func (a *Assessor) Drivers(p Prepared) []Driver {
	m := a.art.Model
	out := make([]float64, m.Classes())
	emergency := func(row model.Row) float64 {
		pr := m.Predict(row, out)
		return pr[0] + pr[1] + pr[2]
	}
	base := emergency(p.Row)
	names := a.feat.FeatureNames(p)
	row := model.Row{Idx: make([]int32, 0, len(p.Row.Idx)), Val: make([]float32, 0, len(p.Row.Val))}
	var ds []Driver
	for i, idx := range p.Row.Idx {
		row.Idx = append(append(row.Idx[:0], p.Row.Idx[:i]...), p.Row.Idx[i+1:]...)
		row.Val = append(append(row.Val[:0], p.Row.Val[:i]...), p.Row.Val[i+1:]...)
		w := base - emergency(row)
		if n := names[idx]; n != "" && n != "bias" && w != 0 {
			ds = append(ds, Driver{Feature: n, Weight: float64(int(w*10000)) / 10000})
		}
	}
	sort.Slice(ds, func(i, j int) bool { return math.Abs(ds[i].Weight) > math.Abs(ds[j].Weight) })
	if len(ds) > maxDrivers {
		ds = ds[:maxDrivers]
	}
	return ds
}
