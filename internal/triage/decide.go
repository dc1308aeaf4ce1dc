package triage

import "fmt"

// Policy turns class probabilities into an acuity. Under-triage costs more
// than over-triage, so the policy does not simply take the most probable
// level: it moves a patient to the emergency side (acuity ≤ 3) as soon as
// the probability of an emergency reaches Tau3, and to acuity ≤ 2 at Tau2.
// Both thresholds are tuned on out-of-fold predictions of the training rows
// only (see Fit). In second-reader mode the model's suggestion uses TauSR3
// and TauSR2, tuned for the combination with the nurse's level.
type Policy struct {
	Tau3   float64 `json:"tau3"`
	Tau2   float64 `json:"tau2"`
	TauSR3 float64 `json:"tau_sr3"` // nurse level 4
	TauSR5 float64 `json:"tau_sr3_nurse5"`
	TauSR2 float64 `json:"tau_sr2"`
}

// srTau3 is the emergency threshold when the nurse proposed level n: a
// nurse's 5 ("non-urgent") is rarely wrong, so it takes stronger evidence
// to overrule than a 4.
func (pol Policy) srTau3(n int) float64 {
	if n == 5 {
		return pol.TauSR5
	}
	return pol.TauSR3
}

// levelFor applies thresholds to probabilities (index 0 = acuity 1).
func levelFor(p []float64, tau3, tau2 float64) int {
	best := 0
	for k := 1; k < len(p); k++ {
		if p[k] > p[best] {
			best = k
		}
	}
	level := best + 1
	p3 := p[0] + p[1] + p[2]
	p2 := p[0] + p[1]
	switch {
	case p3 >= tau3 && level > 3:
		level = 3
	case p3 < tau3 && level <= 3:
		// The emergency side was not reached: the best non-emergency level.
		level = 4
		if p[4] > p[3] {
			level = 5
		}
	}
	if p2 >= tau2 && level > 2 {
		level = 2
	}
	return level
}

// Decision is the combination of model, safety floor and nurse.
type Decision struct {
	Acuity      int      // the answer
	ModelAcuity int      // the model's own level, before the floor
	Reasons     []string // review reasons
	Review      bool
}

// Decide combines the model's probabilities with the safety floor and, in
// second-reader mode (nurse 1–5), the nurse's level. The answer is never
// less urgent than the floor. With a nurse level it keeps the nurse's
// level unless the model or the floor finds the patient more urgent; then
// it proposes the more urgent level and asks for review.
func (pol Policy) Decide(p []float64, floor Floor, nurse int) Decision {
	var d Decision
	if nurse >= 1 && nurse <= 5 {
		d.ModelAcuity = levelFor(p, pol.srTau3(nurse), pol.TauSR2)
		d.Acuity = nurse
		// The model overrules the nurse only across a boundary whose
		// threshold was tuned for this mode: into the emergency side
		// (acuity ≤ 3) and into acuity ≤ 2. Its view of 4 versus 5, or of
		// 1 versus 2, is not a reason to interrupt the nurse.
		proposed := nurse
		if nurse >= 4 && p[0]+p[1]+p[2] >= pol.srTau3(nurse) {
			proposed = 3
		}
		if proposed >= 3 && p[0]+p[1] >= pol.TauSR2 {
			proposed = 2
		}
		if m := min(proposed, floor.Acuity); m < nurse {
			d.Acuity = m
			d.Review = true
			d.Reasons = append(d.Reasons, "possible under-triage")
			if floor.Acuity < nurse {
				d.Reasons = append(d.Reasons, fmt.Sprintf("safety floor acuity %d", floor.Acuity))
			}
		}
		return d
	}
	d.ModelAcuity = levelFor(p, pol.Tau3, pol.Tau2)
	d.Acuity = min(d.ModelAcuity, floor.Acuity)
	if floor.Acuity < d.ModelAcuity {
		d.Review = true
		d.Reasons = append(d.Reasons, fmt.Sprintf("safety floor raised acuity from %d to %d", d.ModelAcuity, floor.Acuity))
	}
	return d
}
