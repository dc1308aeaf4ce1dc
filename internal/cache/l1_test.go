package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// countObserver counts events per kind.
type countObserver struct {
	hits, misses, evicts atomic.Int64
}

func (o *countObserver) Hit(level string)   { o.hits.Add(1) }
func (o *countObserver) Miss(level string)  { o.misses.Add(1) }
func (o *countObserver) Evict(level string) { o.evicts.Add(1) }

func mustGet(t *testing.T, c *L1, key string) ([]byte, bool) {
	t.Helper()
	v, ok, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v, ok
}

func mustSet(t *testing.T, c *L1, key string, class Class, val []byte) {
	t.Helper()
	if err := c.Set(context.Background(), key, class, val); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func TestClassTTL(t *testing.T) {
	tests := []struct {
		class Class
		want  time.Duration
	}{
		{PatientSummary, 3600 * time.Second},
		{ClinicalDecision, 1800 * time.Second},
		{SymptomPatterns, 7200 * time.Second},
		{ComplianceAudit, 900 * time.Second},
		{PerformanceMetrics, 300 * time.Second},
		{Class("unknown"), 0},
		{Class(""), 0},
		{Class("Patient_Summary"), 0},
	}
	for _, tt := range tests {
		if got := tt.class.TTL(); got != tt.want {
			t.Errorf("%q.TTL() = %v, want %v", tt.class, got, tt.want)
		}
		if got := tt.class.Known(); got != (tt.want > 0) {
			t.Errorf("%q.Known() = %v", tt.class, got)
		}
	}
}

func TestL1TTLPerClass(t *testing.T) {
	classes := []Class{PatientSummary, ClinicalDecision, SymptomPatterns, ComplianceAudit, PerformanceMetrics}
	for _, class := range classes {
		t.Run(string(class), func(t *testing.T) {
			clk := newFakeClock()
			c := NewL1(1<<20, clk.Now)
			mustSet(t, c, "k", class, []byte("v"))

			clk.Advance(class.TTL() - time.Second)
			if v, ok := mustGet(t, c, "k"); !ok || string(v) != "v" {
				t.Fatalf("at TTL-1s: got %q, %v; want alive", v, ok)
			}
			// Do must agree with Get about liveness.
			v, hit, err := c.Do(context.Background(), "k", class, func(context.Context) ([]byte, error) {
				return []byte("recomputed"), nil
			})
			if err != nil || !hit || string(v) != "v" {
				t.Fatalf("Do at TTL-1s: %q, hit=%v, err=%v", v, hit, err)
			}

			clk.Advance(2 * time.Second) // TTL+1s
			if v, ok := mustGet(t, c, "k"); ok {
				t.Fatalf("at TTL+1s: got %q; want expired", v)
			}
			if c.Len() != 0 || c.Bytes() != 0 {
				t.Fatalf("expired entry not cleaned on access: len=%d bytes=%d", c.Len(), c.Bytes())
			}
		})
	}
}

func TestL1ExpiresExactlyAtTTL(t *testing.T) {
	clk := newFakeClock()
	c := NewL1(1<<20, clk.Now)
	mustSet(t, c, "k", PerformanceMetrics, []byte("v"))
	clk.Advance(PerformanceMetrics.TTL())
	if _, ok := mustGet(t, c, "k"); ok {
		t.Fatal("entry alive at exactly its TTL; want expired")
	}
}

func TestL1UnknownClassNotCached(t *testing.T) {
	c := NewL1(1<<20, nil)
	mustSet(t, c, "k", Class("patient_sumary"), []byte("v"))
	if _, ok := mustGet(t, c, "k"); ok {
		t.Fatal("unknown class was cached")
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d, want 0", c.Len())
	}
	// Do still computes (and deduplicates) but stores nothing.
	var n atomic.Int32
	for range 2 {
		_, hit, err := c.Do(context.Background(), "k", Class("nope"), func(context.Context) ([]byte, error) {
			n.Add(1)
			return []byte("v"), nil
		})
		if err != nil || hit {
			t.Fatalf("Do: hit=%v err=%v", hit, err)
		}
	}
	if n.Load() != 2 {
		t.Fatalf("computations = %d, want 2", n.Load())
	}
	// A known value is dropped when overwritten with an uncacheable class:
	// the newest write wins, even if it cannot be stored.
	mustSet(t, c, "k", PatientSummary, []byte("old"))
	mustSet(t, c, "k", Class("nope"), []byte("new"))
	if _, ok := mustGet(t, c, "k"); ok {
		t.Fatal("stale value survived an uncacheable overwrite")
	}
}

func TestL1LRUEvictionByBytes(t *testing.T) {
	obs := &countObserver{}
	// 100 bytes → one shard, so LRU order is exact. Each entry is 1+19 bytes.
	c := NewL1(100, nil)
	c.SetObserver(obs)
	val := bytes.Repeat([]byte("x"), 19)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		mustSet(t, c, k, ClinicalDecision, val)
	}
	if c.Len() != 5 || c.Bytes() != 100 {
		t.Fatalf("len=%d bytes=%d, want 5, 100", c.Len(), c.Bytes())
	}
	mustGet(t, c, "a") // a becomes most recent; b is now the oldest
	mustSet(t, c, "f", ClinicalDecision, val)

	want := map[string]bool{"a": true, "b": false, "c": true, "d": true, "e": true, "f": true}
	for k, alive := range want {
		if _, ok := mustGet(t, c, k); ok != alive {
			t.Errorf("%q alive=%v, want %v", k, ok, alive)
		}
	}
	if got := obs.evicts.Load(); got != 1 {
		t.Errorf("evictions = %d, want 1", got)
	}

	// A larger value evicts as many old entries as it needs.
	mustSet(t, c, "g", ClinicalDecision, bytes.Repeat([]byte("y"), 59)) // 60 bytes
	if c.Bytes() > 100 {
		t.Fatalf("bytes = %d, over budget", c.Bytes())
	}
	if _, ok := mustGet(t, c, "g"); !ok {
		t.Fatal("new entry was evicted")
	}
	if c.Len() != 3 { // g (60) + the two most recent 20-byte entries
		t.Fatalf("len = %d, want 3", c.Len())
	}

	// Overwriting an entry updates the byte count instead of adding to it.
	mustSet(t, c, "g", ClinicalDecision, []byte("z"))
	if _, ok := mustGet(t, c, "g"); !ok || c.Bytes() != 2+40 {
		t.Fatalf("after overwrite bytes = %d, want 42", c.Bytes())
	}
}

