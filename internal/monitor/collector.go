package monitor

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"medserve/internal/clinical"
	"medserve/internal/store"
	"medserve/internal/triage"
)

// Figure names in the store's monitor counts.
const (
	nAnswers        = "answers"
	nRedFlag        = "red_flag_answers"
	nRedFlagMissed  = "red_flag_missed"
	nCacheHits      = "cache_hits"
	nReview         = "review_required"
	nLatencyLE      = "latency_le:" // + bound in seconds
	nInput          = "input:"      // + feature=bin
	nMemoryMB       = "gauge:memory_mb"
	nCPUUtilization = "gauge:cpu_utilization"
	nGoroutines     = "gauge:goroutines"
)

// latencyBounds (seconds) are the answer-time histogram; 2 and 5 are the
// seed's warning and critical response times.
var latencyBounds = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5}

// latencyNames are the bounds' figure names, made once: Observe runs on
// every answer.
var latencyNames = func() []string {
	out := make([]string, len(latencyBounds))
	for i, ub := range latencyBounds {
		out[i] = nLatencyLE + strconv.FormatFloat(ub, 'g', -1, 64)
	}
	return out
}()

// CountsStore is where replicas write their counts.
type CountsStore interface {
	SaveMonitorCounts(ctx context.Context, cs []store.MonitorCount) error
}

// Collector counts one replica's answers in time buckets and writes them
// to the store, where the alert engine (on whichever replica runs it) sums
// every replica's. Counting is in memory; the request path never waits
// for the store.
type Collector struct {
	replica  string
	st       CountsStore
	bucket   time.Duration
	redFlags map[string]bool
	known    map[string]bool // drift concepts binned on their own
	now      func() time.Time

	mu      sync.Mutex
	buckets map[time.Time]map[countKey]float64

	cpuMu              sync.Mutex
	lastCPU, lastWall  time.Duration
	lastSampleReadable bool
	lastUtil           float64 // -1 until two samples
}

type countKey struct{ version, domain, name string }

// maxBuckets bounds what a replica keeps while the store is unreachable.
const maxBuckets = 120

// NewCollector counts for replica; redFlags are the finding codes whose
// affirmed presence makes an answer of acuity ≥ 3 a critical miss; known
// are the drift profile's concepts (may be nil).
func NewCollector(replica string, st CountsStore, bucket time.Duration, redFlags []string, known map[string]bool) *Collector {
	if bucket <= 0 {
		bucket = time.Minute
	}
	rf := map[string]bool{}
	for _, c := range redFlags {
		rf[c] = true
	}
	return &Collector{replica: replica, st: st, bucket: bucket, redFlags: rf, known: known, now: time.Now,
		buckets: map[time.Time]map[countKey]float64{}, lastUtil: -1}
}

// Observe counts one answer.
func (c *Collector) Observe(q clinical.Query, a *triage.Assessment, latency time.Duration, cacheHit bool) {
	version := a.Model.Name + "/" + a.Model.Version
	domain := string(a.Domain)
	redFlag := false
	for _, f := range a.Findings {
		if f.Affirmed() && c.redFlags[f.Code] {
			redFlag = true
			break
		}
	}
	in := InputOf(q, a.Findings)
	// The vital signs the model read: the structured ones merged with
	// those found in the text.
	in.Vitals = a.Vitals
	bins := Bins(in, c.known)
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.current()
	for _, d := range []string{domain, AllDomains} {
		b[countKey{version, d, nAnswers}]++
		if redFlag {
			b[countKey{version, d, nRedFlag}]++
			if a.Acuity >= 3 {
				b[countKey{version, d, nRedFlagMissed}]++
			}
		}
	}
	b[countKey{"", "", nAnswers}]++
	if cacheHit {
		b[countKey{"", "", nCacheHits}]++
	}
	if a.ReviewRequired {
		b[countKey{"", "", nReview}]++
	}
	s := latency.Seconds()
	for i, ub := range latencyBounds {
		if s <= ub {
			b[countKey{"", "", latencyNames[i]}]++
		}
	}
	for _, bin := range bins {
		b[countKey{"", "", nInput + bin}]++
	}
}

// current returns the bucket of now; c.mu is held.
func (c *Collector) current() map[countKey]float64 {
	t := c.now().UTC().Truncate(c.bucket)
	b := c.buckets[t]
	if b == nil {
		b = map[countKey]float64{}
		c.buckets[t] = b
		for len(c.buckets) > maxBuckets {
			var oldest time.Time
			for k := range c.buckets {
				if oldest.IsZero() || k.Before(oldest) {
					oldest = k
				}
			}
			delete(c.buckets, oldest)
		}
	}
	return b
}

// Flush writes every bucket held (with the process gauges in the current
// one) and forgets the finished ones once stored. A bucket is written
// whole each time, so a retry after a failure cannot count twice.
func (c *Collector) Flush(ctx context.Context) error {
	mem, cpu, gor := c.process()
	c.mu.Lock()
	cur := c.current()
	cur[countKey{"", "", nMemoryMB}] = mem
	if cpu >= 0 {
		cur[countKey{"", "", nCPUUtilization}] = cpu
	}
	cur[countKey{"", "", nGoroutines}] = float64(gor)
	now := c.now().UTC().Truncate(c.bucket)
	var rows []store.MonitorCount
	for t, b := range c.buckets {
		for k, v := range b {
			rows = append(rows, store.MonitorCount{Replica: c.replica, Bucket: t, Version: k.version, Domain: k.domain, Name: k.name, Value: v})
		}
	}
	c.mu.Unlock()
	if err := c.st.SaveMonitorCounts(ctx, rows); err != nil {
		return fmt.Errorf("save monitor counts: %w", err)
	}
	c.mu.Lock()
	for t := range c.buckets {
		if t.Before(now) {
			delete(c.buckets, t)
		}
	}
	c.mu.Unlock()
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (c *Collector) Run(ctx context.Context, every time.Duration, logf func(string, ...any)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = c.Flush(fctx)
			cancel()
			return
		case <-t.C:
			if err := c.Flush(ctx); err != nil && ctx.Err() == nil && logf != nil {
				logf("monitor: %v", err)
			}
		}
	}
}

// process samples resident memory (MiB), CPU use since the last sample as
// a share of the CPUs the process may use (-1 on the first sample), and
// goroutines.
func (c *Collector) process() (memMB, cpu float64, goroutines int) {
	memMB = residentMB()
	goroutines = runtime.NumGoroutine()
	cpu = -1
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return memMB, cpu, goroutines
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	wall := time.Duration(c.now().UnixNano())
	c.cpuMu.Lock()
	defer c.cpuMu.Unlock()
	if c.lastSampleReadable && wall > c.lastWall {
		cpu = float64(used-c.lastCPU) / float64(wall-c.lastWall) / float64(runtime.GOMAXPROCS(0))
	}
	c.lastCPU, c.lastWall, c.lastSampleReadable = used, wall, true
	if cpu >= 0 {
		c.lastUtil = cpu
	}
	return memMB, cpu, goroutines
}

// LastCPU is the CPU utilisation of the last flush; -1 before two flushes.
func (c *Collector) LastCPU() float64 {
	c.cpuMu.Lock()
	defer c.cpuMu.Unlock()
	return c.lastUtil
}

// residentMB is the resident set (what an OOM killer and the seed's 8 GB
// threshold mean); where /proc is absent, the memory the Go runtime holds.
func residentMB() float64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseFloat(f[1], 64); err == nil {
				return pages * float64(os.Getpagesize()) / (1 << 20)
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Sys) / (1 << 20)
}
