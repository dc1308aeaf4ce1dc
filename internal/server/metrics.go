package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"medserve/internal/batcher"
	"medserve/internal/pipeline"
)

// Metrics are the server's Prometheus metrics, on a registry of their own
// (no global default registry).
type Metrics struct {
	Registry    *prometheus.Registry
	duration    *prometheus.HistogramVec
	inflight    prometheus.Gauge
	QueueTime   *prometheus.HistogramVec
	ComputeTime *prometheus.HistogramVec
	BatchSize   *prometheus.HistogramVec
	Failures    *prometheus.CounterVec
	CacheEvents *prometheus.CounterVec
	ModelInfo   *prometheus.GaugeVec
	RateLimited *prometheus.CounterVec
	// The audit outbox (package record).
	auditFlushed  *prometheus.CounterVec
	auditFailures prometheus.Counter
	auditBacklog  prometheus.Gauge
	auditFlush    prometheus.Histogram
}

// NewMetrics registers every metric, the Go runtime and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	lat := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 2.5, 5, 10}
	m := &Metrics{
		Registry: r,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medserve_http_request_duration_seconds",
			Help: "HTTP request duration by route and status.", Buckets: lat}, []string{"route", "status"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medserve_http_in_flight_requests", Help: "Requests being served."}),
		QueueTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medserve_model_queue_seconds",
			Help: "Time a request waited in the batcher queue.", Buckets: lat}, []string{"model"}),
		ComputeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medserve_model_compute_seconds",
			Help: "Time one batch took to compute.", Buckets: lat}, []string{"model"}),
		BatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "medserve_model_batch_size",
			Help: "Requests per batch.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128}}, []string{"model"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medserve_failures_total",
			Help: "Failed or degraded requests by reason (rejected, cancelled, timeout, backend)."}, []string{"model", "reason"}),
		CacheEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medserve_cache_events_total",
			Help: "Cache hits, misses and evictions by level."}, []string{"level", "event"}),
		ModelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "medserve_model_info",
			Help: "The model version being served (value 1)."}, []string{"model", "version", "family"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medserve_rate_limited_total",
			Help: "Requests refused with 429 by rate-limit zone."}, []string{"zone"}),
		auditFlushed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "medserve_audit_flushed_total",
			Help: "Spool entries and audit events written to the store."}, []string{"kind"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "medserve_audit_flush_failures_total",
			Help: "Failed attempts to write the audit spool to the store (entries stay in the spool)."}),
		auditBacklog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "medserve_audit_spool_backlog",
			Help: "Durable spool entries not yet in the store."}),
		auditFlush: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "medserve_audit_flush_seconds",
			Help: "Time one batch of spool entries took to write to the store.", Buckets: lat}),
	}
	r.MustRegister(m.auditFlushed, m.auditFailures, m.auditBacklog, m.auditFlush, m.RateLimited)
	r.MustRegister(m.duration, m.inflight, m.QueueTime, m.ComputeTime, m.BatchSize, m.Failures, m.CacheEvents, m.ModelInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// instrument records duration and status under the route pattern (never
// the raw path, which could carry identifiers).
func (m *Metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inflight.Inc()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			m.inflight.Dec()
			m.duration.WithLabelValues(route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(rec, r)
	})
}

// batchObserver feeds the batcher's measurements into the metrics.
type batchObserver struct {
	m     *Metrics
	model string
}

// BatcherObserver returns the batcher observer for one model.
func (m *Metrics) BatcherObserver(model string) batcher.Observer { return batchObserver{m, model} }

func (o batchObserver) QueueTime(d time.Duration) {
	o.m.QueueTime.WithLabelValues(o.model).Observe(d.Seconds())
}
func (o batchObserver) ComputeTime(d time.Duration) {
	o.m.ComputeTime.WithLabelValues(o.model).Observe(d.Seconds())
}
func (o batchObserver) BatchSize(n int)        { o.m.BatchSize.WithLabelValues(o.model).Observe(float64(n)) }
func (o batchObserver) Rejected(reason string) { o.m.Failures.WithLabelValues(o.model, reason).Inc() }

// cacheObserver counts cache events by level (never by key).
type cacheObserver struct{ m *Metrics }

// CacheObserver returns the observer for the answer cache.
func (m *Metrics) CacheObserver() cacheObserver { return cacheObserver{m} }

// Hit counts a hit.
func (o cacheObserver) Hit(level string) { o.m.CacheEvents.WithLabelValues(level, "hit").Inc() }

// Miss counts a miss.
func (o cacheObserver) Miss(level string) { o.m.CacheEvents.WithLabelValues(level, "miss").Inc() }

// Evict counts an eviction.
func (o cacheObserver) Evict(level string) { o.m.CacheEvents.WithLabelValues(level, "evict").Inc() }

// LevelError counts a cache level that could not answer (Redis or the store down).
func (o cacheObserver) LevelError(level string) {
	o.m.CacheEvents.WithLabelValues(level, "error").Inc()
}

// WriteDropped counts a cache write dropped because the level's queue was full.
func (o cacheObserver) WriteDropped(level string) {
	o.m.CacheEvents.WithLabelValues(level, "dropped").Inc()
}

// RecorderObserver reports the audit outbox's figures (record.Observer).
func (m *Metrics) RecorderObserver() recorderObserver { return recorderObserver{m} }

type recorderObserver struct{ m *Metrics }

func (o recorderObserver) Flushed(entries, events int, d time.Duration) {
	o.m.auditFlushed.WithLabelValues("entries").Add(float64(entries))
	o.m.auditFlushed.WithLabelValues("events").Add(float64(events))
	o.m.auditFlush.Observe(d.Seconds())
}
func (o recorderObserver) FlushFailed()          { o.m.auditFailures.Inc() }
func (o recorderObserver) Backlog(entries int64) { o.m.auditBacklog.Set(float64(entries)) }

// shadowFrom exports the pipeline's shadow comparisons. The counters are
// read at scrape time; a registry shared by several servers (tests) keeps
// the first pipeline's.
func (m *Metrics) shadowFrom(p *pipeline.Pipeline) {
	if p == nil {
		return
	}
	stat := func(f func(pipeline.ShadowStats) int64) func() float64 {
		return func() float64 {
			st, _ := p.Shadow()
			return float64(f(st))
		}
	}
	for _, c := range []struct {
		result string
		f      func(pipeline.ShadowStats) int64
	}{
		{"compared", func(s pipeline.ShadowStats) int64 { return s.Compared }},
		{"agreed", func(s pipeline.ShadowStats) int64 { return s.Agreed }},
		{"would_under_triage", func(s pipeline.ShadowStats) int64 { return s.UnderTriage }},
		{"skipped", func(s pipeline.ShadowStats) int64 { return s.Skipped }},
	} {
		_ = m.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "medserve_shadow_comparisons_total",
			Help: "The shadow version's comparisons with production, by result (since the shadow was set).", ConstLabels: prometheus.Labels{"result": c.result}},
			stat(c.f)))
	}
}
