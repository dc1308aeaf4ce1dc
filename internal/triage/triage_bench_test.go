package triage

import (
	"io/fs"
	"strings"
	"sync"
	"testing"

	"medserve"
	"medserve/internal/clinical"
	"medserve/internal/model"
	"medserve/internal/text"
)

var (
	benchOnce  sync.Once
	benchFeat  *Featurizer
	benchModel model.Model
	benchErr   error
)

// benchSetup trains a small GBT on the KTAS rows once: the benchmarks
// measure serving, not training.
func benchSetup(b *testing.B) (*Featurizer, model.Model) {
	benchOnce.Do(func() {
		data, _ := fs.Sub(medserve.Data, "data")
		eng, err := text.Load(data)
		if err != nil {
			benchErr = err
			return
		}
		raw, _ := fs.ReadFile(data, "triage/safety-floor.tsv")
		rules, err := ParseRules(strings.NewReader(string(raw)), "floor")
		if err != nil {
			benchErr = err
			return
		}
		benchFeat = NewFeaturizer(eng, rules)
		kt, _ := fs.ReadFile(data, "ktas-triage/data.csv")
		cases, _, err := ParseKTAS(strings.NewReader(string(kt)))
		if err != nil {
			benchErr = err
			return
		}
		ex := Examples(benchFeat, cases)
		cfg := DefaultTrainConfig("gbt")
		benchModel, benchErr = cfg.train(cfg.dataset(ex, benchFeat.Spec().Dim()), 1)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFeat, benchModel
}

func benchQuery() clinical.Query {
	age, sbp, hr, spo2 := 58.0, 88.0, 118.0, 93.0
	return clinical.Query{Text: "crushing chest pain radiating to left arm, sweaty", Age: &age, Sex: "male",
		Vitals: clinical.Vitals{SBP: &sbp, HR: &hr, SpO2: &spo2}, AVPU: "alert", Arrival: "ambulance"}
}

// BenchmarkFeaturizePredict is one query at batch 1: text analysis,
// scores, safety floor, features and the model.
func BenchmarkFeaturizePredict(b *testing.B) {
	f, m := benchSetup(b)
	q := benchQuery()
	out := make([]float64, 5)
	b.ReportAllocs()
	for b.Loop() {
		p := f.Prepare(q)
		m.Predict(p.Row, out)
	}
}

// BenchmarkFeaturizePredictBatch64 is 64 different complaints per
// iteration; ns/op divided by 64 is the per-row cost.
func BenchmarkFeaturizePredictBatch64(b *testing.B) {
	f, m := benchSetup(b)
	complaints := []string{"abd pain", "dyspnea", "dizziness", "fever", "ant. chest pain", "headache", "open wound", "general weakness"}
	qs := make([]clinical.Query, 64)
	for i := range qs {
		qs[i] = benchQuery()
		qs[i].Text = complaints[i%len(complaints)]
	}
	out := make([]float64, 5)
	b.ReportAllocs()
	for b.Loop() {
		for i := range qs {
			p := f.Prepare(qs[i])
			m.Predict(p.Row, out)
		}
	}
}
