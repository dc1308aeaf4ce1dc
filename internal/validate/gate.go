package validate

// gateEpsilon absorbs float rounding in the comparisons, so a figure that is
// exactly on its threshold (e.g. kappa computed as 0.85 − 1e-16) passes.
const gateEpsilon = 1e-9

// Gate check names, as they appear in GateResult.Checks and Failed.
const (
	CheckAccuracy                = "accuracy"
	CheckSensitivity             = "sensitivity"
	CheckSpecificity             = "specificity"
	CheckFNR                     = "fnr"
	CheckWeightedKappa           = "weighted_kappa"
	CheckSensitivityVsProduction = "sensitivity_vs_production"
)

// GateConfig holds per-model thresholds; DefaultGate returns the seed's values from SPEC section 6.
type GateConfig struct {
	MinAccuracy    float64 `json:"min_accuracy"`
	MinSensitivity float64 `json:"min_sensitivity"`
	MinSpecificity float64 `json:"min_specificity"`
	MaxFNR         float64 `json:"max_fnr"`
	MinKappa       float64 `json:"min_kappa"`
	MinSafetyScore float64 `json:"min_safety_score"` // 0.8
}

// DefaultGate returns the seed's thresholds: accuracy ≥ 0.90, sensitivity ≥ 0.95, specificity ≥ 0.85, FNR ≤ 0.05, kappa ≥ 0.85, safety score ≥ 0.8.
func DefaultGate() GateConfig {
	return GateConfig{MinAccuracy: 0.90, MinSensitivity: 0.95, MinSpecificity: 0.85, MaxFNR: 0.05, MinKappa: 0.85, MinSafetyScore: 0.8}
}

// GateCheck is one check's outcome; Lower is the lower 95 % bound (reported, not deciding).
// Upper is the upper bound, the pessimistic side of a "<=" check such as FNR.
type GateCheck struct {
	Name           string  `json:"name"`
	Value          float64 `json:"value"`
	Threshold      float64 `json:"threshold"`
	Lower          float64 `json:"lower"`
	Upper          float64 `json:"upper"`
	Op             string  `json:"op"` // ">=" or "<="
	Pass           bool    `json:"pass"`
	SafetyCritical bool    `json:"safety_critical"`
}

// GateResult is the outcome of Gate.
type GateResult struct {
	Checks      []GateCheck `json:"checks"`
	SafetyScore float64     `json:"safety_score"` // share of checks passed
	Pass        bool        `json:"pass"`         // safety-critical checks (sensitivity, FNR) pass AND SafetyScore ≥ MinSafetyScore
	Failed      []string    `json:"failed"`       // names of failing checks
	Mode        string      `json:"mode,omitempty"`
}

// Gate applies the config to metrics (point estimates decide). If baseline is non-nil (the production version's metrics
// on the same rows), a candidate whose sensitivity is below the baseline's also fails, with a check named "sensitivity_vs_production".
//
// The production check counts toward the safety score as well; since it must
// pass for the gate to pass, this never changes the verdict of the five seed
// checks (4/5 and 5/6 both clear 0.8, 3/5 and 4/6 both miss it).
func Gate(m TriageMetrics, cfg GateConfig, baseline *TriageMetrics) GateResult {
	checks := []GateCheck{
		atLeast(CheckAccuracy, m.Accuracy, cfg.MinAccuracy, false),
		atLeast(CheckSensitivity, m.Sensitivity, cfg.MinSensitivity, true),
		atLeast(CheckSpecificity, m.Specificity, cfg.MinSpecificity, false),
		atMost(CheckFNR, m.FNR, cfg.MaxFNR, true),
		atLeast(CheckWeightedKappa, m.WeightedKappa, cfg.MinKappa, false),
	}
	if baseline != nil {
		checks = append(checks, atLeast(CheckSensitivityVsProduction, m.Sensitivity, baseline.Sensitivity.Value, true))
	}
	r := GateResult{Checks: checks, Failed: []string{}}
	passed, critical := 0, true
	for _, c := range checks {
		if c.Pass {
			passed++
			continue
		}
		r.Failed = append(r.Failed, c.Name)
		if c.SafetyCritical {
			critical = false
		}
	}
	r.SafetyScore = float64(passed) / float64(len(checks))
	r.Pass = critical && r.SafetyScore >= cfg.MinSafetyScore-gateEpsilon
	return r
}

func atLeast(name string, iv Interval, threshold float64, critical bool) GateCheck {
	return GateCheck{Name: name, Value: iv.Value, Threshold: threshold, Lower: iv.Lo, Upper: iv.Hi, Op: ">=",
		Pass: iv.Value >= threshold-gateEpsilon, SafetyCritical: critical}
}

func atMost(name string, iv Interval, threshold float64, critical bool) GateCheck {
	return GateCheck{Name: name, Value: iv.Value, Threshold: threshold, Lower: iv.Lo, Upper: iv.Hi, Op: "<=",
		Pass: iv.Value <= threshold+gateEpsilon, SafetyCritical: critical}
}
