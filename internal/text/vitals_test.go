package text

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"medserve/internal/clinical"
)

// wantQty is an expected quantity; Span is checked separately by the invariants.
type wantQty struct {
	text  string
	value float64
	unit  string
	kind  clinical.QuantityKind
}

type vitalsCase struct {
	in     string
	vitals map[string]float64 // json key → value; nil means no vitals
	quants []wantQty
	impl   []string // fields reported as implausible, in order
}

func qAge(text string, v float64) wantQty     { return wantQty{text, v, "a", clinical.KindAge} }
func qDur(text string, v float64) wantQty     { return wantQty{text, v, "d", clinical.KindDuration} }
func qDose(text, u string, v float64) wantQty { return wantQty{text, v, u, clinical.KindDose} }

type vitalVals = map[string]float64

var vitalsCases = []vitalsCase{
	// Blood pressure.
	{in: "BP 120/80", vitals: vitalVals{"sbp": 120, "dbp": 80}},
	{in: "B/P: 120/80", vitals: vitalVals{"sbp": 120, "dbp": 80}},
	{in: "160/100 mmHg", vitals: vitalVals{"sbp": 160, "dbp": 100}},
	{in: "160/100 mm Hg", vitals: vitalVals{"sbp": 160, "dbp": 100}},
	{in: "blood pressure 90/60", vitals: vitalVals{"sbp": 90, "dbp": 60}},
	{in: "BP 120 / 80", vitals: vitalVals{"sbp": 120, "dbp": 80}},
	{in: "bp was ~132/84 mmHg", vitals: vitalVals{"sbp": 132, "dbp": 84}},
	{in: "blood pressure is 90/60", vitals: vitalVals{"sbp": 90, "dbp": 60}},
	{in: "SBP 88", vitals: vitalVals{"sbp": 88}},
	// Heart rate.
	{in: "HR 110", vitals: vitalVals{"hr": 110}},
	{in: "pulse 110", vitals: vitalVals{"hr": 110}},
	{in: "P 110 bpm", vitals: vitalVals{"hr": 110}},
	{in: "110 bpm", vitals: vitalVals{"hr": 110}},
	{in: "heart rate of 110", vitals: vitalVals{"hr": 110}},
	{in: "HR: 110/min", vitals: vitalVals{"hr": 110}},
	{in: "hr=110", vitals: vitalVals{"hr": 110}},
	{in: "110 beats per minute", vitals: vitalVals{"hr": 110}},
	// Respiratory rate.
	{in: "RR 22", vitals: vitalVals{"rr": 22}},
	{in: "resp 22", vitals: vitalVals{"rr": 22}},
	{in: "respiratory rate 22", vitals: vitalVals{"rr": 22}},
	{in: "RR 22/min", vitals: vitalVals{"rr": 22}},
	{in: "22 breaths/min", vitals: vitalVals{"rr": 22}},
	{in: "R 18", vitals: vitalVals{"rr": 18}},
	// Temperature.
	{in: "T 38.5", vitals: vitalVals{"temp_c": 38.5}},
	{in: "temp 38.5 C", vitals: vitalVals{"temp_c": 38.5}},
	{in: "38.5°C", vitals: vitalVals{"temp_c": 38.5}},
	{in: "38.5 ºC", vitals: vitalVals{"temp_c": 38.5}},
	{in: "101.3 F", vitals: vitalVals{"temp_c": 38.5}},
	{in: "101.3°F", vitals: vitalVals{"temp_c": 38.5}},
	{in: "temperature 99 F", vitals: vitalVals{"temp_c": 37.2}},
	{in: "Tmax 102.1", vitals: vitalVals{"temp_c": 38.9}},
	{in: "T max 39", vitals: vitalVals{"temp_c": 39}},
	{in: "temp 98.6", vitals: vitalVals{"temp_c": 37}},
	{in: "Temp: 37.2 degrees C", vitals: vitalVals{"temp_c": 37.2}},
	{in: "temp 110 F", vitals: vitalVals{"temp_c": 43.3}},
	// SpO2.
	{in: "sat 92%", vitals: vitalVals{"spo2": 92}},
	{in: "SpO2 92 on RA", vitals: vitalVals{"spo2": 92}},
	{in: "O2 sat 88% on 2L", vitals: vitalVals{"spo2": 88}},
	{in: "saturating 95%", vitals: vitalVals{"spo2": 95}},
	{in: "spo2: 97 %", vitals: vitalVals{"spo2": 97}},
	{in: "pulse ox 93%", vitals: vitalVals{"spo2": 93}},
	{in: "SaO2 90", vitals: vitalVals{"spo2": 90}},
	{in: "oxygen saturation 91%", vitals: vitalVals{"spo2": 91}},
	{in: "93% on RA", vitals: vitalVals{"spo2": 93}},
	{in: "88% on 4 L", vitals: vitalVals{"spo2": 88}},
	// GCS.
	{in: "GCS 8", vitals: vitalVals{"gcs": 8}},
	{in: "GCS 3", vitals: vitalVals{"gcs": 3}},
	{in: "GCS: 14", vitals: vitalVals{"gcs": 14}},
	{in: "GCS E2V3M4", vitals: vitalVals{"gcs": 9}},
	{in: "GCS E2 V3 M4", vitals: vitalVals{"gcs": 9}},
	{in: "Glasgow coma scale 13", vitals: vitalVals{"gcs": 13}},
	{in: "GCS 15/15", vitals: vitalVals{"gcs": 15}},
	// Pain.
	{in: "8/10", vitals: vitalVals{"pain": 8}},
	{in: "pain 8/10", vitals: vitalVals{"pain": 8}},
	{in: "pain score 7", vitals: vitalVals{"pain": 7}},
	{in: "NRS 6", vitals: vitalVals{"pain": 6}},
	{in: "pain 7 out of 10", vitals: vitalVals{"pain": 7}},
	{in: "10/10 pain", vitals: vitalVals{"pain": 10}},
	// Ages.
	{in: "58yo", quants: []wantQty{qAge("58yo", 58)}},
	{in: "58 yo", quants: []wantQty{qAge("58 yo", 58)}},
	{in: "58 y/o", quants: []wantQty{qAge("58 y/o", 58)}},
	{in: "58 y.o. man", quants: []wantQty{qAge("58 y.o.", 58)}},
	{in: "58 year old", quants: []wantQty{qAge("58 year old", 58)}},
	{in: "58-year-old", quants: []wantQty{qAge("58-year-old", 58)}},
	{in: "58 years old", quants: []wantQty{qAge("58 years old", 58)}},
	{in: "6 month old", quants: []wantQty{qAge("6 month old", 0.5)}},
	{in: "aged 58", quants: []wantQty{qAge("aged 58", 58)}},
	{in: "age 58", quants: []wantQty{qAge("age 58", 58)}},
	{in: "Age: 6 months", quants: []wantQty{qAge("Age: 6 months", 0.5)}},
	// Doses.
	{in: "5 mg", quants: []wantQty{qDose("5 mg", "mg", 5)}},
	{in: "2.5mg", quants: []wantQty{qDose("2.5mg", "mg", 2.5)}},
	{in: "500 mcg", quants: []wantQty{qDose("500 mcg", "mg", 0.5)}},
	{in: "500 µg", quants: []wantQty{qDose("500 µg", "mg", 0.5)}},
	{in: "1 g", quants: []wantQty{qDose("1 g", "mg", 1000)}},
	{in: "10 ml", quants: []wantQty{qDose("10 ml", "mL", 10)}},
	{in: "10 mL", quants: []wantQty{qDose("10 mL", "mL", 10)}},
	{in: "10 units", quants: []wantQty{qDose("10 units", "U", 10)}},
	{in: "10 U", quants: []wantQty{qDose("10 U", "U", 10)}},
	{in: "10 IU", quants: []wantQty{qDose("10 IU", "U", 10)}},
	{in: "20 mEq", quants: []wantQty{qDose("20 mEq", "mEq", 20)}},
	// Durations.
	{in: "for 3 days", quants: []wantQty{qDur("3 days", 3)}},
	{in: "fever x3 days", quants: []wantQty{qDur("3 days", 3)}},
	{in: "x2 weeks", quants: []wantQty{qDur("2 weeks", 14)}},
	{in: "x 2 wks", quants: []wantQty{qDur("2 wks", 14)}},
	{in: "3 hours", quants: []wantQty{qDur("3 hours", 0.125)}},
	{in: "2 hrs", quants: []wantQty{qDur("2 hrs", 2.0/24)}},
	{in: "30 minutes", quants: []wantQty{qDur("30 minutes", 30.0/1440)}},
	{in: "2 months", quants: []wantQty{qDur("2 months", 60.88)}},
	{in: "1 year", quants: []wantQty{qDur("1 year", 365.25)}},
	{in: "since 3 days", quants: []wantQty{qDur("3 days", 3)}},
	{in: "3d", quants: []wantQty{qDur("3d", 3)}},
	{in: "2wk", quants: []wantQty{qDur("2wk", 14)}},
	{in: "3-day history", quants: []wantQty{qDur("3-day", 3)}},
	// Negative cases: nothing, or something else than the obvious misreading.
	{in: "abd pain"},
	{in: "12/03"},
	{in: "seen 3/10/2024"},
	{in: "1/2 tab"},
	{in: "58 F c/o chest pain"},
	{in: "HOB 30°"},
	{in: "flexion to 90 degrees"},
	{in: "EF 35%"},
	{in: "T2DM, G3 P2"},
	{in: "R 5th finger"},
	{in: "radial pulse 2+ bilaterally"},
	{in: "Sat 12/03"},
	{in: "Hgb 11.8 g/dL, K 3.4 mEq/L"},
	{in: "30 mL/kg bolus"},
	{in: "albuterol q4h"},
	{in: "q 4-6 hours"},
	{in: "every 8 hours"},
	{in: "HR 1e308"},
	{in: "NaN Inf inf nan"},
	{in: "BP BP BP"},
	{in: "pain 3 days", quants: []wantQty{qDur("3 days", 3)}},
	{in: "sat 3 days", quants: []wantQty{qDur("3 days", 3)}},
	{in: "chest pain 2 hr HR 110", vitals: vitalVals{"hr": 110}, quants: []wantQty{qDur("2 hr", 2.0/24)}},
	{in: "tylenol 650 mg q6h x 3 days", quants: []wantQty{qDose("650 mg", "mg", 650), qDur("3 days", 3)}},
	// Implausible values.
	{in: "HR 900", impl: []string{"hr"}},
	{in: "HR -5", impl: []string{"hr"}},
	{in: "temp 120 F", impl: []string{"temp_c"}},
	{in: "temp 60", impl: []string{"temp_c"}},
	{in: "SpO2 120%", impl: []string{"spo2"}},
	{in: "BP 80/120", impl: []string{"dbp"}},
	{in: "BP 120/120", impl: []string{"dbp"}},
	{in: "BP 400/80", impl: []string{"sbp"}},
	{in: "SBP 70 DBP 80", vitals: vitalVals{"sbp": 70}, impl: []string{"dbp"}},
	{in: "RR 95", impl: []string{"rr"}},
	{in: "GCS 2", impl: []string{"gcs"}},
	{in: "GCS E5V5M6", impl: []string{"gcs"}},
	{in: "pain 12/10", impl: []string{"pain"}},
	{in: "age 150", impl: []string{"age"}},
	{in: "150°C", impl: []string{"temp_c"}},
	// An implausible value does not block a later plausible one.
	{in: "HR 900 then HR 95", vitals: vitalVals{"hr": 95}, impl: []string{"hr"}},
	// Case, adjacency and a complaint with everything at once.
	{in: "hr110 bp120/80 t38.2 SPO2 97%", vitals: vitalVals{"hr": 110, "sbp": 120, "dbp": 80, "temp_c": 38.2, "spo2": 97}},
	{
		in:     "58yo male chest pain BP 88/54 HR 118 sat 93%",
		vitals: vitalVals{"sbp": 88, "dbp": 54, "hr": 118, "spo2": 93},
		quants: []wantQty{qAge("58yo", 58)},
	},
	{
		in:     "VS: T 98.6 P 72 R 16 BP 118/76 O2 sat 99% RA",
		vitals: vitalVals{"temp_c": 37, "hr": 72, "rr": 16, "sbp": 118, "dbp": 76, "spo2": 99},
	},
}

