package spool

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// benchDir is where benchmarks put their spool: SPOOL_BENCH_DIR if set (to
// measure the disk the server will use), else a temporary directory. On a
// tmpfs fsync is free and the figures mean little.
func benchDir(b *testing.B) string {
	if d := os.Getenv("SPOOL_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "spool-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// BenchmarkAppend measures durable appends of 600-byte records (a typical
// query record) from 1, 16 and 64 concurrent appenders, reporting records/s
// and how well group commit shares fsyncs.
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 16, 64} {
		b.Run(fmt.Sprint("appenders=", appenders), func(b *testing.B) {
			l, err := Open(benchDir(b), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, 600)
			var left atomic.Int64
			left.Store(int64(b.N))
			before := l.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range appenders {
				wg.Go(func() {
					ctx := context.Background()
					for left.Add(-1) >= 0 {
						if _, err := l.Append(ctx, rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			syncs := l.Stats().Syncs - before.Syncs
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(syncs)/float64(b.N), "fsyncs/record")
			b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "records/fsync")
		})
	}
}

// BenchmarkRead measures the flusher's side: reading a backlog of 600-byte
// records in batches of 500.
func BenchmarkRead(b *testing.B) {
	l, err := Open(benchDir(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const backlog = 20000
	rec := make([]byte, 600)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range backlog / 64 {
				if _, err := l.Append(context.Background(), rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	records := 0
	for b.Loop() {
		for from := int64(1); from <= l.Last(); {
			recs, err := l.Read(from, 500, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			from = recs[len(recs)-1].Pos + 1
			records += len(recs)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
