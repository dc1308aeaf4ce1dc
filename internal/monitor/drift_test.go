package monitor

import (
	"math"
	"slices"
	"testing"

	"medserve/internal/clinical"
)

func f64(v float64) *float64 { return &v }

func TestBins(t *testing.T) {
	known := map[string]bool{"C1": true}
	tests := []struct {
		name string
		in   Input
		want []string
	}{
		{"everything missing", Input{},
			[]string{"age=missing", "sex=missing", "arrival=missing", "sbp=missing", "hr=missing", "rr=missing", "temp_c=missing", "spo2=missing", "concept=none"}},
		{"clinical bands, lower bound inclusive",
			Input{Age: f64(65), Sex: " Female ", Arrival: "ambulance",
				Vitals: clinical.Vitals{SBP: f64(89.9), HR: f64(100), RR: f64(12), TempC: f64(38), SpO2: f64(96)}},
			[]string{"age=65-79", "sex=female", "arrival=ambulance", "sbp=<90", "hr=100-119", "rr=12-20", "temp_c=38-38.9", "spo2=>=96", "concept=none"}},
		{"top bands and other categories",
			Input{Age: f64(80), Sex: "unknown", Arrival: "helicopter",
				Vitals: clinical.Vitals{SBP: f64(180), HR: f64(49), RR: f64(25), TempC: f64(35.9), SpO2: f64(91)}},
			[]string{"age=>=80", "sex=other", "arrival=other", "sbp=>=180", "hr=<50", "rr=>=25", "temp_c=<36", "spo2=<92", "concept=none"}},
		{"NaN is missing; concepts: known on their own, the rest once as other",
			Input{Age: f64(17.9), Sex: "male", Arrival: "walk-in", Vitals: clinical.Vitals{SBP: f64(math.NaN())},
				Concepts: []string{"C2", "C1", "C3", "C1"}},
			[]string{"age=<18", "sex=male", "arrival=walk-in", "sbp=missing", "hr=missing", "rr=missing", "temp_c=missing", "spo2=missing",
				"concept=other", "concept=C1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Bins(tc.in, known); !slices.Equal(got, tc.want) {
				t.Errorf("Bins =\n %q\nwant\n %q", got, tc.want)
			}
		})
	}
}

func TestInputOf(t *testing.T) {
	q := clinical.Query{Age: f64(40), Sex: "female", Arrival: "walk-in", Vitals: clinical.Vitals{HR: f64(72)}}
	in := InputOf(q, []clinical.Finding{{Code: "A"}, {Code: "B", Negated: true}, {Code: "C", Family: true}, {Code: "D", Possible: true}, {Code: "E"}})
	if !slices.Equal(in.Concepts, []string{"A", "E"}) || *in.Age != 40 || in.Sex != "female" || *in.Vitals.HR != 72 {
		t.Errorf("InputOf = %+v", in)
	}
}

// inputs returns n copies of in.
func inputs(n int, in Input) []Input {
	out := make([]Input, n)
	for i := range out {
		out[i] = in
	}
	return out
}

// live counts the bins of inputs, as the collector does.
func live(p *Profile, ins ...[]Input) map[string]float64 {
	c := map[string]float64{}
	for _, group := range ins {
		for _, in := range group {
			for _, b := range Bins(in, p.Concepts) {
				c[b]++
			}
		}
	}
	return c
}

func TestNewProfile(t *testing.T) {
	base := Input{Age: f64(30), Sex: "female", Arrival: "walk-in"}
	with := func(cs ...string) Input { in := base; in.Concepts = cs; return in }
	ref := []Input{with("C1", "C2"), with("C1"), with("C1", "C3"), with("C2"), base}
	p := NewProfile(ref, 2)
	if p.N != 5 || len(p.Concepts) != 2 || !p.Concepts["C1"] || !p.Concepts["C2"] {
		t.Fatalf("profile N %d concepts %v; want 5 and {C1, C2} (the two most frequent)", p.N, p.Concepts)
	}
	// Concept shares are over concept bins: C1 ×3, C2 ×2, other (C3) ×1, none ×1.
	want := map[string]float64{"C1": 3.0 / 7, "C2": 2.0 / 7, "other": 1.0 / 7, "none": 1.0 / 7}
	for b, w := range want {
		if math.Abs(p.Shares["concept"][b]-w) > 1e-12 {
			t.Errorf("concept share %s = %v, want %v", b, p.Shares["concept"][b], w)
		}
	}
	if p.Shares["sex"]["female"] != 1 || p.Shares["sbp"]["missing"] != 1 {
		t.Errorf("shares = %v", p.Shares)
	}
	// A tie in frequency goes to the name that sorts first.
	if q := NewProfile([]Input{with("B"), with("A")}, 1); !q.Concepts["A"] || len(q.Concepts) != 1 {
		t.Errorf("tie: concepts %v, want {A}", q.Concepts)
	}
	if q := NewProfile(nil, 5); q.N != 0 || len(q.Concepts) != 0 {
		t.Errorf("empty profile = %+v", q)
	}
}