func TestL1OversizeValueSkipped(t *testing.T) {
	c := NewL1(100, nil)
	mustSet(t, c, "small", PatientSummary, []byte("v"))
	mustSet(t, c, "big", PatientSummary, make([]byte, 100)) // 3+100 > 100
	if _, ok := mustGet(t, c, "big"); ok {
		t.Fatal("oversize value was cached")
	}
	if _, ok := mustGet(t, c, "small"); !ok {
		t.Fatal("oversize value evicted an existing entry")
	}
	// An oversize overwrite drops the older, smaller value.
	mustSet(t, c, "small", PatientSummary, make([]byte, 200))
	if _, ok := mustGet(t, c, "small"); ok {
		t.Fatal("stale value survived an oversize overwrite")
	}
	// Exactly the budget fits.
	mustSet(t, c, "k", PatientSummary, make([]byte, 99))
	if _, ok := mustGet(t, c, "k"); !ok {
		t.Fatal("value of exactly the budget was not cached")
	}
	// A zero budget caches nothing.
	z := NewL1(0, nil)
	mustSet(t, z, "k", PatientSummary, nil)
	if z.Len() != 0 {
		t.Fatal("zero-budget cache stored an entry")
	}
}

func TestL1Sharding(t *testing.T) {
	tests := []struct {
		maxBytes int64
		shards   int
	}{
		{-1, 1}, {0, 1}, {1 << 20, 1}, {2 << 20, 2}, {5 << 20, 4}, {16 << 20, 16}, {1 << 30, 16},
	}
	for _, tt := range tests {
		if got := len(NewL1(tt.maxBytes, nil).shards); got != tt.shards {
			t.Errorf("NewL1(%d): %d shards, want %d", tt.maxBytes, got, tt.shards)
		}
	}
	// With many shards the whole budget is still respected.
	c := NewL1(16<<20, nil)
	val := make([]byte, 4096)
	for i := range 8000 {
		mustSet(t, c, fmt.Sprintf("key-%d", i), PatientSummary, val)
	}
	if c.Bytes() > 16<<20 {
		t.Fatalf("bytes = %d over budget %d", c.Bytes(), 16<<20)
	}
	if c.Len() < 3000 {
		t.Fatalf("len = %d: shards are badly unbalanced", c.Len())
	}
}

