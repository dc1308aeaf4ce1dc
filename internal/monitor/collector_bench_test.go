package monitor

import (
	"context"
	"testing"
	"time"

	"medserve/internal/clinical"
	"medserve/internal/store"
	"medserve/internal/triage"
)

type discardCounts struct{}

func (discardCounts) SaveMonitorCounts(context.Context, []store.MonitorCount) error { return nil }

// BenchmarkCollectorObserve is what counting costs each answer on the
// request path (go test -bench CollectorObserve ./internal/monitor).
func BenchmarkCollectorObserve(b *testing.B) {
	c := NewCollector("r1", discardCounts{}, time.Minute, []string{"stroke"}, map[string]bool{"chest_pain": true})
	age, sbp, hr := 58.0, 88.0, 118.0
	q := clinical.Query{Age: &age, Sex: "male", Arrival: "ambulance", Vitals: clinical.Vitals{SBP: &sbp, HR: &hr}}
	a := &triage.Assessment{Acuity: 2, Domain: "emergency", Vitals: q.Vitals, Model: triage.ModelRef{Name: "triage", Version: "1"},
		Findings: []clinical.Finding{{Code: "chest_pain"}, {Code: "diaphoresis"}}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Observe(q, a, 3*time.Millisecond, false)
		}
	})
}
