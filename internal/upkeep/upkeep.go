// Package upkeep runs the store's periodic jobs: refreshing the summary
// views, deleting query records past their retention, and sweeping expired
// L3 cache entries. Each runs as a singleton across replicas (SPEC
// section 12), and a retention deletion is itself audited.
package upkeep

import (
	"context"
	"fmt"
	"time"

	"medserve/internal/audit"
	"medserve/internal/record"
	"medserve/internal/store"
)

// Recorder is the part of record.Recorder the jobs use.
type Recorder interface {
	Record(ctx context.Context, e record.Entry) error
}

// Config says which jobs run and how often; zero intervals take defaults.
type Config struct {
	Store         store.Store
	Recorder      Recorder
	RetentionDays int           // 0: keep query records for ever
	ViewsEvery    time.Duration // default 5 min
	RetentionEach time.Duration // default 1 h
	SweepEvery    time.Duration // default 10 min
	Logf          func(format string, args ...any)
	Now           func() time.Time
}

// MonitorCountsKept is how long the replicas' monitoring counts are kept.
const MonitorCountsKept = 7 * 24 * time.Hour

// Run runs the jobs until ctx is done; each also runs once at start.
func Run(ctx context.Context, c Config) {
	if c.ViewsEvery <= 0 {
		c.ViewsEvery = 5 * time.Minute
	}
	if c.RetentionEach <= 0 {
		c.RetentionEach = time.Hour
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	type job struct {
		name  string
		every time.Duration
		fn    func(context.Context) error
		next  time.Time
	}
	jobs := []*job{
		{name: "refresh-views", every: c.ViewsEvery, fn: c.Store.RefreshViews},
		{name: "cache-sweep", every: c.SweepEvery, fn: func(ctx context.Context) error {
			_, err := c.Store.CacheSweep(ctx, c.Now())
			return err
		}},
		// The replicas' answer counts only feed windows of a day at most
		// (monitor); a week is kept for looking back at an incident.
		{name: "monitor-counts-sweep", every: c.SweepEvery, fn: func(ctx context.Context) error {
			_, err := c.Store.DeleteMonitorCountsBefore(ctx, c.Now().Add(-MonitorCountsKept))
			return err
		}},
	}
	if c.RetentionDays > 0 {
		jobs = append(jobs, &job{name: "retention", every: c.RetentionEach, fn: func(ctx context.Context) error {
			_, err := Retain(ctx, c.Store, c.Recorder, c.RetentionDays, c.Now())
			return err
		}})
	}
	for ctx.Err() == nil {
		now := c.Now()
		wait := time.Minute
		for _, j := range jobs {
			if now.Before(j.next) {
				wait = min(wait, j.next.Sub(now))
				continue
			}
			j.next = now.Add(j.every)
			if _, err := c.Store.Singleton(ctx, j.name, j.fn); err != nil && ctx.Err() == nil {
				c.Logf("upkeep %s: %v", j.name, err)
			}
			wait = min(wait, j.every)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// Retain deletes query records older than days and audits the deletion;
// it returns how many records it deleted.
//
// The intent is recorded (durably) before anything is deleted, so a crash
// in between leaves an audited intent rather than an unaudited deletion;
// the count follows in a second event.
func Retain(ctx context.Context, st store.Store, rec Recorder, days int, now time.Time) (int64, error) {
	cutoff := now.Add(-time.Duration(days) * 24 * time.Hour).UTC()
	base := audit.Event{Actor: "system", Role: "service", Resource: "queries", Outcome: audit.OutcomeOK}
	intent := base
	intent.Action = "retention.delete"
	intent.Reason = fmt.Sprintf("deleting query records older than %s (retention %d days)", cutoff.Format(time.RFC3339), days)
	if err := rec.Record(ctx, record.Entry{Events: []audit.Event{intent}}); err != nil {
		return 0, fmt.Errorf("retention: not deleting, the deletion could not be audited: %w", err)
	}
	n, err := st.DeleteQueriesBefore(ctx, cutoff)
	done := base
	done.Action = "retention.deleted"
	done.Reason = fmt.Sprintf("deleted %d query records older than %s", n, cutoff.Format(time.RFC3339))
	if err != nil {
		done.Outcome, done.Reason = audit.OutcomeError, "retention deletion failed"
	}
	if rerr := rec.Record(ctx, record.Entry{Events: []audit.Event{done}}); rerr != nil && err == nil {
		err = fmt.Errorf("retention: audit the count: %w", rerr)
	}
	return n, err
}