func TestL1Purge(t *testing.T) {
	c := NewL1(1<<20, nil)
	for i := range 10 {
		mustSet(t, c, fmt.Sprint(i), SymptomPatterns, []byte("v"))
	}
	c.Purge()
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Fatalf("after Purge len=%d bytes=%d", c.Len(), c.Bytes())
	}
	if _, ok := mustGet(t, c, "3"); ok {
		t.Fatal("value survived Purge")
	}
	mustSet(t, c, "3", SymptomPatterns, []byte("w"))
	if v, ok := mustGet(t, c, "3"); !ok || string(v) != "w" {
		t.Fatal("cache unusable after Purge")
	}
}

func TestL1PurgeDuringCompute(t *testing.T) {
	c := NewL1(1<<20, nil)
	release := make(chan struct{})
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		v, _, err := c.Do(context.Background(), "k", ClinicalDecision, func(context.Context) ([]byte, error) {
			close(started)
			<-release
			return []byte("old model"), nil
		})
		if err == nil && string(v) != "old model" {
			err = fmt.Errorf("waiter got %q", v)
		}
		errc <- err
	}()
	<-started
	c.Purge()
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, ok := mustGet(t, c, "k"); ok {
		t.Fatal("a computation started before Purge stored its result after it")
	}
}

func TestL1Sweep(t *testing.T) {
	clk := newFakeClock()
	c := NewL1(1<<20, clk.Now)
	mustSet(t, c, "short", PerformanceMetrics, []byte("v")) // 300 s
	mustSet(t, c, "long", SymptomPatterns, []byte("v"))     // 7200 s
	clk.Advance(301 * time.Second)
	if n := c.Sweep(); n != 1 {
		t.Fatalf("Sweep removed %d, want 1", n)
	}
	if c.Len() != 1 {
		t.Fatalf("len = %d, want 1", c.Len())
	}
	if _, ok := mustGet(t, c, "long"); !ok {
		t.Fatal("Sweep removed a live entry")
	}
}

func TestL1Delete(t *testing.T) {
	c := NewL1(1<<20, nil)
	mustSet(t, c, "k", PatientSummary, []byte("v"))
	c.Delete("k")
	c.Delete("absent")
	if _, ok := mustGet(t, c, "k"); ok || c.Bytes() != 0 {
		t.Fatal("Delete left the entry")
	}
}

