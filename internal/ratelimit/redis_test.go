package ratelimit

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"medserve/internal/redistest"
)

// redisServer adds this package's fast-failing client to a private
// redis-server.
type redisServer struct{ *redistest.Server }

func startRedis(tb testing.TB) redisServer { return redisServer{redistest.Start(tb)} }

// freePort gives the unreachable cases, here and in the benchmarks, a port
// where nothing listens.
func freePort(tb testing.TB) int { return redistest.FreePort(tb) }

// client returns a client closed in Cleanup.
func (s redisServer) client(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	c := newFastClient(s.Addr())
	tb.Cleanup(func() { c.Close() })
	return c
}

// newFastClient returns a client tuned like cache.ParseRedisURL's: fail
// fast, no retries, context deadlines honoured.
func newFastClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                     addr,
		DialTimeout:              200 * time.Millisecond,
		ReadTimeout:              100 * time.Millisecond,
		WriteTimeout:             100 * time.Millisecond,
		PoolTimeout:              100 * time.Millisecond,
		MaxRetries:               -1,
		DialerRetries:            1,
		ContextTimeoutEnabled:    true,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a hang guard, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countingLimiter counts the checks that reach it.
type countingLimiter struct {
	Limiter
	n atomic.Int64
}

func (c *countingLimiter) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	c.n.Add(1)
	return c.Limiter.Allow(ctx, key, l)
}

// TestRedisSharedBudget runs two Redis limiters — two replicas, each with
// its own client — on one server: together they get exactly Burst+1
// immediate allows, as one Memory would. The limits are slow enough (one
// an hour) that no refill can happen during the test.
func TestRedisSharedBudget(t *testing.T) {
	srv := startRedis(t)
	raw := srv.client(t)
	fb := &countingLimiter{Limiter: NewMemory(nil, 0)}
	replicas := []*Redis{NewRedis(srv.client(t), "", fb), NewRedis(srv.client(t), "", fb)}
	ctx := context.Background()
	for _, spec := range []string{"1/h", "1/h burst 1", "1/h burst 4", "2/h burst 10", "1/day burst 3"} {
		t.Run(spec, func(t *testing.T) {
			l := mustLimit(t, spec)
			it, _, _ := l.interval()
			T := time.Duration(it)
			key := "inference:" + spec
			var got []Decision
			for i := range l.Capacity() + 6 {
				got = append(got, mustAllow(t, replicas[i%2], key, l))
			}
			for i, d := range got {
				if i < l.Capacity() {
					if !d.Allowed || d.Remaining != l.Burst-i || d.RetryAfter != 0 || d.Reset <= time.Duration(i)*T || d.Reset > time.Duration(i+1)*T {
						t.Fatalf("request %d (replica %d): %+v; want allowed, remaining %d", i+1, i%2, d, l.Burst-i)
					}
					continue
				}
				// Rejected: the next request is due at T after the first.
				if d.Allowed || d.Remaining != 0 || d.RetryAfter <= T-time.Minute || d.RetryAfter > T || d.Reset > time.Duration(l.Capacity())*T {
					t.Fatalf("request %d (replica %d): %+v; want rejected, retry within T=%v", i+1, i%2, d, T)
				}
			}
			// The key's TTL is the time until the bucket is full again.
			pttl, err := raw.PTTL(ctx, DefaultRedisPrefix+key).Result()
			full := time.Duration(l.Capacity()) * T
			if err != nil || pttl <= full-time.Minute || pttl > full {
				t.Fatalf("PTTL = %v, %v; want just under %v", pttl, err, full)
			}
		})
	}
	if n := fb.n.Load(); n != 0 {
		t.Fatalf("%d checks fell back with Redis up", n)
	}
	for _, r := range replicas {
		if r.Down() || r.Fallbacks() != 0 {
			t.Fatalf("Down = %v, Fallbacks = %d", r.Down(), r.Fallbacks())
		}
	}
}

