package monitor

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"medserve/internal/store"
	"medserve/internal/validate"
)

// Source is the part of the store the monitor reads.
type Source interface {
	Outcomes(ctx context.Context, since time.Time) ([]store.Outcome, error)
	MonitorTotals(ctx context.Context, since time.Time) ([]store.MonitorTotal, error)
	Reconcile(ctx context.Context, from, to time.Time) (store.Reconciliation, error)
	Modes(ctx context.Context) ([]store.Mode, error)
	Alerts(ctx context.Context, f store.AlertFilter) ([]store.Alert, error)
}

// Config tunes the monitor. Zero durations take the defaults.
type Config struct {
	Window           time.Duration // feedback window of the clinical figures (24 h)
	RuntimeWindow    time.Duration // latency, cache, memory, CPU, drift (5 min)
	ComplianceWindow time.Duration // stored queries reconciled with audit events (1 h)
	// MinSamples is the fewest feedback rows a live figure (and the
	// safety score) needs before a rule may act on it.
	MinSamples int
	Reference  *Profile                     // training inputs; nil: no drift figures
	Serving    func() []string              // versions answering now, production first
	Targets    func(version string) Targets // nil: SeedTargets
	Now        func() time.Time
}

// Monitor computes snapshots from the store; every replica runs one (for
// its /metrics and /api/v1/monitoring), the alert engine acts on them.
type Monitor struct {
	src    Source
	cfg    Config
	mu     sync.Mutex // one refresh at a time
	latest atomic.Pointer[Snapshot]
}

