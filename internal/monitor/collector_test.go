package monitor

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"medserve/internal/clinical"
	"medserve/internal/store"
	"medserve/internal/triage"
)

// countsRecorder is an in-memory CountsStore with the store's upsert
// semantics: a figure written again for its (replica, bucket, version,
// domain, name) replaces the earlier value.
type countsRecorder struct {
	mu    sync.Mutex
	fail  error
	calls int
	rows  map[rowKey]float64
	last  []store.MonitorCount // the last successful call's rows
}

type rowKey struct {
	replica              string
	bucket               time.Time
	version, domain, key string
}

func (r *countsRecorder) SaveMonitorCounts(_ context.Context, cs []store.MonitorCount) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		return r.fail
	}
	if r.rows == nil {
		r.rows = map[rowKey]float64{}
	}
	for _, c := range cs {
		r.rows[rowKey{c.Replica, c.Bucket, c.Version, c.Domain, c.Name}] = c.Value
	}
	r.last = cs
	return nil
}

// total sums a figure over every bucket, as MonitorTotals does.
func (r *countsRecorder) total(version, domain, name string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := 0.0
	for k, v := range r.rows {
		if k.version == version && k.domain == domain && k.key == name {
			s += v
		}
	}
	return s
}

func (r *countsRecorder) buckets() map[time.Time]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[time.Time]bool{}
	for k := range r.rows {
		out[k.bucket] = true
	}
	return out
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const (
	redFlag      = "C0000001" // e.g. chest pain radiating: a red flag
	otherRedFlag = "C0000002"
)

// answer is one assessment as the pipeline would return it.
func answer(version string, domain clinical.Domain, acuity int, review bool, findings ...clinical.Finding) *triage.Assessment {
	return &triage.Assessment{Acuity: acuity, Domain: domain, ReviewRequired: review, Findings: findings,
		Model: triage.ModelRef{Name: "triage", Version: version}}
}

type observed struct {
	q        clinical.Query
	a        *triage.Assessment
	latency  time.Duration
	cacheHit bool
}

// sampleAnswers are four answers of triage/v1: two with an affirmed red
// flag (one answered acuity 3: a critical miss), two whose red flag is
// negated or historical (not red-flag answers).
func sampleAnswers() []observed {
	q := clinical.Query{Age: f64(30), Sex: "female", Arrival: "walk-in"}
	return []observed{
		{q, answer("v1", clinical.Cardiology, 3, true, clinical.Finding{Code: redFlag}), 30 * time.Millisecond, true},
		{q, answer("v1", clinical.Cardiology, 2, false, clinical.Finding{Code: redFlag}, clinical.Finding{Code: "C9", Negated: true}), 1500 * time.Millisecond, false},
		{q, answer("v1", clinical.Neurology, 4, false, clinical.Finding{Code: redFlag, Negated: true}, clinical.Finding{Code: "C9"}), 6 * time.Second, false},
		{q, answer("v1", clinical.Neurology, 5, false, clinical.Finding{Code: otherRedFlag, Historical: true}), 2 * time.Second, false},
	}
}

func newTestCollector(st CountsStore, clk *fakeClock) *Collector {
	c := NewCollector("replica-a", st, time.Minute, []string{redFlag, otherRedFlag}, map[string]bool{redFlag: true})
	c.now = clk.Now
	return c
}

