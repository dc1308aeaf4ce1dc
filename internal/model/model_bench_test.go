package model

import "testing"

// Benchmarks use the realistic layout: 16,384 hashed n-grams + 100 dense-ish
// features, ≈150–180 non-zeros per row, 5 classes, 1,000 training rows.

func benchPredict(b *testing.B, train func(Dataset) (Model, error)) {
	m, err := train(realistic(1000, 1))
	if err != nil {
		b.Fatal(err)
	}
	rows := realistic(256, 2).X
	out := make([]float64, m.Classes())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m.Predict(rows[i%len(rows)], out)
	}
}

func BenchmarkPredictLogReg(b *testing.B) {
	benchPredict(b, func(d Dataset) (Model, error) { return TrainLogReg(d, LogRegConfig{}) })
}

func BenchmarkPredictMLP(b *testing.B) {
	benchPredict(b, func(d Dataset) (Model, error) { return TrainMLP(d, MLPConfig{Hidden: 64}) })
}

func BenchmarkPredictGBT(b *testing.B) {
	benchPredict(b, func(d Dataset) (Model, error) {
		return TrainGBT(d, GBTConfig{Trees: 100, MaxDepth: 4}) // 500 trees
	})
}

// BenchmarkPredictGBTParallel checks that the pooled scratch scales across goroutines.
func BenchmarkPredictGBTParallel(b *testing.B) {
	m, err := TrainGBT(realistic(1000, 1), GBTConfig{Trees: 100, MaxDepth: 4})
	if err != nil {
		b.Fatal(err)
	}
	rows := realistic(256, 2).X
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]float64, m.Classes())
		for i := 0; pb.Next(); i++ {
			m.Predict(rows[i%len(rows)], out)
		}
	})
}

func benchTrain(b *testing.B, train func(Dataset) (Model, error)) {
	d := realistic(1000, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := train(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrainLogReg(b *testing.B) {
	benchTrain(b, func(d Dataset) (Model, error) { return TrainLogReg(d, LogRegConfig{}) })
}

func BenchmarkTrainMLP(b *testing.B) {
	benchTrain(b, func(d Dataset) (Model, error) { return TrainMLP(d, MLPConfig{Hidden: 64}) })
}

func BenchmarkTrainGBT(b *testing.B) {
	benchTrain(b, func(d Dataset) (Model, error) { return TrainGBT(d, GBTConfig{Trees: 100, MaxDepth: 4}) })
}
