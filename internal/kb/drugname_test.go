package kb

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// dnTestGenerics is a small vocabulary with the traps the resolver must
// handle: salts that are generics on their own, multi-word generics whose
// words are also salts, near-identical names and a combination generic.
var dnTestGenerics = []string{
	"metoprolol", "atorvastatin", "simvastatin", "warfarin", "acetaminophen",
	"amoxicillin", "clavulanate", "sulfamethoxazole", "trimethoprim",
	"sulfamethoxazole trimethoprim", "potassium chloride", "magnesium sulfate",
	"sodium bicarbonate", "calcium carbonate", "potassium", "magnesium", "losartan",
	"lisinopril", "amlodipine", "prednisone", "prednisolone", "hydroxyzine",
	"hydralazine", "aspirin", "insulin glargine", "penicillin g", "penicillin v",
	"levothyroxine", "omeprazole", "esomeprazole", "valproate", "metformin",
	"hydrochlorothiazide", "furosemide", "doxycycline", "interferon alfa-2b",
	"fluticasone", "diltiazem", "ibuprofen",
}

var dnTestBrands = map[string]string{
	"Lipitor":   "atorvastatin",
	"ZOCOR":     "simvastatin",
	"coumadin":  "warfarin",
	"Tylenol":   "acetaminophen",
	"Toprol XL": "metoprolol",
	"Lopressor": "metoprolol",
	"Bactrim":   "sulfamethoxazole trimethoprim",
	"Norvasc":   "amlodipine",
	"Cozaar":    "losartan",
	"Synthroid": "levothyroxine",
	"Nexium":    "esomeprazole",
	"Lasix":     "furosemide",
	"Advil":     "ibuprofen",
	"Motrin":    "ibuprofen",
}

func dnTestResolver(t testing.TB) *DrugNames {
	t.Helper()
	d, err := NewDrugNames(dnTestGenerics, dnTestBrands)
	if err != nil {
		t.Fatalf("NewDrugNames: %v", err)
	}
	return d
}