func TestL1NoAliasing(t *testing.T) {
	c := NewL1(1<<20, nil)
	buf := []byte("original")
	mustSet(t, c, "k", PatientSummary, buf)
	copy(buf, "XXXXXXXX") // the caller reuses its buffer
	v, _ := mustGet(t, c, "k")
	if string(v) != "original" {
		t.Fatalf("cached value changed with caller's buffer: %q", v)
	}
	// Appending to a returned slice must not write into shared memory.
	_ = append(v, "-suffix"...)
	v2, _ := mustGet(t, c, "k")
	if string(v2) != "original" || cap(v2) != len(v2) {
		t.Fatalf("got %q cap %d", v2, cap(v2))
	}
	// A later Set replaces, never mutates: an earlier reader's slice holds.
	mustSet(t, c, "k", PatientSummary, []byte("replaced"))
	if string(v) != "original" {
		t.Fatalf("earlier reader's slice changed to %q", v)
	}
	// Do clips compute's result so appends by readers reallocate.
	big := make([]byte, 3, 64)
	got, _, _ := c.Do(context.Background(), "d", PatientSummary, func(context.Context) ([]byte, error) { return big, nil })
	if cap(got) != len(got) {
		t.Fatalf("Do result cap %d > len %d", cap(got), len(got))
	}
}

func TestL1Observer(t *testing.T) {
	obs := &countObserver{}
	c := NewL1(1<<20, nil)
	c.SetObserver(obs)
	ctx := context.Background()
	c.Get(ctx, "k")                              // miss
	c.Set(ctx, "k", PatientSummary, []byte("v")) //
	c.Get(ctx, "k")                              // hit
	c.Do(ctx, "k", PatientSummary, nil)          // hit (compute not called)
	c.Do(ctx, "j", PatientSummary, func(context.Context) ([]byte, error) { return nil, nil })
	if h, m := obs.hits.Load(), obs.misses.Load(); h != 2 || m != 2 {
		t.Fatalf("hits=%d misses=%d, want 2, 2", h, m)
	}
}

func TestDoHit(t *testing.T) {
	c := NewL1(1<<20, nil)
	ctx := context.Background()
	var n int
	compute := func(context.Context) ([]byte, error) { n++; return []byte("answer"), nil }
	for i, wantHit := range []bool{false, true, true} {
		v, hit, err := c.Do(ctx, "k", ClinicalDecision, compute)
		if err != nil || hit != wantHit || string(v) != "answer" {
			t.Fatalf("call %d: %q hit=%v err=%v", i, v, hit, err)
		}
	}
	if n != 1 {
		t.Fatalf("computations = %d, want 1", n)
	}
}

// waitWaiters blocks until n callers wait on the in-flight call for key.
func waitWaiters(t *testing.T, c *L1, key string, n int) {
	t.Helper()
	s := c.shardFor(key)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		cl := s.calls[key]
		got := 0
		if cl != nil {
			got = cl.waiters
		}
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiters = %d, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDoComputesOnceForConcurrentCallers(t *testing.T) {
	const callers = 50
	c := NewL1(1<<20, nil)
	var computations atomic.Int32
	release := make(chan struct{})
	compute := func(context.Context) ([]byte, error) {
		computations.Add(1)
		<-release
		return []byte("shared"), nil
	}
	var wg sync.WaitGroup
	results := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			v, hit, err := c.Do(context.Background(), "k", ClinicalDecision, compute)
			if hit {
				err = errors.New("reported a hit for a shared computation")
			}
			results[i], errs[i] = string(v), err
		})
	}
	waitWaiters(t, c, "k", callers) // every caller has joined before the result exists
	close(release)
	wg.Wait()
	if n := computations.Load(); n != 1 {
		t.Fatalf("computations = %d, want 1", n)
	}
	for i := range callers {
		if errs[i] != nil || results[i] != "shared" {
			t.Fatalf("caller %d: %q, %v", i, results[i], errs[i])
		}
	}
	if v, ok := mustGet(t, c, "k"); !ok || string(v) != "shared" {
		t.Fatal("result not stored")
	}
}

