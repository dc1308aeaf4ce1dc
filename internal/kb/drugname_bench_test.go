package kb

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"strings"
	"testing"
)

// dnLoadRealGenerics reads the project's drug names (CRESCENDDI concept
// names and PharmacotherapyDB drugs, about 2,350 distinct), lower-cased and
// de-duplicated in file order. It skips the test when the data is absent.
func dnLoadRealGenerics(tb testing.TB) []string {
	tb.Helper()
	mappings, err := os.ReadFile("../../data/crescenddi/derived-csv/drug_mappings.csv")
	if err != nil {
		tb.Skipf("drug names: %v", err)
	}
	drugs, err := os.ReadFile("../../data/pharmacotherapydb/drugs.tsv")
	if err != nil {
		tb.Skipf("drug names: %v", err)
	}
	seen := make(map[string]bool)
	var names []string
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && !seen[s] && len(dnAppendNormal(nil, s)) > 0 {
			seen[s] = true
			names = append(names, s)
		}
	}
	rows, err := csv.NewReader(bytes.NewReader(mappings)).ReadAll()
	if err != nil {
		tb.Fatalf("drug_mappings.csv: %v", err)
	}
	for _, row := range rows[1:] {
		add(row[1])
	}
	for i, line := range strings.Split(string(drugs), "\n") {
		if f := strings.Split(line, "\t"); i > 0 && len(f) > 1 {
			add(f[1])
		}
	}
	return names
}

// dnBenchResolver builds a ~3,000-name resolver: the real generics, padded
// with made-up drug-like names, and a few hundred made-up brands.
func dnBenchResolver(b *testing.B) (*DrugNames, []string) {
	generics := dnLoadRealGenerics(b)
	syllables := []string{"pra", "lo", "vas", "tin", "zo", "mex", "ri", "dol", "pam", "cef", "ox", "nib", "mab", "tra", "sar", "tan"}
	for i := 0; len(generics) < 3000; i++ {
		generics = append(generics, fmt.Sprintf("%s%s%s%s", syllables[i%16], syllables[i/16%16], syllables[i/256%16], syllables[(i*7)%16]))
	}
	brands := map[string]string{"Lipitor": "atorvastatin", "Zocor": "simvastatin", "Coumadin": "warfarin", "Toprol XL": "metoprolol"}
	for i := range 300 {
		brands[fmt.Sprintf("Brand%sx%d", syllables[i%16], i)] = generics[(i*37)%len(generics)]
	}
	d, err := NewDrugNames(generics, brands)
	if err != nil {
		b.Fatal(err)
	}
	return d, generics
}

func dnBenchInputs(b *testing.B, d *DrugNames, inputs []string, want DrugMatch) {
	for _, in := range inputs {
		if got := d.Resolve(in); got.Match != want {
			b.Fatalf("Resolve(%q) = %+v, want %s", in, got, want)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Resolve(inputs[i%len(inputs)])
		i++
	}
}

func BenchmarkResolveExact(b *testing.B) {
	d, generics := dnBenchResolver(b)
	var inputs []string
	for i := 0; i < len(generics) && len(inputs) < 200; i += 11 {
		inputs = append(inputs, generics[i])
	}
	dnBenchInputs(b, d, inputs, MatchExact)
}

func BenchmarkResolveForm(b *testing.B) {
	d, _ := dnBenchResolver(b)
	inputs := []string{
		"Metoprolol Tartrate 50 mg tab",
		"metoprolol succinate ER 25mg",
		"WARFARIN SODIUM 5 MG TABLET",
		"acetaminophen 500mg/5ml oral solution",
		"potassium chloride 20 meq",
		"losartan potassium 50 mg",
		"amlodipine besylate 10 mg po daily",
		"atorvastatin calcium 40 mg tablet",
		"levothyroxine sodium 75 mcg",
		"sertraline hydrochloride 50 mg",
		"magnesium sulfate 2 g iv",
		"omeprazole 20 mg DR capsule",
	}
	dnBenchInputs(b, d, inputs, MatchForm)
}

func BenchmarkResolveFuzzy(b *testing.B) {
	d, _ := dnBenchResolver(b)
	inputs := []string{
		"metoprolal", "warfrin", "simvastatine", "atorvastatn", "amlodipin",
		"lisinoprl", "omeprazol", "sertralin", "levothyroxin", "gabapentine",
		"furosemid", "clopidogrl",
	}
	dnBenchInputs(b, d, inputs, MatchFuzzy)
}

func BenchmarkNewDrugNames(b *testing.B) {
	generics := dnLoadRealGenerics(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewDrugNames(generics, nil); err != nil {
			b.Fatal(err)
		}
	}
}