func TestDrugNamesResolve(t *testing.T) {
	d := dnTestResolver(t)
	tests := []struct {
		in      string
		generic string
		match   DrugMatch
		dist    int
	}{
		// exact, whatever the case, spacing and punctuation
		{"metoprolol", "metoprolol", MatchExact, 0},
		{"  METOPROLOL  ", "metoprolol", MatchExact, 0},
		{"Potassium   Chloride", "potassium chloride", MatchExact, 0},
		{"potassium-chloride", "potassium chloride", MatchExact, 0},
		{"interferon alfa 2b", "interferon alfa-2b", MatchExact, 0},
		{"Interferon Alfa-2B", "interferon alfa-2b", MatchExact, 0},
		{"(warfarin)", "warfarin", MatchExact, 0},
		// brands, any case, alone or with doses
		{"Lipitor", "atorvastatin", MatchBrand, 0},
		{"LIPITOR", "atorvastatin", MatchBrand, 0},
		{"zocor", "simvastatin", MatchBrand, 0},
		{"Lipitor 20mg", "atorvastatin", MatchBrand, 0},
		{"toprol xl", "metoprolol", MatchBrand, 0},
		{"Toprol-XL 50 mg tablet", "metoprolol", MatchBrand, 0},
		{"Bactrim DS", "sulfamethoxazole trimethoprim", MatchBrand, 0},
		// doses, forms, release modifiers and salts dropped
		{"Metoprolol Tartrate 50 mg tab", "metoprolol", MatchForm, 0},
		{"metoprolol succinate ER 25mg", "metoprolol", MatchForm, 0},
		{"WARFARIN SODIUM 5 MG TABLET", "warfarin", MatchForm, 0},
		{"acetaminophen 500mg/5ml oral solution", "acetaminophen", MatchForm, 0},
		{"acetaminophen 2.5 mg/ml", "acetaminophen", MatchForm, 0},
		{"amlodipine besylate 10mg po daily", "amlodipine", MatchForm, 0},
		{"doxycycline hyclate 100 mg cap bid", "doxycycline", MatchForm, 0},
		{"levothyroxine sodium 75 mcg", "levothyroxine", MatchForm, 0},
		{"levothyroxine 75 µg", "levothyroxine", MatchForm, 0},
		{"fluticasone propionate 50 mcg/actuation nasal spray", "fluticasone", MatchForm, 0},
		{"omeprazole 20 mg DR cap", "omeprazole", MatchForm, 0},
		{"diltiazem HCl 120 mg CD q24h", "diltiazem", MatchForm, 0},
		{"tab metoprolol 25", "metoprolol", MatchForm, 0},
		{"ibuprofen 400 mg tablet(s) prn", "ibuprofen", MatchForm, 0},
		// never strip a word belonging to a known generic
		{"potassium chloride 20 meq", "potassium chloride", MatchForm, 0},
		{"Potassium Chloride ER 10 mEq tab", "potassium chloride", MatchForm, 0},
		{"magnesium sulfate 2 g IV", "magnesium sulfate", MatchForm, 0},
		{"sodium bicarbonate 650 mg", "sodium bicarbonate", MatchForm, 0},
		{"calcium carbonate 500mg chewable", "calcium carbonate", MatchForm, 0},
		{"penicillin g 1 million units", "penicillin g", MatchForm, 0},
		{"losartan potassium 50 mg", "losartan", MatchForm, 0},
		{"potassium 20 meq", "potassium", MatchForm, 0},
		{"magnesium 400 mg", "magnesium", MatchForm, 0},
		{"sodium valproate 200mg", "valproate", MatchForm, 0},
		{"potassium citrate 10 meq", "potassium", MatchForm, 0},
		{"xyzartan potassium 50 mg", "", MatchUnknown, 0},
		{"metoprolal potassium", "metoprolol", MatchFuzzy, 1},
		// combinations: the whole if known, else the first resolvable part
		{"sulfamethoxazole/trimethoprim", "sulfamethoxazole trimethoprim", MatchExact, 0},
		{"sulfamethoxazole/trimethoprim 800/160 mg", "sulfamethoxazole trimethoprim", MatchForm, 0},
		{"amoxicillin/clavulanate", "amoxicillin", MatchForm, 0},
		{"amoxicillin-clavulanate 875-125 mg", "amoxicillin", MatchForm, 0},
		{"lisinopril + hydrochlorothiazide", "lisinopril", MatchForm, 0},
		{"mystery/warfarin", "warfarin", MatchForm, 0},
		{"amoxicilin/clavulanat", "amoxicillin", MatchFuzzy, 1},
		// misspellings
		{"metoprolal", "metoprolol", MatchFuzzy, 1},
		{"warfrin", "warfarin", MatchFuzzy, 1},
		{"simvastatine", "simvastatin", MatchFuzzy, 1},
		{"Simvastatine 40mg", "simvastatin", MatchFuzzy, 1},
		{"metoprolal tartrate 25 mg", "metoprolol", MatchFuzzy, 1},
		{"amlodpiine", "amlodipine", MatchFuzzy, 1}, // transposition counts once
		{"metoprll", "metoprolol", MatchFuzzy, 2},
		{"hydroxizine", "hydroxyzine", MatchFuzzy, 1},
		{"potasium chloride 20 meq", "potassium chloride", MatchFuzzy, 1},
		{"Lipitr", "atorvastatin", MatchFuzzy, 1}, // misspelt brand
		{"Lipitr 10 mg", "atorvastatin", MatchFuzzy, 1},
		// edit budget by length
		{"wrfrin", "", MatchUnknown, 0},      // 6 letters: 1 edit allowed, 2 needed
		{"metprll", "", MatchUnknown, 0},     // 7 letters: 1 edit allowed
		{"asa", "", MatchUnknown, 0},         // under 4 letters: never fuzzed
		{"amlo", "", MatchUnknown, 0},        // prefixes are not names
		{"prednisolne", "", MatchUnknown, 0}, // 1 edit from prednisone and prednisolone: never guess
		// an edit may not change a number or a one- or two-letter word
		{"interferon alfa 2c", "", MatchUnknown, 0},
		{"interferon alfa 2", "", MatchUnknown, 0},
		{"interferom alfa 2b", "interferon alfa-2b", MatchFuzzy, 1},
		{"penicillin k", "", MatchUnknown, 0},
		// nothing silently dropped
		{"", "", MatchUnknown, 0},
		{"   ", "", MatchUnknown, 0},
		{"50 mg tab", "", MatchUnknown, 0},
		{"sodium", "", MatchUnknown, 0},
		{"unobtainium 5 mg", "", MatchUnknown, 0},
		// odd input
		{"ＭＥＴＯＰＲＯＬＯＬ", "metoprolol", MatchExact, 0},
		{"Métoprolol", "metoprolol", MatchExact, 0},
		{"me\u0301toprolol", "metoprolol", MatchExact, 0},
		{"war\u200bfarin", "warfarin", MatchExact, 0},
		{"\xffwarfarin\xfe", "warfarin", MatchExact, 0},
		{"\x00\x01\x02", "", MatchUnknown, 0},
		{"warfarin\x00", "warfarin", MatchExact, 0},
		{"war\x00farin", "warfarin", MatchFuzzy, 1},
		{"ΜΕΤΟΠΡΟΛΟΛ", "", MatchUnknown, 0},
	}
	for _, tt := range tests {
		got := d.Resolve(tt.in)
		want := DrugResolution{Input: tt.in, Generic: tt.generic, Match: tt.match, Distance: tt.dist}
		if got != want {
			t.Errorf("Resolve(%q) = %+v, want %+v", tt.in, got, want)
		}
	}
}

