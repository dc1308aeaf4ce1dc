package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"medserve/internal/alert"
	"medserve/internal/monitor"
	"medserve/internal/pipeline"
	"medserve/internal/registry"
	"medserve/internal/server"
	"medserve/internal/text"
	"medserve/internal/triage"
)

// monitorConfig is the monitoring and alerting configuration (SPEC section 11).
type monitorConfig struct {
	interval, window, bucket, coolDown time.Duration
	minSamples                         int
	webhook, forOverride               string
}

func monitorFlags(fset *flag.FlagSet, e env, c *monitorConfig) {
	fset.DurationVar(&c.interval, "alert-interval", 15*time.Second, "how often alert rules are evaluated (and monitoring figures refreshed)")
	fset.IntVar(&c.minSamples, "alert-min-samples", 30, "fewest feedback samples in its window before a clinical rule may fire")
	fset.DurationVar(&c.window, "monitor-window", 24*time.Hour, "feedback window of the live clinical figures")
	fset.DurationVar(&c.bucket, "monitor-bucket", time.Minute, "time bucket of the replicas' answer counts")
	fset.DurationVar(&c.coolDown, "rollback-cooldown", 30*time.Minute, "least time between two automatic rollbacks")
	fset.StringVar(&c.webhook, "alert-webhook", e.getenv("MEDSERVE_ALERT_WEBHOOK"), "URL that receives alert notifications and pages as JSON (env MEDSERVE_ALERT_WEBHOOK)")
	fset.StringVar(&c.forOverride, "alert-for", "", "replace every rule's for-duration, e.g. 0s (drills and tests)")
}

// monitoring is the wiring of step 8 on one replica.
type monitoring struct {
	monitor   *monitor.Monitor
	collector *monitor.Collector
	modes     *alert.ModeState
	engine    *alert.Engine
}

// targetTolerance: a version validated below a seed target is held to its
// validated figure less 5 % (SPEC section 11), the seed's own tolerance
// for domain targets.
const targetTolerance = 0.05

func startMonitoring(ctx context.Context, e env, c serveConfig, st *state, reg *registry.Registry, pipe *pipeline.Pipeline,
	fsys fs.FS, eng *text.Engine, feat *triage.Featurizer, metrics *server.Metrics) (*monitoring, error) {
	mc := c.mon
	if mc.interval <= 0 {
		mc.interval = 15 * time.Second
	}
	logf := func(format string, args ...any) { fmt.Fprintf(e.stderr, "medserve: "+format+"\n", args...) }
	ref, err := driftReference(fsys, eng)
	if err != nil {
		return nil, err
	}
	var targets sync.Map // version → monitor.Targets; manifests never change
	mon := monitor.New(st.store, monitor.Config{
		Window: mc.window, MinSamples: mc.minSamples, Reference: ref, Serving: reg.ServingVersions,
		Targets: func(version string) monitor.Targets {
			if t, ok := targets.Load(version); ok {
				return t.(monitor.Targets)
			}
			t := monitor.SeedTargets()
			if _, v, ok := strings.Cut(version, "/"); ok {
				if m, err := reg.Manifest(v); err == nil {
					t = t.AdjustTo(m.Gate, targetTolerance)
				}
			}
			targets.Store(version, t)
			return t
		},
	})
	col := monitor.NewCollector(st.spool.ID(), st.store, mc.bucket, feat.Rules().RedFlags(), ref.Concepts)
	modes := alert.NewModeState(st.store, pipe, c.cacheMB > 0)
	acts := &alert.Actions{Registry: reg, Modes: modes, Webhook: mc.webhook, Logf: logf}
	cfg := alert.Config{Interval: mc.interval, RollbackCoolDown: mc.coolDown, Logf: logf}
	if mc.forOverride != "" {
		d, err := time.ParseDuration(mc.forOverride)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--alert-for %q: a duration ≥ 0", mc.forOverride)
		}
		cfg.ForOverride = &d
	}
	m := &monitoring{monitor: mon, collector: col, modes: modes, engine: alert.NewEngine(st.store, mon, acts, cfg)}
	metrics.Registry.MustRegister(monitor.NewExporter(mon, col))
	// The modes apply before the first answer: a replica that starts
	// while oversight is on must not answer without it.
	if ms, err := st.store.Modes(ctx); err == nil {
		modes.Apply(ms)
	} else {
		return nil, fmt.Errorf("read modes: %w", err)
	}
	go col.Run(ctx, mc.interval, logf)
	go m.engine.Run(ctx)
	return m, nil
}

// driftReference is the training data's input profile: the bundled KTAS
// rows every shipped version was trained on.
func driftReference(fsys fs.FS, eng *text.Engine) (*monitor.Profile, error) {
	cases, _, _, err := readKTAS(fsys, "")
	if err != nil {
		return nil, fmt.Errorf("drift reference: %w", err)
	}
	inputs := make([]monitor.Input, 0, len(cases))
	for _, cs := range cases {
		a := eng.Analyze(cs.Query.Text, text.Options{})
		inputs = append(inputs, monitor.InputOf(cs.Query, a.Findings))
	}
	return monitor.NewProfile(inputs, 20), nil
}