// TestRedisAgreesWithMemory compares decisions for a limit fast enough to
// refill during the test only in what cannot depend on timing: the first
// Burst+1 are allowed with the same Remaining, and keys and prefixes are
// separate.
func TestRedisAgreesWithMemory(t *testing.T) {
	srv := startRedis(t)
	raw := srv.client(t)
	r := NewRedis(srv.client(t), "a:", nil)
	other := NewRedis(srv.client(t), "b:", nil)
	clk := newFakeClock()
	m := NewMemory(clk.Now, 0)
	l := mustLimit(t, "1/h burst 7")
	for i := range l.Capacity() + 2 {
		dr, dm := mustAllow(t, r, "k", l), mustAllow(t, m, "k", l)
		if dr.Allowed != dm.Allowed || dr.Remaining != dm.Remaining {
			t.Fatalf("request %d: redis %+v, memory %+v", i+1, dr, dm)
		}
	}
	if d := mustAllow(t, other, "k", l); !d.Allowed || d.Remaining != l.Burst {
		t.Fatalf("prefix b: shares a's bucket: %+v", d)
	}
	if d := mustAllow(t, r, "k2", l); !d.Allowed || d.Remaining != l.Burst {
		t.Fatalf("key k2 shares k's bucket: %+v", d)
	}
	ctx := context.Background()
	if n := raw.Exists(ctx, "a:k", "a:k2", "b:k").Val(); n != 3 {
		t.Fatalf("%d of the 3 keys stored under their prefixes", n)
	}
	if _, err := r.Allow(ctx, "k", Limit{}); !errors.Is(err, ErrInvalidLimit) {
		t.Fatalf("invalid limit: %v", err)
	}
}

// TestRedisNoScript flushes the server's script cache: EVALSHA answers
// NOSCRIPT and the check is retried with EVAL, not failed over.
func TestRedisNoScript(t *testing.T) {
	srv := startRedis(t)
	raw := srv.client(t)
	fb := &countingLimiter{Limiter: NewMemory(nil, 0)}
	r := NewRedis(srv.client(t), "", fb)
	l := mustLimit(t, "1/h burst 2")
	ctx := context.Background()
	for i := range 4 {
		if err := raw.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		d := mustAllow(t, r, "k", l)
		if d.Allowed != (i < 3) {
			t.Fatalf("request %d: %+v", i+1, d)
		}
	}
	if fb.n.Load() != 0 || r.Down() {
		t.Fatalf("NOSCRIPT fell back: %d, down %v", fb.n.Load(), r.Down())
	}
}

// TestRedisOutage kills the server: checks go to the local limiter without
// an error, and that limiter limits; after a restart Redis is used again.
func TestRedisOutage(t *testing.T) {
	srv := startRedis(t)
	raw := srv.client(t)
	fb := &countingLimiter{Limiter: NewMemory(nil, 0)}
	r := NewRedis(srv.client(t), "", fb)
	r.breaker.coolDown = 50 * time.Millisecond
	l := mustLimit(t, "1/h burst 2")
	ctx := context.Background()

	allowed := func(lim Limiter, key string, n int) int {
		t.Helper()
		k := 0
		for range n {
			if mustAllow(t, lim, key, l).Allowed {
				k++
			}
		}
		return k
	}
	if n := allowed(r, "before", 10); n != l.Capacity() || fb.n.Load() != 0 {
		t.Fatalf("before: %d allowed, %d fell back", n, fb.n.Load())
	}

	srv.Kill()
	if n := allowed(r, "during", 10); n != l.Capacity() {
		t.Fatalf("during the outage: %d of 10 allowed; want the local limit %d", n, l.Capacity())
	}
	if n := fb.n.Load(); n != 10 || r.Fallbacks() != 10 {
		t.Fatalf("during the outage %d (%d) checks fell back; want 10", n, r.Fallbacks())
	}
	if !r.Down() {
		t.Fatal("breaker not open during the outage")
	}

	srv.StartAgain() // same port, empty
	i := 0
	waitFor(t, "checks to reach Redis again", func() bool {
		i++
		key := "probe-" + strconv.Itoa(i)
		mustAllow(t, r, key, l)
		return raw.Exists(ctx, DefaultRedisPrefix+key).Val() == 1 && !r.Down()
	})
	atRestart := fb.n.Load()
	r2 := NewRedis(srv.client(t), "", fb) // a second replica
	k := 0
	for j := range 10 {
		if mustAllow(t, []*Redis{r, r2}[j%2], "after", l).Allowed {
			k++
		}
	}
	if k != l.Capacity() || fb.n.Load() != atRestart {
		t.Fatalf("after the restart: %d allowed (want %d), %d fell back", k, l.Capacity(), fb.n.Load()-atRestart)
	}
}

