package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injected clock, safe for concurrent use; it only moves
// when the test says so.
type fakeClock struct {
	base time.Time
	ns   atomic.Int64
}

func newFakeClock() *fakeClock {
	return &fakeClock{base: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time          { return c.base.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func mustLimit(tb testing.TB, s string) Limit {
	tb.Helper()
	l, err := ParseLimit(s)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func mustAllow(tb testing.TB, lim Limiter, key string, l Limit) Decision {
	tb.Helper()
	d, err := lim.Allow(context.Background(), key, l)
	if err != nil {
		tb.Fatalf("Allow(%q, %v): %v", key, l, err)
	}
	if d.Limit != l {
		tb.Fatalf("Decision.Limit = %+v; want %+v", d.Limit, l)
	}
	return d
}

// TestMemoryBurstThenRate checks the nginx mapping: a fresh client gets
// exactly Burst+1 requests at once, then exactly one every T, and an idle
// client regains its whole budget after (Burst+1)·T.
func TestMemoryBurstThenRate(t *testing.T) {
	for _, spec := range []string{"60/min burst 10", "30/min burst 5", "10/min", "300/min burst 20", "10/s", "5/min burst 0", "7/s burst 2"} {
		t.Run(spec, func(t *testing.T) {
			l := mustLimit(t, spec)
			it, _, _ := l.interval()
			T := time.Duration(it)
			clk := newFakeClock()
			m := NewMemory(clk.Now, 0)

			// Burst+1 at once, with Remaining counting down and Reset growing.
			for i := range l.Burst + 1 {
				d := mustAllow(t, m, "c", l)
				want := Decision{Allowed: true, Limit: l, Remaining: l.Burst - i, Reset: time.Duration(i+1) * T}
				if d != want {
					t.Fatalf("request %d: %+v; want %+v", i+1, d, want)
				}
			}
			d := mustAllow(t, m, "c", l)
			want := Decision{Limit: l, RetryAfter: T, Reset: time.Duration(l.Burst+1) * T}
			if d != want {
				t.Fatalf("request %d: %+v; want %+v", l.Burst+2, d, want)
			}

			// Then one per T: rejected 1 ns early, allowed on time, once.
			for p := range 5 {
				clk.Advance(T - 1)
				if d := mustAllow(t, m, "c", l); d.Allowed || d.RetryAfter != 1 {
					t.Fatalf("period %d, 1 ns early: %+v", p, d)
				}
				clk.Advance(1)
				if d := mustAllow(t, m, "c", l); !d.Allowed || d.Remaining != 0 || d.Reset != time.Duration(l.Burst+1)*T {
					t.Fatalf("period %d, on time: %+v", p, d)
				}
				if d := mustAllow(t, m, "c", l); d.Allowed || d.RetryAfter != T {
					t.Fatalf("period %d, second request: %+v", p, d)
				}
			}

			// Idle for the whole reset: the full budget again, and no more.
			clk.Advance(time.Duration(l.Burst+1) * T)
			n := 0
			for range l.Burst + 10 {
				if mustAllow(t, m, "c", l).Allowed {
					n++
				}
			}
			if n != l.Burst+1 {
				t.Fatalf("after idling: %d allowed; want %d", n, l.Burst+1)
			}
		})
	}
}

func TestMemoryPartialRefill(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(clk.Now, 0)
	l := mustLimit(t, "60/min burst 10")
	for range 11 {
		mustAllow(t, m, "c", l)
	}
	clk.Advance(3*time.Second + 500*time.Millisecond) // 3.5 requests' worth back
	d := mustAllow(t, m, "c", l)
	want := Decision{Allowed: true, Limit: l, Remaining: 2, Reset: 8*time.Second + 500*time.Millisecond}
	if d != want {
		t.Fatalf("%+v; want %+v", d, want)
	}
	mustAllow(t, m, "c", l)
	mustAllow(t, m, "c", l)
	d = mustAllow(t, m, "c", l)
	want = Decision{Limit: l, RetryAfter: 500 * time.Millisecond, Reset: 10*time.Second + 500*time.Millisecond}
	if d != want {
		t.Fatalf("%+v; want %+v", d, want)
	}
}

func TestMemoryKeysIndependent(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(clk.Now, 0)
	inf := mustLimit(t, "60/min burst 10")
	batch := mustLimit(t, "10/min")
	for range 20 {
		mustAllow(t, m, "inference:a", inf)
	}
	if mustAllow(t, m, "inference:a", inf).Allowed {
		t.Fatal("a's budget not spent")
	}
	tests := []struct {
		key  string
		l    Limit
		want int
	}{
		{"inference:b", inf, 11},
		{"batch:a", batch, 1},
		{"inference:a ", inf, 11},
		{"", inf, 11},
	}
	for _, tt := range tests {
		n := 0
		for range 30 {
			if mustAllow(t, m, tt.key, tt.l).Allowed {
				n++
			}
		}
		if n != tt.want {
			t.Errorf("key %q: %d allowed; want %d", tt.key, n, tt.want)
		}
	}
}

func TestMemoryInvalidLimit(t *testing.T) {
	m := NewMemory(nil, 0)
	for _, l := range []Limit{{}, {Rate: 1, Burst: -1}, {Rate: 1e7}} {
		if _, err := m.Allow(context.Background(), "k", l); !errors.Is(err, ErrInvalidLimit) {
			t.Errorf("Allow(%+v) = %v; want ErrInvalidLimit", l, err)
		}
	}
	if m.Len() != 0 {
		t.Fatal("an invalid limit was tracked")
	}
}

// TestMemoryFloodBounded floods a small table with distinct keys: memory
// stays bounded, the flood does not reset a tracked client's budget, the
// untracked keys are limited together, and once the flood's entries expire
// new keys are tracked again.
func TestMemoryFloodBounded(t *testing.T) {
	for _, maxKeys := range []int{1, 7, 64, 100, 1000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			clk := newFakeClock()
			m := NewMemory(clk.Now, maxKeys)
			shards := len(m.shards)
			victim := mustLimit(t, "1/h burst 2")
			flood := mustLimit(t, "1/min")

			for range 3 {
				mustAllow(t, m, "victim", victim)
			}
			const floodKeys = 20_000
			allowed := 0
			for i := range floodKeys {
				if mustAllow(t, m, "flood-"+strconv.Itoa(i), flood).Allowed {
					allowed++
				}
				if i%1000 == 0 && m.Len() > maxKeys {
					t.Fatalf("Len = %d > maxKeys %d", m.Len(), maxKeys)
				}
				if i%97 == 0 {
					clk.Advance(time.Millisecond) // let sweeps run; nothing expires yet
				}
			}
			if n := m.Len(); n > maxKeys {
				t.Fatalf("Len = %d > maxKeys %d", n, maxKeys)
			}
			// Tracked keys get their own budget, the rest one per shard.
			if limit := maxKeys + shards*flood.Capacity(); allowed > limit {
				t.Fatalf("flood of %d keys: %d allowed; want ≤ %d", floodKeys, allowed, limit)
			}
			if d := mustAllow(t, m, "victim", victim); d.Allowed {
				t.Fatalf("the flood reset the victim's budget: %+v", d)
			}

			// The flood's entries expire; the victim's (TAT 3 h) does not.
			clk.Advance(2 * time.Minute)
			if d := mustAllow(t, m, "victim", victim); d.Allowed {
				t.Fatalf("victim allowed after the flood expired: %+v", d)
			}
			n := 0
			for range 5 {
				if mustAllow(t, m, "newcomer", flood).Allowed {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("newcomer: %d of 5 allowed; want 1", n)
			}
			if m.Len() > maxKeys {
				t.Fatalf("Len = %d > maxKeys %d", m.Len(), maxKeys)
			}
			// Its shard swept the flood out: it is tracked, unless the
			// victim fills a one-entry shard.
			s := m.shard("newcomer")
			_, tracked := s.tat["newcomer"]
			_, victimThere := s.tat["victim"]
			if room := s.max > 1 || !victimThere; tracked != room {
				t.Fatalf("newcomer tracked = %v; want %v", tracked, room)
			}
		})
	}
}

// TestMemoryOverflowLimited fills the table with live entries: a new key is
// not tracked, and it is limited (by its shard's overflow bucket), not
// treated as fresh on every request.
func TestMemoryOverflowLimited(t *testing.T) {
	clk := newFakeClock()
	const maxKeys = 64
	m := NewMemory(clk.Now, maxKeys)
	l := mustLimit(t, "60/min burst 3")
	for i := 0; m.Len() < maxKeys; i++ {
		mustAllow(t, m, "fill-"+strconv.Itoa(i), l)
		if i > 100_000 {
			t.Fatal("table never filled")
		}
	}
	clk.Advance(time.Second) // past the sweep gap; every TAT is still ahead
	n := 0
	for range 20 {
		if mustAllow(t, m, "new", l).Allowed {
			n++
		}
	}
	if n != l.Capacity() {
		t.Fatalf("untracked key: %d of 20 allowed; want %d", n, l.Capacity())
	}
	if m.Len() != maxKeys {
		t.Fatalf("Len = %d; want %d", m.Len(), maxKeys)
	}
}

// TestMemoryConcurrent hammers one key and many keys from many goroutines
// at one instant: exactly Burst+1 allowed per key.
func TestMemoryConcurrent(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(clk.Now, 0)
	l := mustLimit(t, "60/min burst 10")
	const keys, workers, perWorker = 50, 16, 200
	var allowed [keys]atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				k := (i + w) % keys
				d, err := m.Allow(context.Background(), "k"+strconv.Itoa(k), l)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range allowed {
		if n := allowed[k].Load(); n != int64(l.Capacity()) {
			t.Errorf("key %d: %d allowed; want %d", k, n, l.Capacity())
		}
	}
}

// TestSimulateZones sends, per default zone, requests as fast as possible
// (each rejection is followed by a retry at the exact moment it would be
// allowed, which is what an infinitely fast client achieves) and counts the
// allowed ones in the first second and the first minute.
func TestSimulateZones(t *testing.T) {
	z := DefaultZones()
	for _, zone := range z.Names() {
		l, _ := z.Limit(zone)
		it, _, _ := l.interval()
		T := time.Duration(it)
		clk := newFakeClock()
		m := NewMemory(clk.Now, 0)
		var elapsed time.Duration
		firstSecond, firstMinute := 0, 0
		for elapsed < time.Minute {
			d := mustAllow(t, m, zone+":client", l)
			if !d.Allowed {
				clk.Advance(d.RetryAfter)
				elapsed += d.RetryAfter
				continue
			}
			if elapsed < time.Second {
				firstSecond++
			}
			firstMinute++
		}
		// Burst at t=0, then one at each of T, 2T, … inside the window.
		ceilDiv := func(w time.Duration) int { return int((w + T - 1) / T) }
		wantSecond, wantMinute := l.Burst+ceilDiv(time.Second), l.Burst+ceilDiv(time.Minute)
		if firstSecond != wantSecond || firstMinute != wantMinute {
			t.Errorf("%s: %d in the first second, %d in the first minute; want %d, %d", zone, firstSecond, firstMinute, wantSecond, wantMinute)
		}
		t.Logf("zone %-9s %-18s first second: %3d allowed, first minute: %3d allowed", zone, l.String(), firstSecond, firstMinute)
	}
}