func TestDoErrorSharedNotCached(t *testing.T) {
	const callers = 10
	c := NewL1(1<<20, nil)
	errBoom := errors.New("model unavailable")
	var computations atomic.Int32
	release := make(chan struct{})
	failing := func(context.Context) ([]byte, error) {
		computations.Add(1)
		<-release
		return nil, errBoom
	}
	var wg sync.WaitGroup
	var sawErr atomic.Int32
	for range callers {
		wg.Go(func() {
			if _, _, err := c.Do(context.Background(), "k", ClinicalDecision, failing); errors.Is(err, errBoom) {
				sawErr.Add(1)
			}
		})
	}
	waitWaiters(t, c, "k", callers)
	close(release)
	wg.Wait()
	if computations.Load() != 1 || sawErr.Load() != callers {
		t.Fatalf("computations=%d, callers seeing the error=%d", computations.Load(), sawErr.Load())
	}
	if c.Len() != 0 {
		t.Fatal("error result was cached")
	}
	v, hit, err := c.Do(context.Background(), "k", ClinicalDecision, func(context.Context) ([]byte, error) {
		computations.Add(1)
		return []byte("ok"), nil
	})
	if err != nil || hit || string(v) != "ok" || computations.Load() != 2 {
		t.Fatalf("retry: %q hit=%v err=%v computations=%d", v, hit, err, computations.Load())
	}
}

func TestDoCancelledWaiter(t *testing.T) {
	tests := []struct {
		name         string
		cancelLeader bool // cancel the caller that started the computation
	}{
		{"joined waiter cancelled", false},
		{"first caller cancelled", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewL1(1<<20, nil)
			release := make(chan struct{})
			var computeCtx context.Context
			started := make(chan struct{})
			compute := func(ctx context.Context) ([]byte, error) {
				computeCtx = ctx
				close(started)
				<-release
				return []byte("value"), nil
			}
			cancelCtx, cancel := context.WithCancel(context.Background())
			defer cancel()
			first, second := context.Background(), context.Context(cancelCtx)
			if tt.cancelLeader {
				first, second = second, first
			}
			type result struct {
				v   string
				err error
			}
			firstc, secondc := make(chan result, 1), make(chan result, 1)
			go func() {
				v, _, err := c.Do(first, "k", PatientSummary, compute)
				firstc <- result{string(v), err}
			}()
			<-started
			go func() {
				v, _, err := c.Do(second, "k", PatientSummary, compute)
				secondc <- result{string(v), err}
			}()
			waitWaiters(t, c, "k", 2)
			cancel()
			cancelled, other := firstc, secondc
			if !tt.cancelLeader {
				cancelled, other = secondc, firstc
			}
			select {
			case r := <-cancelled:
				if !errors.Is(r.err, context.Canceled) {
					t.Fatalf("cancelled caller: %q, %v; want context.Canceled", r.v, r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("cancelled caller did not return")
			}
			if computeCtx.Err() != nil {
				t.Fatal("compute's context cancelled while a caller still waits")
			}
			close(release)
			if r := <-other; r.err != nil || r.v != "value" {
				t.Fatalf("remaining caller: %q, %v", r.v, r.err)
			}
			if _, ok := mustGet(t, c, "k"); !ok {
				t.Fatal("value not stored")
			}
		})
	}
}

func TestDoAllCallersGoneCancelsCompute(t *testing.T) {
	c := NewL1(1<<20, nil)
	ctx, cancel := context.WithCancel(context.Background())
	computeDone := make(chan error, 1)
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Do(ctx, "k", PatientSummary, func(cctx context.Context) ([]byte, error) {
			close(started)
			<-cctx.Done()
			computeDone <- cctx.Err()
			return nil, cctx.Err()
		})
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller err = %v", err)
	}
	select {
	case <-computeDone:
	case <-time.After(10 * time.Second):
		t.Fatal("compute not cancelled after its last caller left")
	}
	// A newcomer starts a fresh computation instead of inheriting the
	// cancelled one's error.
	v, _, err := c.Do(context.Background(), "k", PatientSummary, func(context.Context) ([]byte, error) {
		return []byte("fresh"), nil
	})
	if err != nil || string(v) != "fresh" {
		t.Fatalf("newcomer: %q, %v", v, err)
	}
}

