package batcher

import (
	"context"
	"sync"
	"testing"
	"time"
)

// trivialRun is a RunFunc that costs almost nothing, so the benchmarks
// measure the batcher's own overhead. Its output slice is reused: the
// batcher copies each output out before the next batch can run (one worker).
func trivialRun() RunFunc[int, int] {
	var mu sync.Mutex
	var out []int
	return func(_ context.Context, in []int) ([]int, error) {
		mu.Lock()
		defer mu.Unlock()
		out = append(out[:0], in...)
		return out, nil
	}
}

// BenchmarkSubmitParallel reports ns and allocations per request with many
// concurrent clients (64 per GOMAXPROCS, so that batches can fill).
func BenchmarkSubmitParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"batch64", Config{MaxBatchSize: 64, MaxQueueDelay: 100 * time.Microsecond}},
		{"batch1", Config{MaxBatchSize: 1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			obs := &countingObserver{}
			bt, err := New(bc.cfg, trivialRun(), obs)
			if err != nil {
				b.Fatal(err)
			}
			defer bt.Close()
			b.ReportAllocs()
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				i := 0
				for pb.Next() {
					i++
					if out, err := bt.Submit(ctx, i%3, i); err != nil || out != i {
						b.Errorf("Submit(%d) = %d, %v", i, out, err)
						return
					}
				}
			})
			b.StopTimer()
			if n := obs.batches.Load(); n > 0 {
				b.ReportMetric(float64(obs.batched.Load())/float64(n), "req/batch")
			}
		})
	}
}

// BenchmarkSubmitSerial is one client at a time with batching off: the
// latency the batcher adds to an unloaded request (two goroutine hand-offs).
func BenchmarkSubmitSerial(b *testing.B) {
	bt, err := New(Config{MaxBatchSize: 1}, trivialRun(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	b.ReportAllocs()
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := bt.Submit(ctx, 0, i); err != nil {
			b.Fatal(err)
		}
	}
}