func TestDrugNamesBrandAlias(t *testing.T) {
	brands := map[string]string{"ASA": "aspirin", "Lipitor": "atorvastatin"}
	d, err := NewDrugNames(dnTestGenerics, brands)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"asa", "ASA", "A.S.A.", "asa 81 mg ec"} {
		got := d.Resolve(in)
		if got.Generic != "aspirin" || got.Match != MatchBrand {
			t.Errorf("Resolve(%q) = %+v, want aspirin by brand", in, got)
		}
	}
	if got := d.Resolve("asb"); got.Match != MatchUnknown {
		t.Errorf("short alias was fuzzed: %+v", got)
	}
}

func TestDrugNamesEveryNameResolvesToItself(t *testing.T) {
	d := dnTestResolver(t)
	for _, g := range dnTestGenerics {
		if got := d.Resolve(g); got.Generic != g || got.Match != MatchExact {
			t.Errorf("Resolve(%q) = %+v", g, got)
		}
	}
	for b, g := range dnTestBrands {
		if got := d.Resolve(b); got.Generic != g || got.Match != MatchBrand {
			t.Errorf("Resolve(%q) = %+v", b, got)
		}
	}
}

func TestDrugNamesLongInput(t *testing.T) {
	d := dnTestResolver(t)
	tests := []struct {
		in    string
		match DrugMatch
	}{
		{strings.Repeat("x", 10<<10), MatchUnknown},
		{strings.Repeat("metoprolol ", 1000), MatchForm},
		{strings.Repeat("\xff", 10<<10), MatchUnknown},
		{strings.Repeat("é", 5<<10), MatchUnknown},
		{strings.Repeat("50 mg ", 2000), MatchUnknown},
		// a misspelling buried in more than dnMaxFuzzyBytes is not fuzzed
		{"metoprolal " + strings.Repeat("zz ", 100), MatchUnknown},
	}
	for _, tt := range tests {
		if got := d.Resolve(tt.in); got.Match != tt.match || got.Input != tt.in {
			t.Errorf("Resolve(%.30q…) = %s %q, want %s", tt.in, got.Match, got.Generic, tt.match)
		}
	}
}

