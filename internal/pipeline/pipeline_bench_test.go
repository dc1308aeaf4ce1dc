package pipeline

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"medserve/internal/batcher"
)

func benchRequest(i int) *Request {
	age, sbp, hr, spo2 := 58.0, 88.0, 118.0, 93.0
	r := &Request{Query: fmt.Sprintf("crushing chest pain radiating to left arm, sweaty #%d", i), Medications: []string{"warfarin", "aspirin", "metoprolol"}}
	r.Patient.Age, r.Patient.Sex = &age, "male"
	r.Vitals.SBP, r.Vitals.HR, r.Vitals.SpO2 = &sbp, &hr, &spo2
	r.Context.NurseAcuity = 3
	return r
}

// BenchmarkInfer is one query through the whole pipeline, cache off,
// model called directly; it also reports the p50 of single calls.
func BenchmarkInfer(b *testing.B) {
	as, k, art := deps(&testing.T{})
	p := New(as, k, DirectPredictor{Model: art.Model}, nil, nil, Config{})
	ctx := context.Background()
	var lat []time.Duration
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		t := time.Now()
		if _, err := p.Infer(ctx, benchRequest(i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
		i++
	}
	sort.Slice(lat, func(a, c int) bool { return lat[a] < lat[c] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}

// BenchmarkInferBatched goes through the dynamic batcher from parallel
// callers, as the server does.
func BenchmarkInferBatched(b *testing.B) {
	as, k, art := deps(&testing.T{})
	pred, err := NewBatchedPredictor(art.Model, batcher.Config{MaxBatchSize: 64, MaxQueueDelay: 100 * time.Microsecond, Workers: 2}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pred.Close()
	p := New(as, k, pred, nil, nil, Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := p.Infer(context.Background(), benchRequest(i)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
