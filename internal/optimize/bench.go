package optimize

import (
	"fmt"
	goruntime "runtime"
	"testing"

	"medserve/internal/model"
)

// perf is what one runtime measured, in one process, one after another.
type perf struct {
	memory   int64   // heap bytes retained by loading the runtime from its file
	latency  float64 // ns per Predict of one row
	batch64  float64 // ns per 64 consecutive Predict calls
	allocsOp int64   // allocations per Predict
}

// throughput is rows per second at batch 64.
func (p perf) throughput() float64 {
	if p.batch64 <= 0 {
		return 0
	}
	return 64e9 / p.batch64
}

// heapRetained loads a runtime from its bytes and returns the heap it
// keeps: live heap after a full collection, minus the same before. The
// minimum of three loads is taken, which discards transient noise.
func heapRetained(load func() (model.Model, error)) (int64, error) {
	best := int64(-1)
	for range 3 {
		var before, after goruntime.MemStats
		goruntime.GC()
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		m, err := load()
		if err != nil {
			return 0, err
		}
		goruntime.GC()
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		goruntime.KeepAlive(m)
		d := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		if best < 0 || d < best {
			best = d
		}
	}
	return max(best, 0), nil
}

// measure benchmarks m with testing.Benchmark on the given rows: latency
// of one Predict, and the time of a batch of 64 consecutive rows (no
// family has a batched kernel, so a batch is a loop).
func measure(m model.Model, rows []model.Row) (perf, error) {
	if len(rows) == 0 {
		return perf{}, fmt.Errorf("benchmark: no rows")
	}
	out := make([]float64, m.Classes())
	n := len(rows)
	// Warm the scratch pools and caches once, outside the timings.
	for _, r := range rows {
		m.Predict(r, out)
	}
	b1 := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			m.Predict(rows[i%n], out)
		}
	})
	b64 := testing.Benchmark(func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			base := i * 64
			for j := 0; j < 64; j++ {
				m.Predict(rows[(base+j)%n], out)
			}
		}
	})
	if b1.N == 0 || b64.N == 0 {
		return perf{}, fmt.Errorf("benchmark did not run (a Predict panicked?)")
	}
	return perf{latency: float64(b1.T.Nanoseconds()) / float64(b1.N), batch64: float64(b64.T.Nanoseconds()) / float64(b64.N),
		allocsOp: b1.AllocsPerOp()}, nil
}