func vitalsMap(v clinical.Vitals) map[string]float64 {
	m := map[string]float64{}
	for _, f := range []struct {
		k string
		p *float64
	}{
		{"sbp", v.SBP}, {"dbp", v.DBP}, {"hr", v.HR}, {"rr", v.RR},
		{"temp_c", v.TempC}, {"spo2", v.SpO2}, {"gcs", v.GCS}, {"pain", v.Pain},
	} {
		if f.p != nil {
			m[f.k] = *f.p
		}
	}
	return m
}

func vitalClose(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestExtractVitals(t *testing.T) {
	for _, c := range vitalsCases {
		t.Run(c.in, func(t *testing.T) {
			r := ExtractVitals(c.in)
			checkVitalsInvariants(t, c.in, r)
			got := vitalsMap(r.Vitals)
			if len(got) != len(c.vitals) {
				t.Errorf("vitals = %v, want %v", got, c.vitals)
			}
			for k, want := range c.vitals {
				if v, ok := got[k]; !ok || !vitalClose(v, want) {
					t.Errorf("%s = %v (set %v), want %v; all %v", k, v, ok, want, got)
				}
			}
			if len(r.Quantities) != len(c.quants) {
				t.Fatalf("quantities = %+v, want %+v", r.Quantities, c.quants)
			}
			for i, w := range c.quants {
				q := r.Quantities[i]
				if q.Text != w.text || !vitalClose(q.Value, w.value) || q.Unit != w.unit || q.Kind != w.kind {
					t.Errorf("quantity %d = %+v, want %+v", i, q, w)
				}
			}
			var impl []string
			for _, m := range r.Implausible {
				impl = append(impl, m.Field)
			}
			if strings.Join(impl, ",") != strings.Join(c.impl, ",") {
				t.Errorf("implausible = %+v, want fields %v", r.Implausible, c.impl)
			}
		})
	}
}

func TestExtractVitalsImplausibleReason(t *testing.T) {
	for in, want := range map[string]string{
		"HR 900":     "hr 900 outside 0–300",
		"temp 120 F": "temp_c 48.9 (120 °F) outside 25–45",
		"SpO2 120%":  "spo2 120 outside 0–100",
		"BP 80/120":  "dbp 120 not below sbp 80",
		"age 150":    "age 150 outside 0–125",
	} {
		r := ExtractVitals(in)
		if len(r.Implausible) != 1 || r.Implausible[0].Reason != want {
			t.Errorf("%q: implausible = %+v, want reason %q", in, r.Implausible, want)
		}
	}
}

func TestExtractVitalsFirstOccurrenceWins(t *testing.T) {
	r := ExtractVitals("Triage BP 88/54, HR 118, T 39.1. After fluids BP 112/70, HR 96, T 37.8. BP 80/120")
	got := vitalsMap(r.Vitals)
	want := vitalVals{"sbp": 88, "dbp": 54, "hr": 118, "temp_c": 39.1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// A later implausible reading is still reported.
	if len(r.Implausible) != 1 || r.Implausible[0].Field != "dbp" {
		t.Errorf("implausible = %+v", r.Implausible)
	}
}

func TestExtractVitalsNote(t *testing.T) {
	r := ExtractVitals(vitalsNote)
	checkVitalsInvariants(t, vitalsNote, r)
	got := vitalsMap(r.Vitals)
	want := vitalVals{"sbp": 98, "dbp": 62, "hr": 118, "rr": 28, "temp_c": 38.5, "spo2": 86, "gcs": 15, "pain": 6}
	if len(got) != len(want) {
		t.Errorf("vitals = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	kinds := map[clinical.QuantityKind]int{}
	for _, q := range r.Quantities {
		kinds[q.Kind]++
	}
	if kinds[clinical.KindAge] < 2 || kinds[clinical.KindDose] < 10 || kinds[clinical.KindDuration] < 5 {
		t.Errorf("quantity kinds = %v in %+v", kinds, r.Quantities)
	}
	if len(r.Implausible) != 0 {
		t.Errorf("implausible = %+v", r.Implausible)
	}
}

// TestExtractVitalsHostileInput feeds inputs that break naive scanners; the
// invariants, not particular findings, are what matter here.
func TestExtractVitalsHostileInput(t *testing.T) {
	big := strings.Repeat("58yo HR 110 BP 120/80 pain 8/10 x3 days 5 mg ", 1<<20/44)
	inputs := []string{
		"",
		"\x00\x00HR\x00110",
		"\xff\xfe BP \xc2 120/80 \xce",
		"\xc2", "\xcb", "5 \xc2\xb5", "38\xc2\xb0", "38 \xc2\xb0\xc2\xb0 C",
		"HR " + strings.Repeat("9", 400),
		"HR 0." + strings.Repeat("0", 400) + "1",
		"temp " + strings.Repeat("9", 31) + " F",
		strings.Repeat("9", 32) + " g",
		strings.Repeat("9", 31) + " years",
		"1e308 mg", "HR 1e308", "HR NaN", "HR Inf", "temp inf F", "-", "--5", "HR --5", "BP -/-",
		"HR -0", "BP 0/-0",
		strings.Repeat("BP ", 100000),
		strings.Repeat("GCS E", 50000),
		strings.Repeat("1/", 50000),
		strings.Repeat("\x01\x7f", 1000),
		big,
	}
	for _, in := range inputs {
		r := ExtractVitals(in)
		checkVitalsInvariants(t, in, r)
	}
	if r := ExtractVitals("HR -0"); r.Vitals.HR == nil || math.Signbit(*r.Vitals.HR) {
		t.Errorf("HR -0 = %v, want +0", r.Vitals.HR)
	}
	r := ExtractVitals(big)
	if n := len(r.Quantities); n < 1<<20/44*3 {
		t.Errorf("1 MiB of repeats gave %d quantities", n)
	}
}

func TestExtractVitalsAllocations(t *testing.T) {
	n := testing.AllocsPerRun(100, func() { ExtractVitals(vitalsComplaint) })
	// One array for the vitals, one slice for the qAge quantity.
	if n > 2 {
		t.Errorf("complaint: %v allocs, want ≤ 2", n)
	}
	if n := testing.AllocsPerRun(100, func() { ExtractVitals("abd pain") }); n != 0 {
		t.Errorf("nothing found: %v allocs, want 0", n)
	}
}

var vitalsLimitsByKey = map[string][2]float64{
	"sbp": {0, 300}, "dbp": {0, 200}, "hr": {0, 300}, "rr": {0, 80},
	"temp_c": {25, 45}, "spo2": {0, 100}, "gcs": {3, 15}, "pain": {0, 10},
}

func vitalFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// checkVitalsInvariants holds for every input: spans index s exactly and in
// text order, every number is finite, and accepted vitals are within limits.
func checkVitalsInvariants(t *testing.T, s string, r VitalsResult) {
	t.Helper()
	prev := 0
	for _, q := range r.Quantities {
		a, b := q.Span[0], q.Span[1]
		if a < 0 || a > b || b > len(s) {
			t.Fatalf("%.60q: span %v out of range [0,%d]", s, q.Span, len(s))
		}
		if s[a:b] != q.Text {
			t.Fatalf("%.60q: span %v is %q, Text %q", s, q.Span, s[a:b], q.Text)
		}
		if a < prev {
			t.Fatalf("%.60q: quantities out of text order at %+v", s, q)
		}
		prev = a
		if !vitalFinite(q.Value) || q.Value < 0 {
			t.Fatalf("%.60q: quantity value %v", s, q.Value)
		}
		switch q.Kind {
		case clinical.KindAge:
			if q.Unit != "a" || q.Value > 125 {
				t.Fatalf("%.60q: bad qAge %+v", s, q)
			}
		case clinical.KindDuration:
			if q.Unit != "d" {
				t.Fatalf("%.60q: bad duration %+v", s, q)
			}
		case clinical.KindDose:
			switch q.Unit {
			case "mg", "mL", "U", "mEq":
			default:
				t.Fatalf("%.60q: bad qDose %+v", s, q)
			}
		default:
			t.Fatalf("%.60q: bad kind %+v", s, q)
		}
		if utf8.ValidString(s) && !utf8.ValidString(q.Text) {
			t.Fatalf("%.60q: quantity text %q cuts a rune", s, q.Text)
		}
	}
	for _, m := range r.Implausible {
		if !vitalFinite(m.Value) || m.Field == "" || m.Reason == "" {
			t.Fatalf("%.60q: bad implausible %+v", s, m)
		}
	}
	got := vitalsMap(r.Vitals)
	for k, v := range got {
		lim := vitalsLimitsByKey[k]
		if !vitalFinite(v) || v < lim[0] || v > lim[1] {
			t.Fatalf("%.60q: accepted %s = %v outside %v", s, k, v, lim)
		}
	}
	if sbp, ok := got["sbp"]; ok {
		if dbp, ok := got["dbp"]; ok && dbp >= sbp {
			t.Fatalf("%.60q: accepted dbp %v ≥ sbp %v", s, dbp, sbp)
		}
	}
}

func FuzzExtractVitals(f *testing.F) {
	for _, c := range vitalsCases {
		f.Add(c.in)
	}
	f.Add(vitalsNote)
	f.Fuzz(func(t *testing.T, s string) {
		checkVitalsInvariants(t, s, ExtractVitals(s))
	})
}
