package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchKeys returns n distinct client keys, made before the timer starts.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "inference:client-" + strconv.Itoa(i)
	}
	return keys
}

// BenchmarkMemoryAllow: many goroutines, many clients, the real clock.
func BenchmarkMemoryAllow(b *testing.B) {
	for _, nkeys := range []int{1, 1 << 10, 1 << 16} {
		b.Run("keys="+strconv.Itoa(nkeys), func(b *testing.B) {
			m := NewMemory(time.Now, 0)
			l := DefaultZones().limits[ZoneInference]
			keys := benchKeys(nkeys)
			var next atomic.Uint64
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(7919) // each goroutine starts elsewhere
				for pb.Next() {
					i++
					if _, err := m.Allow(ctx, keys[i%uint64(nkeys)], l); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkMemoryAllowFlood: every request a new client into a full table
// of live entries (the overflow path).
func BenchmarkMemoryAllowFlood(b *testing.B) {
	m := NewMemory(time.Now, 1<<12)
	l := Limit{Rate: MinRate}
	keys := benchKeys(1 << 16)
	ctx := context.Background()
	for _, k := range keys[:1<<13] {
		m.Allow(ctx, k, l)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m.Allow(ctx, keys[i%len(keys)], l)
	}
}

// BenchmarkRedisAllow: one check is one EVALSHA round trip to a private
// redis-server on loopback.
func BenchmarkRedisAllow(b *testing.B) {
	srv := startRedis(b)
	keys := benchKeys(1 << 10)
	l := DefaultZones().limits[ZoneInference]
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		r := NewRedis(srv.client(b), "", nil)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := r.Allow(ctx, keys[i%len(keys)], l); err != nil {
				b.Fatal(err)
			}
		}
		if r.Fallbacks() != 0 {
			b.Fatalf("%d checks fell back", r.Fallbacks())
		}
	})
	b.Run("parallel", func(b *testing.B) {
		r := NewRedis(srv.client(b), "", nil)
		var next atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(7919)
			for pb.Next() {
				i++
				if _, err := r.Allow(ctx, keys[i%uint64(len(keys))], l); err != nil {
					b.Fatal(err)
				}
			}
		})
		if r.Fallbacks() != 0 {
			b.Fatalf("%d checks fell back", r.Fallbacks())
		}
	})
}

// BenchmarkRedisAllowDown: the breaker is open; every check is the local
// fallback plus two atomic loads.
func BenchmarkRedisAllowDown(b *testing.B) {
	c := newFastClient("127.0.0.1:" + strconv.Itoa(freePort(b)))
	defer c.Close()
	r := NewRedis(c, "", nil)
	r.breaker.coolDown = time.Hour
	l := DefaultZones().limits[ZoneInference]
	ctx := context.Background()
	r.Allow(ctx, "open the breaker", l)
	if !r.Down() {
		b.Fatal("breaker not open")
	}
	keys := benchKeys(1 << 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		r.Allow(ctx, keys[i%len(keys)], l)
	}
}

// BenchmarkZonesFor: a key's override parsed on every request.
func BenchmarkZonesFor(b *testing.B) {
	z := DefaultZones()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := z.For(ZoneClinical, "inference=600/min burst 50,clinical=120/min burst 10"); err != nil {
			b.Fatal(err)
		}
	}
}
