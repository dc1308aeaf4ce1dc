package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Exporter serves the latest snapshot as Prometheus gauges (the same
// figures the alert engine acts on, so deploy/prometheus/rules.yml and the
// engine see one truth).
type Exporter struct {
	m         *Monitor
	clinical  map[string]*prometheus.Desc
	samples   *prometheus.Desc
	redFlags  *prometheus.Desc
	safety    *prometheus.Desc
	compl     *prometheus.Desc
	cacheHit  *prometheus.Desc
	drift     *prometheus.Desc
	modes     map[string]*prometheus.Desc
	alerts    *prometheus.Desc
	cpuLocal  *prometheus.Desc
	collector *Collector
}

// clinicalGauges maps metric names to the figure they export.
var clinicalGauges = map[string]func(*Clinical) Rate{
	"medserve_clinical_accuracy":              func(c *Clinical) Rate { return c.Accuracy },
	"medserve_clinical_exact_accuracy":        func(c *Clinical) Rate { return c.ExactAccuracy },
	"medserve_clinical_sensitivity":           func(c *Clinical) Rate { return c.Sensitivity },
	"medserve_clinical_specificity":           func(c *Clinical) Rate { return c.Specificity },
	"medserve_clinical_false_negative_rate":   func(c *Clinical) Rate { return c.FNR },
	"medserve_clinical_undertriage_rate":      func(c *Clinical) Rate { return c.UnderTriage },
	"medserve_clinical_critical_miss_rate":    func(c *Clinical) Rate { return c.CriticalMiss },
	"medserve_clinical_escalation_accuracy":   func(c *Clinical) Rate { return c.EscalationAccuracy },
	"medserve_clinical_interaction_detection": func(c *Clinical) Rate { return c.InteractionDetection },
}

// modeGauges are the cluster-wide modes as 0/1 gauges.
var modeGauges = map[string]string{
	"oversight":  "medserve_oversight_mode",
	"compliance": "medserve_compliance_mode",
	"scale_up":   "medserve_scale_up_requested",
	"caching":    "medserve_caching_mode",
}

// NewExporter exports m's snapshots; c (may be nil) adds this replica's
// own CPU utilisation.
func NewExporter(m *Monitor, c *Collector) *Exporter {
	vd := []string{"version", "domain"}
	e := &Exporter{m: m, collector: c, clinical: map[string]*prometheus.Desc{}, modes: map[string]*prometheus.Desc{},
		samples:  prometheus.NewDesc("medserve_clinical_feedback_samples", "Feedback samples in the clinical window.", vd, nil),
		redFlags: prometheus.NewDesc("medserve_clinical_red_flag_answers", "Answers with an affirmed red-flag finding in the clinical window (what the critical-symptom miss rate rests on).", vd, nil),
		safety:   prometheus.NewDesc("medserve_safety_score", "Share of the validation gate's checks the production version passes on live feedback.", nil, nil),
		compl:    prometheus.NewDesc("medserve_compliance_score", "Share of stored queries in the window with an audit event (independent reconciliation).", nil, nil),
		cacheHit: prometheus.NewDesc("medserve_cache_hit_rate", "Share of answers served from a cache in the runtime window, all replicas.", nil, nil),
		drift:    prometheus.NewDesc("medserve_input_drift_psi", "Population stability index of an input against the training data.", []string{"feature"}, nil),
		alerts:   prometheus.NewDesc("medserve_alerts", "Alerts pending or firing.", []string{"rule", "severity", "state"}, nil),
		cpuLocal: prometheus.NewDesc("medserve_cpu_utilization", "This replica's CPU use as a share of the CPUs it may use.", nil, nil),
	}
	for name := range clinicalGauges {
		e.clinical[name] = prometheus.NewDesc(name, "Live clinical figure from feedback (see SPEC section 11).", vd, nil)
	}
	for mode, name := range modeGauges {
		e.modes[mode] = prometheus.NewDesc(name, "1 while the "+mode+" mode is on.", nil, nil)
	}
	return e
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range e.clinical {
		ch <- d
	}
	for _, d := range e.modes {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{e.samples, e.redFlags, e.safety, e.compl, e.cacheHit, e.drift, e.alerts, e.cpuLocal} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	if e.collector != nil {
		if v := e.collector.LastCPU(); v >= 0 {
			ch <- prometheus.MustNewConstMetric(e.cpuLocal, prometheus.GaugeValue, v)
		}
	}
	s := e.m.Latest()
	if s == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		if finite(v) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
	}
	for _, c := range s.Clinical {
		if c.Samples > 0 {
			gauge(e.samples, float64(c.Samples), c.Version, c.Domain)
		}
		if c.CriticalMiss.Den > 0 {
			gauge(e.redFlags, float64(c.CriticalMiss.Den), c.Version, c.Domain)
		}
		for name, fig := range clinicalGauges {
			if v, ok := fig(c.Clinical).Value(); ok {
				gauge(e.clinical[name], v, c.Version, c.Domain)
			}
		}
	}
	if s.Safety.Score != nil {
		gauge(e.safety, *s.Safety.Score)
	}
	if s.Compliance.Score != nil {
		gauge(e.compl, *s.Compliance.Score)
	}
	if v, ok := s.Runtime.CacheHitRate.Value(); ok {
		gauge(e.cacheHit, v)
	}
	for f, v := range s.Drift.PSI {
		gauge(e.drift, v, f)
	}
	for mode, d := range e.modes {
		on, _ := s.Mode(mode)
		v := 0.0
		if on {
			v = 1
		}
		gauge(d, v)
	}
	type ak struct{ rule, sev, state string }
	n := map[ak]int{}
	for _, a := range s.Alerts {
		n[ak{a.Rule, a.Severity, a.State}]++
	}
	for k, c := range n {
		gauge(e.alerts, float64(c), k.rule, k.sev, k.state)
	}
}