func TestPSI(t *testing.T) {
	female := Input{Age: f64(30), Sex: "female", Arrival: "walk-in", Vitals: clinical.Vitals{HR: f64(80)}}
	male := female
	male.Sex = "male"
	other := female
	other.Sex = "unknown"
	noAge := female
	noAge.Age = nil
	half := NewProfile(append(inputs(5, female), inputs(5, male)...), 10)
	allFemale := NewProfile(inputs(10, female), 10)

	tests := []struct {
		name string
		p    *Profile
		live map[string]float64
		want map[string]float64 // features not named: 0
	}{
		{"identical distributions", half, live(half, inputs(50, female), inputs(50, male)), nil},
		// Σ (l − r) ln(l/r) = 0.3 ln 1.6 + (−0.3) ln 0.4 = 0.3 ln 4.
		{"a two-bin shift 50/50 → 80/20", half, live(half, inputs(8, female), inputs(2, male)),
			map[string]float64{"sex": 0.3 * math.Log(4)}},
		// The bin the reference never saw counts with the floor 1e-4.
		{"an unseen bin counts via the floor", allFemale, live(allFemale, inputs(5, female), inputs(5, other)),
			map[string]float64{"sex": (0.5-1)*math.Log(0.5) + (0.5-1e-4)*math.Log(0.5/1e-4)}},
		// Missing values bin as "missing", a bin of their own.
		{"missing values shift the missing bin", allFemale, live(allFemale, inputs(3, female), inputs(1, noAge)),
			map[string]float64{"age": (0.75-1)*math.Log(0.75) + (0.25-1e-4)*math.Log(0.25/1e-4)}},
		// A feature the live counts do not mention is left out, not 0.
		{"features without live counts are absent", half, map[string]float64{"sex=female": 1},
			map[string]float64{"sex": (1-0.5)*math.Log(2) + (1e-4-0.5)*math.Log(1e-4/0.5)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.PSI(tc.live)
			if tc.name == "features without live counts are absent" {
				if len(got) != 1 {
					t.Errorf("PSI = %v, want only sex", got)
				}
			} else if len(got) != len(driftFeatures) {
				t.Errorf("PSI has %d features, want %d: %v", len(got), len(driftFeatures), got)
			}
			for f, v := range got {
				if w := tc.want[f]; math.Abs(v-w) > 1e-9 {
					t.Errorf("PSI[%s] = %v, want %v", f, v, w)
				}
			}
			for f := range tc.want {
				if _, ok := got[f]; !ok {
					t.Errorf("PSI has no %s", f)
				}
			}
		})
	}
}

// The same counts give the same figure (a fixed summation order), so an
// alert cannot flap on the map's iteration order.
func TestPSIDeterministic(t *testing.T) {
	var ref []Input
	for i := range 40 {
		ref = append(ref, Input{Age: f64(float64(i * 2)), Concepts: []string{string(rune('A' + i%7))}})
	}
	p := NewProfile(ref, 3)
	var now []Input
	for i := range 30 {
		now = append(now, Input{Age: f64(float64(i*3 + 1)), Concepts: []string{string(rune('A' + i%5))}})
	}
	counts := live(p, now)
	first := p.PSI(counts)
	for range 50 {
		got := p.PSI(counts)
		for f, v := range first {
			if got[f] != v {
				t.Fatalf("PSI[%s] = %v then %v", f, v, got[f])
			}
		}
	}
}
