package monitor

import "medserve/internal/validate"

// Targets are the thresholds one model version's live figures are held to.
type Targets struct {
	Accuracy             float64            `json:"accuracy"`              // at least
	Sensitivity          float64            `json:"sensitivity"`           // at least
	FNR                  float64            `json:"false_negative_rate"`   // at most
	CriticalMiss         float64            `json:"critical_miss_rate"`    // at most
	Escalation           float64            `json:"escalation_accuracy"`   // at least
	InteractionDetection float64            `json:"interaction_detection"` // at least
	DomainAccuracy       map[string]float64 `json:"domain_accuracy"`       // at least: target × 0.95
	// Gate is what the live safety score checks (the promotion gate's
	// checks, on live feedback).
	Gate validate.GateConfig `json:"gate"`
}

// DomainTargets are the seed's accuracy targets per medical domain.
var domainTargets = map[string]float64{"cardiology": 0.94, "oncology": 0.91, "neurology": 0.89, "emergency": 0.96, "general": 0.88}

// SeedTargets are the seed's thresholds (SPEC section 11).
func SeedTargets() Targets {
	t := Targets{Accuracy: 0.85, Sensitivity: 0.95, FNR: 0.05, CriticalMiss: 0.01, Escalation: 0.98, InteractionDetection: 0.95,
		DomainAccuracy: map[string]float64{}, Gate: validate.DefaultGate()}
	for d, v := range domainTargets {
		t.DomainAccuracy[d] = v * 0.95
	}
	return t
}

// AdjustTo holds a version to what it was validated at where the seed
// asks for more (SPEC section 11): a model validated at 0.80 would
// otherwise fire a 0.94 alert for as long as it serves, and an alert that
// always fires is one nobody reads. The figure then becomes the validated
// one less tol (relative). Without a validation report the seed's stand.
func (t Targets) AdjustTo(g *validate.GateResult, tol float64) Targets {
	if g == nil {
		return t
	}
	v := map[string]float64{}
	for _, c := range g.Checks {
		v[c.Name] = c.Value
	}
	atLeast := func(target float64, name string) float64 {
		if x, ok := v[name]; ok && target > x {
			return x * (1 - tol)
		}
		return target
	}
	atMost := func(target float64, name string) float64 {
		if x, ok := v[name]; ok && target < x {
			return x * (1 + tol)
		}
		return target
	}
	out := t
	out.Accuracy = atLeast(t.Accuracy, validate.CheckAccuracy)
	out.Sensitivity = atLeast(t.Sensitivity, validate.CheckSensitivity)
	out.FNR = atMost(t.FNR, validate.CheckFNR)
	out.DomainAccuracy = map[string]float64{}
	for d, x := range t.DomainAccuracy {
		out.DomainAccuracy[d] = atLeast(x, validate.CheckAccuracy)
	}
	out.Gate.MinAccuracy = atLeast(t.Gate.MinAccuracy, validate.CheckAccuracy)
	out.Gate.MinSensitivity = atLeast(t.Gate.MinSensitivity, validate.CheckSensitivity)
	out.Gate.MinSpecificity = atLeast(t.Gate.MinSpecificity, validate.CheckSpecificity)
	out.Gate.MaxFNR = atMost(t.Gate.MaxFNR, validate.CheckFNR)
	out.Gate.MinKappa = atLeast(t.Gate.MinKappa, validate.CheckWeightedKappa)
	return out
}