// New builds a monitor over src.
func New(src Source, cfg Config) *Monitor {
	if cfg.Window <= 0 {
		cfg.Window = 24 * time.Hour
	}
	if cfg.RuntimeWindow <= 0 {
		cfg.RuntimeWindow = 5 * time.Minute
	}
	if cfg.ComplianceWindow <= 0 {
		cfg.ComplianceWindow = time.Hour
	}
	if cfg.MinSamples <= 0 {
		cfg.MinSamples = 30
	}
	if cfg.Targets == nil {
		cfg.Targets = func(string) Targets { return SeedTargets() }
	}
	if cfg.Serving == nil {
		cfg.Serving = func() []string { return nil }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Monitor{src: src, cfg: cfg}
}

// MinSamples is the configured minimum number of feedback samples.
func (m *Monitor) MinSamples() int { return m.cfg.MinSamples }

// Snapshot is everything the monitor knows at one time.
type Snapshot struct {
	Time    time.Time `json:"time"`
	Windows struct {
		Clinical   string `json:"clinical"`
		Runtime    string `json:"runtime"`
		Compliance string `json:"compliance"`
	} `json:"windows"`
	MinSamples int                `json:"min_samples"`
	Serving    []string           `json:"serving"` // production first
	Targets    map[string]Targets `json:"targets"` // per serving version
	Clinical   []ClinicalEntry    `json:"clinical"`
	Safety     Safety             `json:"safety"`
	Runtime    Runtime            `json:"runtime"`
	Compliance Compliance         `json:"compliance"`
	Drift      Drift              `json:"drift"`
	Modes      []store.Mode       `json:"-"`
	Alerts     []store.Alert      `json:"-"` // pending and firing
}

// ClinicalEntry is one version's figures in one domain.
type ClinicalEntry struct {
	Key
	*Clinical
}

// Safety is the live safety score: the share of the validation gate's
// checks the production version passes on feedback in the window.
type Safety struct {
	Version string               `json:"version"`
	Samples int                  `json:"samples"`
	Score   *float64             `json:"score"` // nil below MinSamples
	Checks  []validate.GateCheck `json:"checks,omitempty"`
}

// Runtime are the replicas' figures summed over the runtime window.
type Runtime struct {
	Answers        int      `json:"answers"`
	P95Seconds     *float64 `json:"p95_seconds"` // interpolated from the histogram
	Over2s         Rate     `json:"slower_than_2s"`
	Over5s         Rate     `json:"slower_than_5s"`
	CacheHitRate   Rate     `json:"cache_hit_rate"`
	ReviewRate     Rate     `json:"review_required_rate"`
	MemoryMB       *float64 `json:"memory_mb"`       // the largest replica
	CPUUtilization *float64 `json:"cpu_utilization"` // the busiest replica, share of its CPUs
	Goroutines     *float64 `json:"goroutines"`      // the largest replica
}

// Compliance is the reconciliation of stored queries with audit events.
type Compliance struct {
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Queries   int64     `json:"queries"`
	Unaudited int64     `json:"unaudited"`
	Score     *float64  `json:"score"` // share audited; nil without queries
}

// Drift compares the inputs answered in the runtime window with the
// training data's (population stability index per feature).
type Drift struct {
	Answers int                `json:"answers"`
	PSI     map[string]float64 `json:"psi"`
	Max     float64            `json:"max"`
	Feature string             `json:"feature"` // the feature with Max
}

// Latest is the last snapshot taken (nil before the first Refresh).
func (m *Monitor) Latest() *Snapshot { return m.latest.Load() }

// Refresh reads the store and computes a new snapshot.
func (m *Monitor) Refresh(ctx context.Context) (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now().UTC()
	// Snapshots are shared by readers: complete when stored, never changed after.
	s := &Snapshot{Time: now, MinSamples: m.cfg.MinSamples, Serving: m.cfg.Serving(), Targets: map[string]Targets{}, Clinical: []ClinicalEntry{}}
	s.Windows.Clinical, s.Windows.Runtime, s.Windows.Compliance = m.cfg.Window.String(), m.cfg.RuntimeWindow.String(), m.cfg.ComplianceWindow.String()
	for _, v := range s.Serving {
		s.Targets[v] = m.cfg.Targets(v)
	}

	outs, err := m.src.Outcomes(ctx, now.Add(-m.cfg.Window))
	if err != nil {
		return nil, fmt.Errorf("read feedback: %w", err)
	}
	figs := ClinicalFigures(outs)
	totals, err := m.src.MonitorTotals(ctx, now.Add(-m.cfg.RuntimeWindow))
	if err != nil {
		return nil, fmt.Errorf("read monitor counts: %w", err)
	}
	// Red-flag answers are counted over the clinical window, like feedback.
	clinTotals, err := m.src.MonitorTotals(ctx, now.Add(-m.cfg.Window))
	if err != nil {
		return nil, fmt.Errorf("read monitor counts: %w", err)
	}
	for _, t := range clinTotals {
		if t.Version == "" || (t.Name != nRedFlag && t.Name != nRedFlagMissed) {
			continue
		}
		k := Key{t.Version, t.Domain}
		c := figs[k]
		if c == nil {
			c = &Clinical{}
			figs[k] = c
		}
		if t.Name == nRedFlag {
			c.CriticalMiss.Den += int(t.Sum)
		} else {
			c.CriticalMiss.Num += int(t.Sum)
		}
	}
	for k, c := range figs {
		s.Clinical = append(s.Clinical, ClinicalEntry{k, c})
	}
	sort.Slice(s.Clinical, func(i, j int) bool {
		a, b := s.Clinical[i].Key, s.Clinical[j].Key
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Domain < b.Domain
	})
	if len(s.Serving) > 0 {
		v := s.Serving[0]
		s.Safety.Version = v
		if c := figs[Key{v, AllDomains}]; c != nil {
			s.Safety.Samples = c.Samples
			if c.Samples >= m.cfg.MinSamples {
				g := validate.Gate(c.Metrics(), s.Targets[v].Gate, nil)
				s.Safety.Score, s.Safety.Checks = &g.SafetyScore, g.Checks
			}
		}
	}
	s.Runtime, s.Drift = m.runtime(totals)

	from := now.Add(-m.cfg.ComplianceWindow)
	rec, err := m.src.Reconcile(ctx, from, now)
	if err != nil {
		return nil, fmt.Errorf("reconcile audit: %w", err)
	}
	s.Compliance = Compliance{From: from, To: now, Queries: rec.Queries, Unaudited: rec.Unaudited}
	if rec.Queries > 0 {
		v := 1 - float64(rec.Unaudited)/float64(rec.Queries)
		s.Compliance.Score = &v
	}
	if s.Modes, err = m.src.Modes(ctx); err != nil {
		return nil, fmt.Errorf("read modes: %w", err)
	}
	if s.Alerts, err = m.src.Alerts(ctx, store.AlertFilter{State: "active", Limit: 1000}); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	m.latest.Store(s)
	return s, nil
}

func (m *Monitor) runtime(totals []store.MonitorTotal) (Runtime, Drift) {
	var r Runtime
	d := Drift{PSI: map[string]float64{}}
	le := map[float64]int{}
	inputs := map[string]float64{}
	gauge := func(t store.MonitorTotal) *float64 { v := t.Max; return &v }
	for _, t := range totals {
		if t.Version != "" {
			continue
		}
		switch {
		case t.Name == nAnswers:
			r.Answers = int(t.Sum)
		case t.Name == nCacheHits:
			r.CacheHitRate.Num = int(t.Sum)
		case t.Name == nReview:
			r.ReviewRate.Num = int(t.Sum)
		case t.Name == nMemoryMB:
			r.MemoryMB = gauge(t)
		case t.Name == nCPUUtilization:
			r.CPUUtilization = gauge(t)
		case t.Name == nGoroutines:
			r.Goroutines = gauge(t)
		case strings.HasPrefix(t.Name, nLatencyLE):
			if b, err := strconv.ParseFloat(strings.TrimPrefix(t.Name, nLatencyLE), 64); err == nil {
				le[b] = int(t.Sum)
			}
		case strings.HasPrefix(t.Name, nInput):
			inputs[strings.TrimPrefix(t.Name, nInput)] = t.Sum
		}
	}
	r.CacheHitRate.Den, r.ReviewRate.Den = r.Answers, r.Answers
	r.Over2s = Rate{Num: r.Answers - le[2], Den: r.Answers}
	r.Over5s = Rate{Num: r.Answers - le[5], Den: r.Answers}
	r.P95Seconds = quantile(0.95, le, r.Answers)
	if m.cfg.Reference != nil {
		for k, v := range inputs {
			if strings.HasPrefix(k, "age=") {
				d.Answers += int(v)
			}
		}
		if d.Answers > 0 {
			d.PSI = m.cfg.Reference.PSI(inputs)
			for _, f := range driftFeatures {
				if v, ok := d.PSI[f]; ok && v > d.Max {
					d.Max, d.Feature = v, f
				}
			}
		}
	}
	return r, d
}

// quantile interpolates the q-quantile within the histogram bucket that
// holds it (as Prometheus's histogram_quantile does); beyond the last
// bound it answers the last bound, a lower limit.
func quantile(q float64, le map[float64]int, total int) *float64 {
	if total == 0 {
		return nil
	}
	rank := q * float64(total)
	lower, below := 0.0, 0
	for _, ub := range latencyBounds {
		n := le[ub]
		if float64(n) >= rank {
			v := lower
			if n > below {
				v += (ub - lower) * (rank - float64(below)) / float64(n-below)
			}
			return &v
		}
		lower, below = ub, n
	}
	v := latencyBounds[len(latencyBounds)-1]
	return &v
}

// Mode reports whether the named mode is on, and why.
func (s *Snapshot) Mode(name string) (on bool, reason string) {
	for _, m := range s.Modes {
		if m.Name == name {
			return m.Enabled, m.Reason
		}
	}
	return false, ""
}

// Figure returns a clinical figure's value; ok is false without data.
func (s *Snapshot) Figure(k Key) *Clinical {
	for _, e := range s.Clinical {
		if e.Key == k {
			return e.Clinical
		}
	}
	return nil
}

// finite guards exported figures: NaN and ±Inf are never reported.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