func TestDoAlreadyCancelled(t *testing.T) {
	c := NewL1(1<<20, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := c.Do(ctx, "k", PatientSummary, func(context.Context) ([]byte, error) {
		t.Error("compute called for a cancelled caller")
		return nil, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// A cached value is still served: it costs nothing.
	mustSet(t, c, "k", PatientSummary, []byte("v"))
	if v, hit, err := c.Do(ctx, "k", PatientSummary, nil); err != nil || !hit || string(v) != "v" {
		t.Fatalf("hit with cancelled ctx: %q %v %v", v, hit, err)
	}
}

func TestDoPanic(t *testing.T) {
	c := NewL1(1<<20, nil)
	_, _, err := c.Do(context.Background(), "k", PatientSummary, func(context.Context) ([]byte, error) {
		panic("bad input")
	})
	if !errors.Is(err, ErrComputePanicked) || !strings.Contains(err.Error(), "bad input") {
		t.Fatalf("err = %v", err)
	}
	if c.Len() != 0 {
		t.Fatal("panicked computation cached something")
	}
}

func TestDoComputeValuesKept(t *testing.T) {
	type ctxKey struct{}
	c := NewL1(1<<20, nil)
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "req-1"), time.Hour)
	defer cancel()
	c.Do(ctx, "k", PatientSummary, func(cctx context.Context) ([]byte, error) {
		if cctx.Value(ctxKey{}) != "req-1" {
			t.Error("compute lost the caller's context values")
		}
		if _, ok := cctx.Deadline(); ok {
			t.Error("compute inherited one caller's deadline")
		}
		return nil, nil
	})
}

// TestL1Race exercises every method concurrently; run with -race.
func TestL1Race(t *testing.T) {
	obs := &countObserver{}
	clk := newFakeClock()
	c := NewL1(4<<20, clk.Now) // 4 shards of 1 MiB
	c.SetObserver(obs)
	classes := []Class{PatientSummary, PerformanceMetrics, Class("bad")}
	val := make([]byte, 2048)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i := range 2000 {
				key := fmt.Sprintf("k%d", (g*7+i)%300)
				class := classes[i%len(classes)]
				switch i % 10 {
				case 0:
					c.Set(ctx, key, class, val)
				case 1, 2, 3:
					if v, ok, _ := c.Get(ctx, key); ok && len(v) == 0 {
						t.Error("empty hit")
					}
				case 4, 5, 6:
					c.Do(ctx, key, class, func(context.Context) ([]byte, error) {
						if i%3 == 0 {
							return nil, errors.New("fail")
						}
						return val[:i%2048], nil
					})
				case 7:
					short, cancelShort := context.WithTimeout(ctx, time.Microsecond)
					c.Do(short, key, class, func(cctx context.Context) ([]byte, error) {
						select {
						case <-cctx.Done():
						case <-time.After(50 * time.Microsecond):
						}
						return val[:10], nil
					})
					cancelShort()
				case 8:
					if g == 0 && i%200 == 8 {
						c.Purge()
						clk.Advance(time.Minute)
					} else {
						c.Delete(key)
					}
				case 9:
					c.Len()
					c.Bytes()
					if i%100 == 9 {
						c.Sweep()
					}
				}
			}
		})
	}
	wg.Wait()
	if c.Bytes() > 4<<20 {
		t.Fatalf("over budget: %d", c.Bytes())
	}
	// No computation is left registered once every caller has returned.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending := 0
		for _, s := range c.shards {
			s.mu.Lock()
			pending += len(s.calls)
			s.mu.Unlock()
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d computations still registered", pending)
		}
		time.Sleep(time.Millisecond)
	}
}
