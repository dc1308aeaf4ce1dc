package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"medserve/internal/redistest"
)

// redisServer adds this package's client to a private redis-server.
type redisServer struct{ *redistest.Server }

func startRedis(tb testing.TB) redisServer { return redisServer{redistest.Start(tb)} }

// client returns a client made the way medserve makes it, closed in Cleanup.
func (s redisServer) client(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	c, err := ParseRedisURL(s.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
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

var knownClasses = []Class{PatientSummary, ClinicalDecision, SymptomPatterns, ComplianceAudit, PerformanceMetrics}

func TestRedisSetGetTTLPrefix(t *testing.T) {
	srv := startRedis(t)
	raw := srv.client(t) // a separate client to look at what is stored
	r := NewRedis(srv.client(t), RedisOptions{})
	ctx := context.Background()
	if r.Name() != "l2" {
		t.Fatalf("Name = %q", r.Name())
	}
	for _, class := range knownClasses {
		key := "k-" + string(class)
		val := []byte("value of " + key)
		if err := r.Set(ctx, key, class, val); err != nil {
			t.Fatalf("Set(%s): %v", class, err)
		}
		got, ok, err := r.Get(ctx, key)
		if err != nil || !ok || !bytes.Equal(got, val) {
			t.Fatalf("Get(%s) = %q, %v, %v", class, got, ok, err)
		}
		pttl, err := raw.PTTL(ctx, DefaultRedisPrefix+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 0 || pttl > class.TTL() {
			t.Fatalf("%s: PTTL = %v, want in (0, %v]", class, pttl, class.TTL())
		}
	}

	if _, ok, err := r.Get(ctx, "absent"); ok || err != nil {
		t.Fatalf("Get(absent) = %v, %v; want a plain miss", ok, err)
	}
	if r.Down() {
		t.Fatal("a miss opened the breaker")
	}

	if err := r.Set(ctx, "u", Class("clinical_decisions"), []byte("v")); err != nil {
		t.Fatalf("Set(unknown class) = %v", err)
	}
	if n := raw.Exists(ctx, DefaultRedisPrefix+"u").Val(); n != 0 {
		t.Fatal("unknown class stored")
	}

	p := NewRedis(srv.client(t), RedisOptions{Prefix: "other:"})
	if err := p.Set(ctx, "pk", ClinicalDecision, []byte("pv")); err != nil {
		t.Fatal(err)
	}
	if v := raw.Get(ctx, "other:pk").Val(); v != "pv" {
		t.Fatalf("raw GET other:pk = %q", v)
	}
	if n := raw.Exists(ctx, DefaultRedisPrefix+"pk", "pk").Val(); n != 0 {
		t.Fatal("value stored outside its prefix")
	}
	if _, ok, _ := r.Get(ctx, "pk"); ok {
		t.Fatal("prefixes do not separate levels")
	}
}

func TestRedisBreakerStates(t *testing.T) {
	r := NewRedis(nil, RedisOptions{CoolDown: time.Hour}) // allow and done never touch the client
	ctx := context.Background()
	fail := errors.New("connection refused")
	expire := func() { r.openUntil.Store(r.since() - 1) }

	if probe, ok := r.allow(); !ok || probe {
		t.Fatal("closed breaker must allow without probing")
	}
	r.done(ctx, false, fail)
	if !r.Down() {
		t.Fatal("failure did not open the breaker")
	}
	if _, ok := r.allow(); ok {
		t.Fatal("open breaker allowed a request during the cool-down")
	}
	r.done(ctx, false, nil) // a request from before the failure succeeds
	if !r.Down() {
		t.Fatal("a non-probe success closed the breaker")
	}

	expire()
	probe, ok := r.allow()
	if !ok || !probe {
		t.Fatal("after the cool-down one probe must be allowed")
	}
	if _, ok := r.allow(); ok {
		t.Fatal("a second request was allowed while the probe is in flight")
	}
	r.done(ctx, true, fail)
	if _, ok := r.allow(); ok || !r.Down() {
		t.Fatal("failed probe must reopen the breaker for a cool-down")
	}

	// A probe whose caller left learnt nothing: the next request probes.
	expire()
	probe, _ = r.allow()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r.done(cctx, probe, context.Canceled)
	if probe, ok := r.allow(); !ok || !probe {
		t.Fatal("after an inconclusive probe the next request must probe")
	}
	r.done(ctx, true, nil)
	if r.Down() {
		t.Fatal("successful probe did not close the breaker")
	}

	// A caller's own cancellation while closed trips nothing.
	r.done(cctx, false, context.Canceled)
	if r.Down() {
		t.Fatal("caller cancellation opened the breaker")
	}

	// A caller deadline shorter than the operation timeout must still trip
	// it: otherwise a hung Redis would cost every request that deadline.
	dctx, dcancel := context.WithDeadline(ctx, time.Unix(0, 0))
	defer dcancel()
	r.done(dctx, false, context.DeadlineExceeded)
	if !r.Down() {
		t.Fatal("a timed-out operation did not open the breaker")
	}
}

func TestRedisDownIsSkipped(t *testing.T) {
	// Nothing listens on this port: connection refused, no redis-server needed.
	c, err := ParseRedisURL("redis://127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := NewRedis(c, RedisOptions{CoolDown: time.Hour})
	ctx := context.Background()
	_, ok, err := r.Get(ctx, "k")
	if ok || err == nil || errors.Is(err, ErrLevelDown) {
		t.Fatalf("first Get = %v, %v; want the connection error", ok, err)
	}
	if !r.Down() {
		t.Fatal("breaker not open after a failure")
	}
	if _, ok, err := r.Get(ctx, "k"); ok || !errors.Is(err, ErrLevelDown) {
		t.Fatalf("Get while open = %v, %v; want ErrLevelDown", ok, err)
	}
	if err := r.Set(ctx, "k", ClinicalDecision, []byte("v")); !errors.Is(err, ErrLevelDown) {
		t.Fatalf("Set while open = %v; want ErrLevelDown", err)
	}
	if err := r.Set(ctx, "k", Class("nope"), []byte("v")); err != nil {
		t.Fatalf("Set(unknown class) = %v; want nil", err)
	}
}

func TestRedisHungServerTimesOut(t *testing.T) {
	// A server that accepts and reads but never answers: a hung Redis.
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
	c, err := ParseRedisURL("redis://" + l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := NewRedis(c, RedisOptions{Timeout: 20 * time.Millisecond, CoolDown: time.Hour})
	// The caller's own context has no deadline: only the level's timeout
	// can end the call.
	if _, ok, err := r.Get(context.Background(), "k"); ok || err == nil {
		t.Fatalf("Get = %v, %v; want a timeout error", ok, err)
	}
	if !r.Down() {
		t.Fatal("a timeout did not open the breaker")
	}
}

func TestParseRedisURL(t *testing.T) {
	c, err := ParseRedisURL("redis://127.0.0.1:6390/2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.Addr != "127.0.0.1:6390" || o.DB != 2 {
		t.Errorf("Addr, DB = %q, %d", o.Addr, o.DB)
	}
	if o.DialTimeout != 200*time.Millisecond || o.ReadTimeout != 100*time.Millisecond || o.WriteTimeout != 100*time.Millisecond {
		t.Errorf("timeouts = %v, %v, %v; want 200ms, 100ms, 100ms", o.DialTimeout, o.ReadTimeout, o.WriteTimeout)
	}
	// MaxRetries -1 ("none") reads back normalised to 0.
	if !o.ContextTimeoutEnabled || o.MaxRetries > 0 || o.DialerRetries != 1 {
		t.Errorf("ContextTimeoutEnabled, MaxRetries, DialerRetries = %v, %d, %d", o.ContextTimeoutEnabled, o.MaxRetries, o.DialerRetries)
	}

	c2, err := ParseRedisURL("redis://127.0.0.1:6390?dial_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if d := c2.(*redis.Client).Options().DialTimeout; d != time.Second {
		t.Errorf("URL dial_timeout ignored: %v", d)
	}

	for _, bad := range []string{
		"redis://user:s3cretpw@127.0.0.1:port/0",
		"http://user:s3cretpw@127.0.0.1:6379",
		"redis://user:s3cretpw@127.0.0.1:6379/notadb",
		"redis://user:s3cretpw@127.0.0.1:6379/0?dial_timeout=x",
		"redis://user:s3cretpw@[::1/0",
	} {
		_, err := ParseRedisURL(bad)
		if err == nil {
			t.Errorf("ParseRedisURL accepted a bad URL")
			continue
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("error repeats the password: %v", err)
		}
	}
}

func TestRedisValuesSealedAtRest(t *testing.T) {
	srv := startRedis(t)
	raw := srv.client(t)
	kr := testKeyring(t, "c1", 1)
	ctx := context.Background()
	newTiered := func() *Tiered {
		l2 := NewSealed(NewRedis(srv.client(t), RedisOptions{}), kr)
		return NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2}, TieredOptions{})
	}
	c := newTiered()
	if _, level, err := c.Do(ctx, "k", func(context.Context) ([]byte, error) { return []byte(secretAnswer), nil }); err != nil || level != "" {
		t.Fatalf("Do = %q, %v", level, err)
	}
	c.Close() // drains the write to Redis
	stored, err := raw.Get(ctx, DefaultRedisPrefix+"k").Result()
	if err != nil {
		t.Fatalf("raw GET: %v", err)
	}
	if strings.Contains(stored, "troponin") || strings.Contains(stored, "acuity") || !strings.HasPrefix(stored, "c1:") {
		t.Fatalf("value in Redis is not sealed: %q", stored)
	}

	// Another process (fresh L1) reads it back through the same keyring.
	c = newTiered()
	defer c.Close()
	v, level, err := c.Do(ctx, "k", func(context.Context) ([]byte, error) { return nil, errors.New("must not compute") })
	if err != nil || level != "l2" || string(v) != secretAnswer {
		t.Fatalf("Do = %q, %q, %v; want the answer from l2", v, level, err)
	}

	// Copied to another key, it does not open there: a miss, recomputed.
	if err := raw.Set(ctx, DefaultRedisPrefix+"k2", stored, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	v, level, err = c.Do(ctx, "k2", func(context.Context) ([]byte, error) { return []byte("fresh"), nil })
	if err != nil || level != "" || string(v) != "fresh" {
		t.Fatalf("Do(k2) = %q, %q, %v; want a fresh computation", v, level, err)
	}
}

func TestRedisOutage(t *testing.T) {
	srv := startRedis(t)
	const coolDown = 50 * time.Millisecond
	rd := NewRedis(srv.client(t), RedisOptions{CoolDown: coolDown})
	kr := testKeyring(t, "c1", 1)
	tab := newMemTable()
	// An L1 that keeps nothing sends every call to the lower levels.
	c := NewTiered(NewL1(0, nil), ClinicalDecision,
		[]Level{NewSealed(rd, kr), NewSealed(NewL3(tab, nil), kr)}, TieredOptions{})
	t.Cleanup(c.Close)

	levelIndex := map[string]int{"": 0, "l1": 1, "l2": 2, "l3": 3}
	var (
		calls, failures atomic.Int64
		computes        atomic.Int64
		byLevel         [4]atomic.Int64
		firstFailure    atomic.Pointer[string]
		wg              sync.WaitGroup
		stopOnce        sync.Once
	)
	stopCh := make(chan struct{})
	stopLoad := func() {
		stopOnce.Do(func() { close(stopCh) })
		wg.Wait()
	}
	t.Cleanup(stopLoad) // also on a failed waitFor
	for g := range 6 {
		wg.Go(func() {
			for i := range 2_000_000 { // bounded even if stop never comes
				select {
				case <-stopCh:
					return
				default:
				}
				k := "key-" + strconv.Itoa((i*7+g*13)%50)
				want := "answer for " + k
				v, level, err := c.Do(context.Background(), k, func(context.Context) ([]byte, error) {
					computes.Add(1)
					return []byte(want), nil
				})
				calls.Add(1)
				if err != nil || string(v) != want {
					failures.Add(1)
					msg := fmt.Sprintf("Do(%s) = %q, %q, %v", k, v, level, err)
					firstFailure.CompareAndSwap(nil, &msg)
					continue
				}
				byLevel[levelIndex[level]].Add(1)
			}
		})
	}

	waitFor(t, "l2 hits before the outage", func() bool { return byLevel[2].Load() >= 200 })
	srv.Kill()
	killedAt, atKill, l3AtKill := time.Now(), calls.Load(), byLevel[3].Load()
	waitFor(t, "load through the outage", func() bool {
		// Several cool-downs, so that probes meet the dead server too.
		return calls.Load() >= atKill+2000 && byLevel[3].Load() >= l3AtKill+500 &&
			time.Since(killedAt) > 4*coolDown && rd.Down()
	})
	srv.StartAgain() // same port, empty: the store refills it
	l2AtRestart := byLevel[2].Load()
	waitFor(t, "l2 hits after the restart", func() bool { return byLevel[2].Load() >= l2AtRestart+200 })
	stopLoad()

	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed; first: %s", n, calls.Load(), *firstFailure.Load())
	}
	waitFor(t, "the breaker to close", func() bool {
		_, _, err := rd.Get(context.Background(), "key-0")
		return err == nil && !rd.Down()
	})
	v, level, err := c.Do(context.Background(), "key-7", func(context.Context) ([]byte, error) { return nil, errors.New("must not compute") })
	if err != nil || level != "l2" || string(v) != "answer for key-7" {
		t.Fatalf("after the outage Do = %q, %q, %v; want an l2 hit", v, level, err)
	}
	st := c.Stats()
	if st.GetErrors == 0 {
		t.Fatal("the outage was not noticed")
	}
	c.Close()
	t.Logf("calls %d: computes %d, computed or joined %d, l2 %d, l3 %d; stats %+v", calls.Load(), computes.Load(), byLevel[0].Load(), byLevel[2].Load(), byLevel[3].Load(), c.Stats())
}

func BenchmarkTieredDoL2Hit(b *testing.B) {
	srv := startRedis(b)
	ctx := context.Background()
	for _, sealed := range []bool{false, true} {
		b.Run(fmt.Sprintf("sealed=%v", sealed), func(b *testing.B) {
			var l2 Level = NewRedis(srv.client(b), RedisOptions{})
			if sealed {
				l2 = NewSealed(l2, testKeyring(b, "c1", 1))
			}
			key := mustKeyer(b, "k1", []byte(testSecretStr)).Key("clinical_decision", "patient-123")
			if err := l2.Set(ctx, key, ClinicalDecision, make([]byte, 2048)); err != nil {
				b.Fatal(err)
			}
			// An L1 that keeps nothing: every call misses it and hits Redis.
			c := NewTiered(NewL1(0, nil), ClinicalDecision, []Level{l2}, TieredOptions{})
			defer c.Close()
			compute := func(context.Context) ([]byte, error) { return nil, errors.New("must not compute") }
			b.ReportAllocs()
			for b.Loop() {
				if _, level, err := c.Do(ctx, key, compute); err != nil || level != "l2" {
					b.Fatalf("Do = %q, %v", level, err)
				}
			}
		})
	}
}

func BenchmarkTieredDoRedisDown(b *testing.B) {
	c, err := ParseRedisURL("redis://127.0.0.1:" + strconv.Itoa(redistest.FreePort(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rd := NewRedis(c, RedisOptions{CoolDown: time.Hour})
	ctx := context.Background()
	rd.Get(ctx, "open the breaker")
	if !rd.Down() {
		b.Fatal("breaker not open")
	}
	t := NewTiered(NewL1(0, nil), ClinicalDecision, []Level{NewSealed(rd, testKeyring(b, "c1", 1))}, TieredOptions{})
	defer t.Close()
	key := mustKeyer(b, "k1", []byte(testSecretStr)).Key("clinical_decision", "patient-123")
	val := make([]byte, 2048)
	compute := func(context.Context) ([]byte, error) { return val, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, level, err := t.Do(ctx, key, compute); err != nil || level != "" {
			b.Fatalf("Do = %q, %v", level, err)
		}
	}
}