func TestCollectorFlush(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)}
	rec := &countsRecorder{}
	c := newTestCollector(rec, clk)
	for _, o := range sampleAnswers() {
		c.Observe(o.q, o.a, o.latency, o.cacheHit)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	bucket := time.Date(2030, 5, 6, 7, 8, 0, 0, time.UTC)
	for _, r := range rec.last {
		if r.Replica != "replica-a" || !r.Bucket.Equal(bucket) {
			t.Fatalf("row %+v: want replica-a, bucket %v", r, bucket)
		}
	}
	const v = "triage/v1"
	tests := []struct {
		version, domain, name string
		want                  float64
	}{
		{v, "cardiology", nAnswers, 2},
		{v, "cardiology", nRedFlag, 2},
		{v, "cardiology", nRedFlagMissed, 1},
		{v, "neurology", nAnswers, 2},
		{v, "neurology", nRedFlag, 0}, // negated and historical red flags do not count
		{v, "neurology", nRedFlagMissed, 0},
		{v, AllDomains, nAnswers, 4},
		{v, AllDomains, nRedFlag, 2},
		{v, AllDomains, nRedFlagMissed, 1},
		{"", "", nAnswers, 4},
		{"", "", nCacheHits, 1},
		{"", "", nReview, 1},
		// The histogram is cumulative: 30 ms, 1.5 s, 6 s, 2 s (2 s is ≤ 2).
		{"", "", nLatencyLE + "0.01", 0},
		{"", "", nLatencyLE + "0.05", 1},
		{"", "", nLatencyLE + "0.1", 1},
		{"", "", nLatencyLE + "1", 1},
		{"", "", nLatencyLE + "2", 3},
		{"", "", nLatencyLE + "5", 3},
		{"", "", nInput + "age=18-39", 4},
		{"", "", nInput + "sex=female", 4},
		{"", "", nInput + "sbp=missing", 4},
		// Affirmed concepts only: answer 2's C9 is negated, answer 3's is
		// affirmed (other), answer 4's only finding is historical (none).
		{"", "", nInput + "concept=" + redFlag, 2},
		{"", "", nInput + "concept=other", 1},
		{"", "", nInput + "concept=none", 1},
	}
	for _, tc := range tests {
		if got := rec.total(tc.version, tc.domain, tc.name); got != tc.want {
			t.Errorf("%s/%s %s = %v, want %v", tc.version, tc.domain, tc.name, got, tc.want)
		}
	}
	// Rows that would be 0 are not written at all.
	for _, r := range rec.last {
		if r.Value == 0 && r.Name != nGoroutines && r.Name != nCPUUtilization {
			t.Errorf("zero row written: %+v", r)
		}
	}
	if m := rec.total("", "", nMemoryMB); m <= 0 {
		t.Errorf("memory gauge = %v, want > 0", m)
	}
	if g := rec.total("", "", nGoroutines); g < 1 {
		t.Errorf("goroutines gauge = %v, want ≥ 1", g)
	}
	if got := rec.total("", "", nCPUUtilization); got != 0 {
		t.Errorf("CPU after one sample = %v; want none written", got)
	}
	if c.LastCPU() != -1 {
		t.Errorf("LastCPU after one flush = %v, want -1", c.LastCPU())
	}
	// A second flush a little later has two CPU samples.
	clk.Advance(10 * time.Second)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if c.LastCPU() < 0 {
		t.Errorf("LastCPU after two flushes = %v, want ≥ 0", c.LastCPU())
	}
	// Same bucket, written whole again: nothing counted twice.
	if got := rec.total(v, AllDomains, nAnswers); got != 4 {
		t.Errorf("answers after a second flush = %v, want 4", got)
	}
}

// A failed flush keeps every bucket; the retry writes each whole, so the
// store holds every answer exactly once.
func TestCollectorFlushRetry(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2030, 5, 6, 7, 8, 59, 0, time.UTC)}
	rec := &countsRecorder{}
	c := newTestCollector(rec, clk)
	obs := sampleAnswers()
	for _, o := range obs {
		c.Observe(o.q, o.a, o.latency, o.cacheHit)
	}
	rec.fail = errors.New("database is locked")
	err := c.Flush(ctx)
	if err == nil || !errors.Is(err, rec.fail) {
		t.Fatalf("Flush = %v, want the store's error wrapped", err)
	}
	if len(rec.rows) != 0 {
		t.Fatalf("a failed flush stored %d rows", len(rec.rows))
	}

	// The next bucket begins; two more answers; the store is back.
	clk.Advance(2 * time.Second)
	c.Observe(obs[0].q, obs[0].a, obs[0].latency, obs[0].cacheHit)
	c.Observe(obs[1].q, obs[1].a, obs[1].latency, obs[1].cacheHit)
	rec.fail = nil
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b0, b1 := time.Date(2030, 5, 6, 7, 8, 0, 0, time.UTC), time.Date(2030, 5, 6, 7, 9, 0, 0, time.UTC)
	if bs := rec.buckets(); len(bs) != 2 || !bs[b0] || !bs[b1] {
		t.Fatalf("buckets stored = %v, want %v and %v", bs, b0, b1)
	}
	check := func(when string, answers, missed float64) {
		t.Helper()
		if got := rec.total("", "", nAnswers); got != answers {
			t.Errorf("%s: answers = %v, want %v", when, got, answers)
		}
		if got := rec.total("triage/v1", AllDomains, nRedFlagMissed); got != missed {
			t.Errorf("%s: red-flag misses = %v, want %v", when, got, missed)
		}
	}
	check("after the retry", 6, 2)

	// The finished bucket is forgotten once stored: the next flush sends
	// only the current one.
	c.Observe(obs[2].q, obs[2].a, obs[2].latency, obs[2].cacheHit)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.last {
		if !r.Bucket.Equal(b1) {
			t.Errorf("flush after success resent bucket %v (%s)", r.Bucket, r.Name)
		}
	}
	check("after one more answer", 7, 2)

	// And a flush that fails after a success loses nothing already counted.
	rec.fail = errors.New("down")
	c.Observe(obs[0].q, obs[0].a, obs[0].latency, obs[0].cacheHit)
	if err := c.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded against a failing store")
	}
	rec.fail = nil
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a failure and a retry in one bucket", 8, 3)
}