func TestNewDrugNamesErrors(t *testing.T) {
	tests := []struct {
		name     string
		generics []string
		brands   map[string]string
	}{
		{"no generics", nil, nil},
		{"empty generic", []string{"warfarin", ""}, nil},
		{"punctuation-only generic", []string{"warfarin", " -/- "}, nil},
		{"brand to unknown generic", []string{"warfarin"}, map[string]string{"Lipitor": "atorvastatin"}},
		{"brand to empty generic", []string{"warfarin"}, map[string]string{"Coumadin": ""}},
		{"empty brand", []string{"warfarin"}, map[string]string{"  ": "warfarin"}},
		{"brand to a brand", []string{"warfarin"}, map[string]string{"Coumadin": "warfarin", "Jantoven": "coumadin"}},
		{"brands conflict", []string{"warfarin", "metoprolol"}, map[string]string{"Lopressor": "metoprolol", "LOPRESSOR": "warfarin"}},
		{"brand shadows another generic", []string{"warfarin", "metoprolol"}, map[string]string{"Warfarin": "metoprolol"}},
	}
	for _, tt := range tests {
		if d, err := NewDrugNames(tt.generics, tt.brands); err == nil {
			t.Errorf("%s: no error (resolver %v)", tt.name, d != nil)
		}
	}
}

func TestNewDrugNamesAccepts(t *testing.T) {
	d, err := NewDrugNames(
		[]string{"warfarin", "Warfarin", "potassium chloride", "potassium-chloride"},
		map[string]string{"Coumadin": "WARFARIN", "COUMADIN": "warfarin", "warfarin": "warfarin"},
	)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"Coumadin": "warfarin", "warfarin": "warfarin", "potassium chloride": "potassium chloride"} {
		if got := d.Resolve(in); got.Generic != want {
			t.Errorf("Resolve(%q) = %+v, want %q", in, got, want)
		}
	}
	if _, err := NewDrugNames([]string{"warfarin"}, nil); err != nil {
		t.Errorf("nil brands: %v", err)
	}
}

func TestDrugNamesNil(t *testing.T) {
	var d *DrugNames
	if got := d.Resolve("warfarin"); got.Match != MatchUnknown || got.Input != "warfarin" {
		t.Errorf("nil resolver: %+v", got)
	}
}

func TestDrugResolutionJSON(t *testing.T) {
	d := dnTestResolver(t)
	tests := map[string]string{
		"metoprolal": `{"input":"metoprolal","generic":"metoprolol","match":"fuzzy","distance":1}`,
		"Lipitor":    `{"input":"Lipitor","generic":"atorvastatin","match":"brand"}`,
		"zzzz":       `{"input":"zzzz","match":"unknown"}`,
	}
	for in, want := range tests {
		b, err := json.Marshal(d.Resolve(in))
		if err != nil || string(b) != want {
			t.Errorf("json(%q) = %s, %v; want %s", in, b, err, want)
		}
	}
}

