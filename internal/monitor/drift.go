package monitor

import (
	"math"
	"slices"
	"sort"
	"strings"

	"medserve/internal/clinical"
)

// Input is what drift looks at in one query: the key inputs the model
// reads, whether they are missing, and the complaint's affirmed concepts.
type Input struct {
	Age      *float64
	Sex      string
	Arrival  string
	Vitals   clinical.Vitals
	Concepts []string // affirmed finding codes
}

// InputOf takes the drift inputs from a query and the findings found in it.
func InputOf(q clinical.Query, findings []clinical.Finding) Input {
	in := Input{Age: q.Age, Sex: q.Sex, Arrival: q.Arrival, Vitals: q.Vitals}
	for _, f := range findings {
		if f.Affirmed() {
			in.Concepts = append(in.Concepts, f.Code)
		}
	}
	return in
}

// band is one bin of a numeric input: values below Upper (and at or
// above the previous band's Upper).
type band struct {
	upper float64
	name  string
}

// Clinical bands, so a shift the PSI sees is one a clinician would name.
var numericBands = map[string][]band{
	"age":    {{18, "<18"}, {40, "18-39"}, {65, "40-64"}, {80, "65-79"}, {math.Inf(1), ">=80"}},
	"sbp":    {{90, "<90"}, {100, "90-99"}, {140, "100-139"}, {180, "140-179"}, {math.Inf(1), ">=180"}},
	"hr":     {{50, "<50"}, {60, "50-59"}, {100, "60-99"}, {120, "100-119"}, {math.Inf(1), ">=120"}},
	"rr":     {{12, "<12"}, {21, "12-20"}, {25, "21-24"}, {math.Inf(1), ">=25"}},
	"temp_c": {{36, "<36"}, {38, "36-37.9"}, {39, "38-38.9"}, {math.Inf(1), ">=39"}},
	"spo2":   {{92, "<92"}, {96, "92-95"}, {math.Inf(1), ">=96"}},
}

// driftFeatures in a fixed order (reports, tests).
var driftFeatures = []string{"age", "sex", "arrival", "sbp", "hr", "rr", "temp_c", "spo2", "concept"}

func numericBin(feature string, v *float64) string {
	if v == nil {
		return "missing"
	}
	for _, b := range numericBands[feature] {
		if *v < b.upper {
			return b.name
		}
	}
	return "missing" // NaN
}

// binName is "feature=bin" for the fixed bins without building a string
// (Bins runs on every answer); other names are concatenated.
func binName(feature, bin string) string {
	if n, ok := fixedBinNames[feature+"\x00"+bin]; ok {
		return n
	}
	return feature + "=" + bin
}

var fixedBinNames = func() map[string]string {
	m := map[string]string{}
	add := func(f, b string) { m[f+"\x00"+b] = f + "=" + b }
	for f, bands := range numericBands {
		add(f, "missing")
		for _, b := range bands {
			add(f, b.name)
		}
	}
	for _, f := range []string{"sex", "arrival"} {
		for _, b := range []string{"missing", "other", "female", "male", "walk-in", "ambulance", "private-vehicle"} {
			add(f, b)
		}
	}
	add("concept", "none")
	add("concept", "other")
	return m
}()

func categoryBin(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "":
		return "missing"
	case "female", "male", "walk-in", "ambulance", "private-vehicle":
		return s
	}
	return "other"
}

// Bins names the bins one input falls in, as "feature=bin"; concepts
// outside known count as "other", none at all as "none".
func Bins(in Input, known map[string]bool) []string {
	out := make([]string, 0, 8+len(in.Concepts))
	out = append(out,
		binName("age", numericBin("age", in.Age)),
		binName("sex", categoryBin(in.Sex)),
		binName("arrival", categoryBin(in.Arrival)),
		binName("sbp", numericBin("sbp", in.Vitals.SBP)),
		binName("hr", numericBin("hr", in.Vitals.HR)),
		binName("rr", numericBin("rr", in.Vitals.RR)),
		binName("temp_c", numericBin("temp_c", in.Vitals.TempC)),
		binName("spo2", numericBin("spo2", in.Vitals.SpO2)),
	)
	if len(in.Concepts) == 0 {
		return append(out, "concept=none")
	}
	seen := map[string]bool{}
	for _, c := range in.Concepts {
		b := "other"
		if known[c] {
			b = c
		}
		if !seen[b] {
			seen[b] = true
			out = append(out, "concept="+b)
		}
	}
	return out
}

// Profile is the reference distribution of the inputs: the training data's.
type Profile struct {
	N        int                           `json:"n"`
	Shares   map[string]map[string]float64 `json:"shares"` // feature → bin → share
	Concepts map[string]bool               `json:"-"`      // the concepts binned on their own
}

// NewProfile bins the reference inputs; the topConcepts most frequent
// complaint concepts get a bin each, the rest share "other".
func NewProfile(inputs []Input, topConcepts int) *Profile {
	freq := map[string]int{}
	for _, in := range inputs {
		for _, c := range in.Concepts {
			freq[c]++
		}
	}
	names := make([]string, 0, len(freq))
	for c := range freq {
		names = append(names, c)
	}
	sort.Slice(names, func(i, j int) bool {
		if freq[names[i]] != freq[names[j]] {
			return freq[names[i]] > freq[names[j]]
		}
		return names[i] < names[j]
	})
	p := &Profile{N: len(inputs), Concepts: map[string]bool{}}
	for _, c := range names[:max(0, min(topConcepts, len(names)))] {
		p.Concepts[c] = true
	}
	counts := map[string]float64{}
	for _, in := range inputs {
		for _, b := range Bins(in, p.Concepts) {
			counts[b]++
		}
	}
	p.Shares = shares(counts)
	return p
}

// shares turns "feature=bin" counts into each feature's distribution.
func shares(counts map[string]float64) map[string]map[string]float64 {
	totals := map[string]float64{}
	for k, n := range counts {
		f, _, _ := strings.Cut(k, "=")
		totals[f] += n
	}
	out := map[string]map[string]float64{}
	for k, n := range counts {
		f, b, _ := strings.Cut(k, "=")
		if out[f] == nil {
			out[f] = map[string]float64{}
		}
		out[f][b] = n / totals[f]
	}
	return out
}

// psiFloor stands in for an empty bin: PSI is undefined at zero share, and
// a bin the reference never saw must still count as a large shift.
const psiFloor = 1e-4

// PSI is the population stability index of each feature between the
// reference and live "feature=bin" counts: Σ (live − ref) · ln(live / ref).
// Conventionally < 0.1 is stable, 0.1–0.25 a moderate shift, > 0.25 a
// major one.
func (p *Profile) PSI(live map[string]float64) map[string]float64 {
	cur := shares(live)
	out := map[string]float64{}
	for _, f := range driftFeatures {
		ref, now := p.Shares[f], cur[f]
		if len(now) == 0 || len(ref) == 0 {
			continue
		}
		bins := map[string]bool{}
		for b := range ref {
			bins[b] = true
		}
		for b := range now {
			bins[b] = true
		}
		keys := make([]string, 0, len(bins))
		for b := range bins {
			keys = append(keys, b)
		}
		slices.Sort(keys) // a fixed summation order: the same counts give the same figure
		psi := 0.0
		for _, b := range keys {
			r, l := max(ref[b], psiFloor), max(now[b], psiFloor)
			psi += (l - r) * math.Log(l/r)
		}
		out[f] = psi
	}
	return out
}