// While the store is down the collector keeps at most maxBuckets buckets,
// dropping the oldest.
func TestCollectorBoundedBuckets(t *testing.T) {
	clk := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	rec := &countsRecorder{fail: errors.New("down")}
	c := newTestCollector(rec, clk)
	o := sampleAnswers()[0]
	first := clk.Now()
	for range maxBuckets + 5 {
		c.Observe(o.q, o.a, o.latency, o.cacheHit)
		clk.Advance(time.Minute)
	}
	c.mu.Lock()
	n := len(c.buckets)
	_, hasFirst := c.buckets[first]
	c.mu.Unlock()
	if n != maxBuckets || hasFirst {
		t.Errorf("buckets = %d (first kept: %v), want %d without the oldest", n, hasFirst, maxBuckets)
	}
}

// Observe and Flush run concurrently (request goroutines and the flusher).
func TestCollectorConcurrent(t *testing.T) {
	rec := &countsRecorder{}
	c := NewCollector("r", rec, time.Hour, []string{redFlag}, nil)
	o := sampleAnswers()[0]
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				c.Observe(o.q, o.a, o.latency, o.cacheHit)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			_ = c.Flush(context.Background())
		}
	}()
	wg.Wait()
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Hour buckets: at most two were touched; every answer is counted once.
	if got := rec.total("", "", nAnswers); got != 800 {
		t.Errorf("answers = %v, want 800", got)
	}
}

func TestQuantile(t *testing.T) {
	// le holds cumulative counts per bound (seconds), as the collector writes.
	tests := []struct {
		name  string
		q     float64
		le    map[float64]int
		total int
		want  *float64
	}{
		{"no answers", 0.95, nil, 0, nil},
		// rank 95 lies in (0.25, 0.5] holding 90..100: 0.25 + 0.25·5/10.
		{"within a bucket", 0.95, map[float64]int{0.05: 10, 0.1: 50, 0.25: 90, 0.5: 100, 1: 100, 2: 100, 5: 100}, 100, f64(0.375)},
		// rank 3.8 lies in (2, 5] holding 3..4: 2 + 3·0.8.
		{"the slow tail", 0.95, map[float64]int{0.05: 1, 0.1: 2, 0.25: 3, 0.5: 3, 1: 3, 2: 3, 5: 4}, 4, f64(4.4)},
		// rank 5 in the first bucket (0, 0.01] holding 0..10.
		{"the first bucket starts at 0", 0.5, map[float64]int{0.01: 10, 0.05: 10, 0.1: 10, 0.25: 10, 0.5: 10, 1: 10, 2: 10, 5: 10}, 10, f64(0.005)},
		{"exactly on a bound", 0.5, map[float64]int{0.01: 0, 0.05: 0, 0.1: 5, 0.25: 10, 0.5: 10, 1: 10, 2: 10, 5: 10}, 10, f64(0.1)},
		{"beyond the last bound: the last bound", 0.95, map[float64]int{5: 90}, 100, f64(5)},
		{"every answer slower than 5 s", 0.95, map[float64]int{}, 7, f64(5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := quantile(tc.q, tc.le, tc.total)
			switch {
			case got == nil && tc.want == nil:
			case got == nil || tc.want == nil:
				t.Fatalf("quantile = %v, want %v", got, tc.want)
			case math.Abs(*got-*tc.want) > 1e-12:
				t.Fatalf("quantile = %v, want %v", *got, *tc.want)
			}
		})
	}
}

// Run flushes once more when its context ends, so a replica shutting down
// loses no counts.
func TestCollectorRunFlushesOnStop(t *testing.T) {
	rec := &countsRecorder{}
	c := NewCollector("r", rec, time.Minute, nil, nil)
	o := sampleAnswers()[0]
	c.Observe(o.q, o.a, o.latency, o.cacheHit)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, time.Hour, t.Logf); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if got := rec.total("", "", nAnswers); got != 1 {
		t.Errorf("answers stored on stop = %v, want 1", got)
	}
}
