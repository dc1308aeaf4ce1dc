package triage

import (
	"math"

	"medserve/internal/clinical"
)

// Scores are the early-warning scores computed from vital signs.
type Scores struct {
	// NEWS2 (Royal College of Physicians 2017), scale 1 for SpO2, air
	// assumed: a missing parameter scores 0, so NEWS2Params says how many
	// of the seven were measured.
	NEWS2       int `json:"news2"`
	NEWS2Params int `json:"news2_params"`
	// NEWS2Red is set when a single parameter scores 3 (RCP's "red score").
	NEWS2Red bool `json:"news2_red"`
	// QSOFA (Seymour et al., JAMA 2016): RR ≥ 22, SBP ≤ 100, altered
	// mentation; 0–3.
	QSOFA int `json:"qsofa"`
	// ShockIndex is HR/SBP (Allgöwer); 0 when either is missing.
	ShockIndex float64 `json:"shock_index"`
	// Danger-zone vital signs (ESI v4 handbook, age-adjusted for children).
	DangerHR   bool `json:"danger_hr"`
	DangerRR   bool `json:"danger_rr"`
	DangerSpO2 bool `json:"danger_spo2"`
}

// ComputeScores derives the scores from a query's vitals, consciousness and
// age.
func ComputeScores(q clinical.Query) Scores {
	v := q.Vitals
	var s Scores
	add := func(p *float64, points func(float64) int) {
		if p == nil {
			return
		}
		pt := points(*p)
		s.NEWS2 += pt
		s.NEWS2Params++
		if pt == 3 {
			s.NEWS2Red = true
		}
	}
	add(v.RR, func(x float64) int {
		switch {
		case x <= 8:
			return 3
		case x <= 11:
			return 1
		case x <= 20:
			return 0
		case x <= 24:
			return 2
		}
		return 3
	})
	add(v.SpO2, func(x float64) int {
		switch {
		case x <= 91:
			return 3
		case x <= 93:
			return 2
		case x <= 95:
			return 1
		}
		return 0
	})
	add(v.SBP, func(x float64) int {
		switch {
		case x <= 90:
			return 3
		case x <= 100:
			return 2
		case x <= 110:
			return 1
		case x <= 219:
			return 0
		}
		return 3
	})
	add(v.HR, func(x float64) int {
		switch {
		case x <= 40:
			return 3
		case x <= 50:
			return 1
		case x <= 90:
			return 0
		case x <= 110:
			return 1
		case x <= 130:
			return 2
		}
		return 3
	})
	add(v.TempC, func(x float64) int {
		switch {
		case x <= 35.0:
			return 3
		case x <= 36.0:
			return 1
		case x <= 38.0:
			return 0
		case x <= 39.0:
			return 1
		}
		return 2
	})
	if c, ok := consciousness(q); ok {
		add(&c, func(x float64) int {
			if x > 0 {
				return 3
			}
			return 0
		})
	}

	if v.RR != nil && *v.RR >= 22 {
		s.QSOFA++
	}
	if v.SBP != nil && *v.SBP <= 100 {
		s.QSOFA++
	}
	if c, ok := consciousness(q); ok && c > 0 {
		s.QSOFA++
	}
	if v.HR != nil && v.SBP != nil && *v.SBP > 0 {
		s.ShockIndex = math.Round(*v.HR / *v.SBP * 100) / 100
	}
	s.DangerHR, s.DangerRR, s.DangerSpO2 = dangerZone(q)
	return s
}

// consciousness is 1 when consciousness is altered (AVPU below alert or
// GCS < 15), 0 when normal, and not ok when neither was given.
func consciousness(q clinical.Query) (float64, bool) {
	switch {
	case q.AVPU != "" && q.AVPU != clinical.AVPUAlert:
		return 1, true
	case q.Vitals.GCS != nil && *q.Vitals.GCS < 15:
		return 1, true
	case q.AVPU == clinical.AVPUAlert || q.Vitals.GCS != nil:
		return 0, true
	}
	return 0, false
}

// dangerZone applies ESI v4's danger-zone vital signs: heart rate and
// respiratory rate limits by age band, SpO2 < 92 %. Without an age the
// adult limits apply.
func dangerZone(q clinical.Query) (hr, rr, spo2 bool) {
	hrMax, rrMax := 100.0, 20.0
	if q.Age != nil {
		switch a := *q.Age; {
		case a < 0.25:
			hrMax, rrMax = 180, 50
		case a < 3:
			hrMax, rrMax = 160, 40
		case a < 8:
			hrMax, rrMax = 140, 30
		}
	}
	v := q.Vitals
	hr = v.HR != nil && *v.HR > hrMax
	rr = v.RR != nil && *v.RR > rrMax
	spo2 = v.SpO2 != nil && *v.SpO2 < 92
	return hr, rr, spo2
}
