// Package monitor knows how accurate and how safe medserve is in
// production (SPEC section 11): clinical figures from clinicians' feedback,
// runtime figures every replica counts for itself and writes to the store,
// the compliance reconciliation and input drift. The alert engine (package
// alert) acts on what it computes.
package monitor

import (
	"encoding/json"
	"math"

	"medserve/internal/store"
	"medserve/internal/validate"
)

// Rate is a share with the counts behind it: a figure with 3 samples and
// one with 3,000 must not look alike.
type Rate struct {
	Num int `json:"num"`
	Den int `json:"den"`
}

// Value is Num/Den; ok is false when there is nothing to divide.
func (r Rate) Value() (v float64, ok bool) {
	if r.Den == 0 {
		return 0, false
	}
	return float64(r.Num) / float64(r.Den), true
}

func (r *Rate) add(hit bool) {
	r.Den++
	if hit {
		r.Num++
	}
}

// MarshalJSON writes {"value": v|null, "num": n, "den": d}.
func (r Rate) MarshalJSON() ([]byte, error) {
	type counts Rate
	var v *float64
	if x, ok := r.Value(); ok {
		v = &x
	}
	return json.Marshal(struct {
		Value *float64 `json:"value"`
		counts
	}{v, counts(r)})
}

// AllDomains labels figures over every domain.
const AllDomains = "all"

// Key names the figures of one model version in one domain.
type Key struct {
	Version string `json:"version"`
	Domain  string `json:"domain"`
}

// Clinical are the live clinical figures of one version and domain
// (definitions as SPEC section 6: positive = true acuity 1–3).
type Clinical struct {
	Samples       int  `json:"samples"`        // feedback rows
	Accuracy      Rate `json:"accuracy"`       // binary (emergency = 1–3), as validated
	ExactAccuracy Rate `json:"exact_accuracy"` // same level of five
	Sensitivity   Rate `json:"sensitivity"`
	Specificity   Rate `json:"specificity"`
	FNR           Rate `json:"false_negative_rate"`
	UnderTriage   Rate `json:"undertriage_rate"` // answered less urgent than the truth
	// EscalationAccuracy: among true acuity 1–2, the share answered 1–2.
	EscalationAccuracy Rate `json:"escalation_accuracy"`
	// InteractionDetection: among confirmed interactions, the share the
	// answer alerted on.
	InteractionDetection Rate `json:"interaction_detection"`
	// CriticalMiss: among answers with an affirmed red-flag finding, the
	// share answered acuity ≥ 3. Counted on every answer (no feedback
	// needed), from the replicas' counts.
	CriticalMiss  Rate     `json:"critical_miss_rate"`
	WeightedKappa *float64 `json:"weighted_kappa"` // nil with fewer than two samples or when undefined (all at one level)

	cases []validate.TriageCase
}

// Metrics are the figures as the validation gate reads them, so the live
// safety score applies the gate's own checks.
func (c *Clinical) Metrics() validate.TriageMetrics {
	return validate.EvaluateTriage(c.cases, 0, 1)
}

// ClinicalFigures groups feedback by version and domain, plus each
// version over all domains.
func ClinicalFigures(outs []store.Outcome) map[Key]*Clinical {
	out := map[Key]*Clinical{}
	get := func(k Key) *Clinical {
		c := out[k]
		if c == nil {
			c = &Clinical{}
			out[k] = c
		}
		return c
	}
	for _, o := range outs {
		if o.Acuity < 1 || o.Acuity > 5 || o.TrueAcuity < 1 || o.TrueAcuity > 5 {
			continue
		}
		for _, k := range []Key{{o.ModelVersion, o.Domain}, {o.ModelVersion, AllDomains}} {
			get(k).add(o)
		}
	}
	for _, c := range out {
		// validate.WeightedKappa answers 0 (not NaN) where kappa is
		// undefined: every answer and every truth at one and the same level.
		if len(c.cases) >= 2 && !oneLevel(c.cases) {
			k := validate.WeightedKappa(trueOf(c.cases), predOf(c.cases))
			if !math.IsNaN(k) {
				c.WeightedKappa = &k
			}
		}
	}
	return out
}

// oneLevel reports whether every case has the first case's true level as
// both its true and its predicted level (kappa's expected disagreement is 0).
func oneLevel(cs []validate.TriageCase) bool {
	for _, c := range cs {
		if c.True != cs[0].True || c.Pred != cs[0].True {
			return false
		}
	}
	return true
}

func (c *Clinical) add(o store.Outcome) {
	c.Samples++
	pos, predPos := o.TrueAcuity <= 3, o.Acuity <= 3
	c.Accuracy.add(pos == predPos)
	c.ExactAccuracy.add(o.Acuity == o.TrueAcuity)
	if pos {
		c.Sensitivity.add(predPos)
		c.FNR.add(!predPos)
	} else {
		c.Specificity.add(!predPos)
	}
	c.UnderTriage.add(o.Acuity > o.TrueAcuity)
	if o.TrueAcuity <= 2 {
		c.EscalationAccuracy.add(o.Acuity <= 2)
	}
	if o.InteractionConfirmed != nil && *o.InteractionConfirmed {
		c.InteractionDetection.add(o.InteractionAlerts > 0)
	}
	c.cases = append(c.cases, validate.TriageCase{True: o.TrueAcuity, Pred: o.Acuity})
}

func trueOf(cs []validate.TriageCase) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.True
	}
	return out
}

func predOf(cs []validate.TriageCase) []int {
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.Pred
	}
	return out
}
