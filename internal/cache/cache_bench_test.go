package cache

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func BenchmarkL1GetHit(b *testing.B) {
	c := NewL1(64<<20, nil)
	k := mustKeyer(b, "k1", []byte(testSecretStr))
	key := k.Key("clinical_decision", "model-v3", "patient-123")
	ctx := context.Background()
	c.Set(ctx, key, ClinicalDecision, make([]byte, 2048))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _ := c.Get(ctx, key); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkL1DoHit(b *testing.B) {
	c := NewL1(64<<20, nil)
	key := mustKeyer(b, "k1", []byte(testSecretStr)).Key("clinical_decision", "patient-123")
	ctx := context.Background()
	c.Set(ctx, key, ClinicalDecision, make([]byte, 2048))
	compute := func(context.Context) ([]byte, error) { return nil, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, hit, _ := c.Do(ctx, key, ClinicalDecision, compute); !hit {
			b.Fatal("miss")
		}
	}
}

func BenchmarkL1GetHitParallel(b *testing.B) {
	c := NewL1(64<<20, nil)
	k := mustKeyer(b, "k1", []byte(testSecretStr))
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = k.Key("clinical_decision", strconv.Itoa(i))
		c.Set(ctx, keys[i], ClinicalDecision, make([]byte, 2048))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Get(ctx, keys[i&1023])
			i++
		}
	})
}

func BenchmarkL1SetParallel(b *testing.B) {
	c := NewL1(64<<20, nil)
	k := mustKeyer(b, "k1", []byte(testSecretStr))
	ctx := context.Background()
	// 64k keys × 2 KB exceed the 64 MiB budget, so eviction runs too.
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = k.Key("clinical_decision", strconv.Itoa(i))
	}
	val := make([]byte, 2048)
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) * 7919
		for pb.Next() {
			c.Set(ctx, keys[i&(1<<16-1)], ClinicalDecision, val)
			i++
		}
	})
}

func BenchmarkKeyer(b *testing.B) {
	k := mustKeyer(b, "k1", []byte(testSecretStr))
	parts := make([]string, 5)
	for i := range parts {
		parts[i] = strings.Repeat(string(rune('a'+i)), 100)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = k.Key(parts...)
	}
}