func TestDrugNamesConcurrent(t *testing.T) {
	d := dnTestResolver(t)
	inputs := []string{"metoprolal", "Lipitor 20mg", "potassium chloride 20 meq", "warfarin", "zzzz"}
	want := make([]DrugResolution, len(inputs))
	for i, in := range inputs {
		want[i] = d.Resolve(in)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				for i, in := range inputs {
					if got := d.Resolve(in); got != want[i] {
						t.Errorf("concurrent Resolve(%q) = %+v, want %+v", in, got, want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestDnOSA(t *testing.T) {
	tests := []struct {
		a, b  string
		limit int
		want  int
	}{
		{"", "", 2, 0},
		{"abc", "abc", 2, 0},
		{"abc", "acb", 2, 1},
		{"ca", "abc", 3, 3}, // optimal string alignment, not unrestricted Damerau–Levenshtein
		{"kitten", "sitting", 3, 3},
		{"kitten", "sitting", 1, 2}, // capped at limit+1
		{"warfrin", "warfarin", 2, 1},
		{"a", "abcdef", 2, 3},
	}
	for _, tt := range tests {
		if got := dnOSA([]rune(tt.a), []rune(tt.b), tt.limit); got != tt.want {
			t.Errorf("dnOSA(%q, %q, %d) = %d, want %d", tt.a, tt.b, tt.limit, got, tt.want)
		}
	}
}

func TestDnAppendNormal(t *testing.T) {
	tests := map[string]string{
		"  Metoprolol   Tartrate  ": "metoprolol tartrate",
		"500mg/5ml":                 "500mg 5ml",
		"2.5 mg":                    "2.5 mg",
		"tab.":                      "tab",
		"1,000 units":               "1 000 units",
		"St. John's Wort":           "st johns wort",
		"insulin, regular (human)":  "insulin regular human",
		"ＡＢＣ１２３":                    "abc123",
		"Ærøskøbing":                "aeroskobing",
		"10%":                       "10%",
		"a\tb\nc\r\x00d":            "a b c d",
		"\xff\xfe":                  "",
		"x_y+z;w":                   "x y z w",
		"DÉJÀ\u0301":                "deja",
		"\u00a0warfarin\u2003":      "warfarin",
		"ibuprofen\u00ad":           "ibuprofen",
		strings.Repeat("-", 100):    "",
		"interferon alfa-2b":        "interferon alfa 2b",
		"5\u00b5g":                  "5ug",
		"Straße":                    "strasse",
		"İBUPROFEN":                 "ibuprofen",
		"1.5.2":                     "1.5.2",
		".5mg":                      "5mg",
		"A.S.A.":                    "asa",
		"1 tab p.o. b.i.d.":         "1 tab po bid",
		"5.a":                       "5 a",
		"vit. d":                    "vit d",
	}
	for in, want := range tests {
		if got := string(dnAppendNormal(nil, in)); got != want {
			t.Errorf("dnAppendNormal(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDrugNamesRealVocabulary checks the behaviours that matter against the
// project's real drug names, where near neighbours abound.
func TestDrugNamesRealVocabulary(t *testing.T) {
	generics := dnLoadRealGenerics(t)
	d, err := NewDrugNames(generics, map[string]string{"Lipitor": "atorvastatin", "Zocor": "simvastatin"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range generics {
		got := d.Resolve(g)
		if got.Match != MatchExact || string(dnAppendNormal(nil, got.Generic)) != string(dnAppendNormal(nil, g)) {
			t.Errorf("Resolve(%q) = %+v, want itself", g, got)
		}
	}
	tests := []struct{ in, want string }{
		{"metoprolal", "metoprolol"},
		{"warfrin", "warfarin"},
		{"simvastatine", "simvastatin"},
		{"Metoprolol Tartrate 50 mg tab", "metoprolol"},
		{"WARFARIN SODIUM 5 MG TABLET", "warfarin"},
		{"potassium chloride 20 meq", "potassium chloride"},
		{"losartan potassium 50 mg", "losartan"},
		{"magnesium sulfate 2g iv", "magnesium sulfate"},
		{"calcium carbonate 1250 mg", "calcium carbonate"},
		{"Lipitor 20mg", "atorvastatin"},
		{"acetaminophen 500mg/5ml oral solution", "acetaminophen"},
		{"tenofovir disoproxil fumarate 300 mg", "tenofovir disoproxil"},
		{"insulin glargine 100 units/ml pen", "insulin glargine"},
		{"vitamin b 6", ""},
		{"vitamin k", ""},
	}
	for _, tt := range tests {
		if got := d.Resolve(tt.in); got.Generic != tt.want {
			t.Errorf("Resolve(%q) = %+v, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzResolveDrug(f *testing.F) {
	for _, s := range []string{"metoprolol", "Lipitor 20mg", "potasium chloride 20 meq", "\xff\x00", "amoxicilin/clavulanat"} {
		f.Add(s)
	}
	d := dnTestResolver(f)
	vocab := slices.Clone(dnTestGenerics)
	f.Fuzz(func(t *testing.T, in string) {
		got := d.Resolve(in)
		if got.Input != in {
			t.Fatalf("Input changed: %q → %q", in, got.Input)
		}
		switch got.Match {
		case MatchExact, MatchBrand, MatchForm, MatchFuzzy:
			if !slices.Contains(vocab, got.Generic) {
				t.Fatalf("Resolve(%q) = %+v: generic not in vocabulary", in, got)
			}
		case MatchUnknown:
			if got.Generic != "" {
				t.Fatalf("Resolve(%q) = %+v: unknown with a generic", in, got)
			}
		default:
			t.Fatalf("Resolve(%q) = %+v: bad match kind", in, got)
		}
		if (got.Match == MatchFuzzy) != (got.Distance > 0) || got.Distance > 2 {
			t.Fatalf("Resolve(%q) = %+v: bad distance", in, got)
		}
		if again := d.Resolve(in); again != got {
			t.Fatalf("Resolve(%q) not deterministic: %+v then %+v", in, got, again)
		}
		if dnIsASCII(in) {
			up := d.Resolve(strings.ToUpper(in))
			if up.Generic != got.Generic || up.Match != got.Match || up.Distance != got.Distance {
				t.Fatalf("case changed the result: %+v vs %+v", got, up)
			}
		}
	})
}

func TestDnDeletionHashes(t *testing.T) {
	for _, word := range []string{"warfarin", "aabbcc", "métoprolol", "a b", "x", "sulfamethoxazole trimethoprim"} {
		r := []rune(word)
		got := map[uint64]bool{}
		dnDeletionHashes(r, 2, func(h uint64) { got[h] = true })
		want := map[uint64]bool{}
		hashOf := func(v []rune) uint64 {
			var h uint64
			dnDeletionHashes(v, 0, func(x uint64) { h = x })
			return h
		}
		want[hashOf(r)] = true
		for i := range r {
			v1 := slices.Delete(slices.Clone(r), i, i+1)
			want[hashOf(v1)] = true
			for j := range v1 {
				want[hashOf(slices.Delete(slices.Clone(v1), j, j+1))] = true
			}
		}
		if len(got) != len(want) {
			t.Errorf("%q: %d distinct variant hashes, want %d", word, len(got), len(want))
		}
		for h := range want {
			if !got[h] {
				t.Errorf("%q: variant hash %x missing", word, h)
			}
		}
	}
}

// TestDnFuzzyIndexComplete checks the deletion index against a plain scan of
// every name: same answer for many random misspellings of real names.
func TestDnFuzzyIndexComplete(t *testing.T) {
	generics := dnLoadRealGenerics(t)
	brands := map[string]string{}
	for b, g := range dnTestBrands {
		if slices.Contains(generics, g) {
			brands[b] = g
		}
	}
	d, err := NewDrugNames(generics, brands)
	if err != nil {
		t.Fatal(err)
	}
	naive := func(q []rune) (string, int, bool) {
		k := dnMaxEdits(dnLetters(q))
		sig := string(dnSignature(nil, q))
		best, bestGeneric, tied := k+1, "", false
		for _, c := range d.fuzzy {
			limit := min(k, c.maxEdits)
			if c.sig != sig {
				continue
			}
			dist := dnOSA(q, c.runes, limit)
			switch {
			case dist > limit:
			case dist < best:
				best, bestGeneric, tied = dist, c.generic, false
			case dist == best && c.generic != bestGeneric:
				tied = true
			}
		}
		if best > k || tied {
			return "", 0, false
		}
		return bestGeneric, best, true
	}
	rng := rand.New(rand.NewPCG(1, 2))
	letters := []rune("abcdefghijklmnopqrstuvwxyz ")
	checked := 0
	for n := 0; n < 1500; n++ {
		q := slices.Clone(d.fuzzy[rng.IntN(len(d.fuzzy))].runes)
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(q) + 1)
			switch op := rng.IntN(4); {
			case op == 0 && i < len(q):
				q = slices.Delete(q, i, i+1)
			case op == 1:
				q = slices.Insert(q, i, letters[rng.IntN(len(letters))])
			case op == 2 && i < len(q):
				q[i] = letters[rng.IntN(len(letters))]
			case op == 3 && i+1 < len(q):
				q[i], q[i+1] = q[i+1], q[i]
			}
		}
		if len(q) == 0 || len(q) > dnMaxFuzzyRunes || q[0] == ' ' || q[len(q)-1] == ' ' || strings.Contains(string(q), "  ") {
			continue // not a normalised query
		}
		checked++
		g1, d1, ok1 := d.fuzzyLookup([]byte(string(q)))
		g2, d2, ok2 := naive(q)
		if g1 != g2 || d1 != d2 || ok1 != ok2 {
			t.Errorf("fuzzy %q: index (%q, %d, %v), scan (%q, %d, %v)", string(q), g1, d1, ok1, g2, d2, ok2)
		}
	}
	if checked < 1000 {
		t.Errorf("only %d queries checked", checked)
	}
}

func dnIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
