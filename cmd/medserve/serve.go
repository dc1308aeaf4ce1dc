package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"medserve/internal/kb"
	"medserve/internal/pipeline"
	"medserve/internal/server"
	"medserve/internal/triage"
)

// serveConfig is the server's configuration, from flags and environment
// in one place.
type serveConfig struct {
	addr, dataDir, models, clinicalData string
	deadline, shutdownGrace             time.Duration
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func cmdServe(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c serveConfig
	fset.StringVar(&c.addr, "addr", envOr(e.getenv, "MEDSERVE_ADDR", ":8080"), "listen address (env MEDSERVE_ADDR)")
	fset.StringVar(&c.dataDir, "data-dir", envOr(e.getenv, "MEDSERVE_DATA_DIR", "./medserve-data"), "state directory: database, keys, spool (env MEDSERVE_DATA_DIR)")
	fset.StringVar(&c.models, "models", envOr(e.getenv, "MEDSERVE_MODELS", "./models"), "model repository (env MEDSERVE_MODELS)")
	fset.DurationVar(&c.deadline, "deadline", time.Second, "deadline for the parallel tasks of one query; a task that misses it falls back to the rules")
	fset.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	clinicalData := clinicalDataFlag(fset, e.getenv)
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	c.clinicalData = *clinicalData
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", c.addr, err)
	}
	return serve(ctx, e, c, ln)
}

// serve runs the server on ln until ctx is done, then drains in-flight
// requests and returns nil.
func serve(ctx context.Context, e env, c serveConfig, ln net.Listener) error {
	ready := new(atomic.Bool)
	metrics := server.NewMetrics()
	fsys, feat, err := triageDeps(c.clinicalData)
	if err != nil {
		return err
	}
	eng, err := loadEngine(c.clinicalData)
	if err != nil {
		return err
	}
	k, err := kb.Load(fsys)
	if err != nil {
		return err
	}
	dir, err := newestVersion(filepath.Join(c.models, "triage"))
	if err != nil {
		return err
	}
	art, err := triage.LoadArtifact(dir, feat.Spec())
	if err != nil {
		return err
	}
	m := art.Manifest
	metrics.ModelInfo.WithLabelValues(m.Name, m.Version, m.Family).Set(1)
	pipe := pipeline.New(triage.NewAssessor(feat, art), k, pipeline.DirectPredictor{Model: art.Model}, nil, nil, pipeline.Config{Deadline: c.deadline})
	handler := server.NewServer(server.Deps{Pipeline: pipe, Text: eng, KB: k, Triage: art, Features: feat.Spec(), Metrics: metrics, Ready: ready, Version: version})

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(e.stderr, "medserve %s listening on %s (model %s/%s %s)\n", version, ln.Addr(), m.Name, m.Version, m.Family)

	// Warm up before declaring readiness: the first queries pay for lazy
	// initialisation that a patient's query should not.
	for _, q := range []string{"chest pain", "abd pain", "fever and cough", "headache"} {
		pipe.Infer(ctx, &pipeline.Request{Query: q})
	}
	ready.Store(true)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	ready.Store(false)
	fmt.Fprintln(e.stderr, "medserve: shutting down, draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
