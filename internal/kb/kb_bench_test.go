package kb

import (
	"testing"

	"medserve/internal/clinical"
)

// A realistic 10-drug list of an older patient, typed as clinicians do.
var benchMeds = []string{"warfarin 5 mg", "Lipitor 20mg", "metoprolol tartrate 50 mg tab", "lisinopril", "furosemide 40mg",
	"omeprazole", "sertraline", "aspirin 81 mg", "metformin 500 mg", "amiodarone"}

func BenchmarkCheckInteractions10(b *testing.B) {
	k := loadKB(b)
	b.ReportAllocs()
	for b.Loop() {
		k.CheckInteractions(benchMeds)
	}
}

func BenchmarkDifferential(b *testing.B) {
	k := loadKB(b)
	age := 58.0
	fs := []clinical.Finding{
		{Concept: "chest_pain", Type: clinical.Symptom},
		{Concept: "diaphoresis", Type: clinical.Symptom},
		{Concept: "shortness_of_breath", Type: clinical.Symptom},
		{Concept: "arm", Type: clinical.Anatomy},
		{Concept: "fever", Type: clinical.Symptom, Negated: true},
	}
	b.ReportAllocs()
	for b.Loop() {
		k.Differential(fs, Patient{Age: &age, Sex: "male"}, 5)
	}
}

func BenchmarkLoadKB(b *testing.B) {
	data := dataTree(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(data); err != nil {
			b.Fatal(err)
		}
	}
}