// TestRedisUnreachable needs no redis-server: nothing listens on the port.
func TestRedisUnreachable(t *testing.T) {
	c := newFastClient("127.0.0.1:" + strconv.Itoa(freePort(t)))
	defer c.Close()
	clk := newFakeClock()
	fb := &countingLimiter{Limiter: NewMemory(clk.Now, 0)}
	r := NewRedis(c, "", fb)
	l := mustLimit(t, "60/min burst 10")
	n := 0
	for range 20 {
		if mustAllow(t, r, "k", l).Allowed {
			n++
		}
	}
	if n != l.Capacity() || fb.n.Load() != 20 || !r.Down() {
		t.Fatalf("%d allowed, %d fell back, down %v", n, fb.n.Load(), r.Down())
	}
}

// TestRedisHungServer: a server that accepts but never answers costs one
// check timeout, then the breaker skips it.
func TestRedisHungServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		conns.Wait()
	})
	go func() {
		for {
			cn, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer cn.Close()
				buf := make([]byte, 512)
				for {
					if _, err := cn.Read(buf); err != nil {
						return
					}
				}
			})
		}
	}()
	c := newFastClient(l.Addr().String())
	defer c.Close()
	fb := &countingLimiter{Limiter: NewMemory(nil, 0)}
	r := NewRedis(c, "", fb)
	r.timeout = 20 * time.Millisecond
	// The caller's context has no deadline: only the check timeout ends it.
	if d := mustAllow(t, r, "k", mustLimit(t, "1/s")); !d.Allowed {
		t.Fatalf("%+v", d)
	}
	if !r.Down() || fb.n.Load() != 1 {
		t.Fatalf("down %v, fell back %d", r.Down(), fb.n.Load())
	}
}

// TestRedisCallerGone: a caller that left is answered by the fallback, but
// trips nothing.
func TestRedisCallerGone(t *testing.T) {
	srv := startRedis(t)
	fb := &countingLimiter{Limiter: NewMemory(nil, 0)}
	r := NewRedis(srv.client(t), "", fb)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Allow(ctx, "k", mustLimit(t, "1/s")); err != nil {
		t.Fatal(err)
	}
	if r.Down() || fb.n.Load() != 1 {
		t.Fatalf("down %v, fell back %d", r.Down(), fb.n.Load())
	}
}

func TestBreakerStates(t *testing.T) {
	b := newBreaker(time.Hour)
	ctx := context.Background()
	fail := errors.New("connection refused")
	expire := func() { b.openUntil.Store(b.since() - 1) }

	if probe, ok := b.allow(); !ok || probe {
		t.Fatal("closed breaker must allow without probing")
	}
	b.done(ctx, false, fail)
	if !b.down() {
		t.Fatal("failure did not open the breaker")
	}
	if _, ok := b.allow(); ok {
		t.Fatal("open breaker allowed a check during the cool-down")
	}
	b.done(ctx, false, nil)
	if !b.down() {
		t.Fatal("a non-probe success closed the breaker")
	}
	expire()
	probe, ok := b.allow()
	if !ok || !probe {
		t.Fatal("after the cool-down one probe must be allowed")
	}
	if _, ok := b.allow(); ok {
		t.Fatal("a second check was allowed while the probe is in flight")
	}
	b.done(ctx, true, fail)
	if _, ok := b.allow(); ok || !b.down() {
		t.Fatal("failed probe must reopen the breaker")
	}
	expire()
	probe, _ = b.allow()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	b.done(cctx, probe, context.Canceled)
	if probe, ok := b.allow(); !ok || !probe {
		t.Fatal("after an inconclusive probe the next check must probe")
	}
	b.done(ctx, true, nil)
	if b.down() {
		t.Fatal("successful probe did not close the breaker")
	}
	b.done(cctx, false, context.Canceled)
	if b.down() {
		t.Fatal("caller cancellation opened the breaker")
	}
	dctx, dcancel := context.WithDeadline(ctx, time.Unix(0, 0))
	defer dcancel()
	b.done(dctx, false, context.DeadlineExceeded)
	if !b.down() {
		t.Fatal("a timed-out check did not open the breaker")
	}
}
