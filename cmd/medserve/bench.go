package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"medserve/internal/auth"
	"medserve/internal/phi"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"medserve/internal/batcher"
	"medserve/internal/loadtest"
	"medserve/internal/pipeline"
	"medserve/internal/triage"
)

// benchResult is what `medserve bench --json` prints.
type benchResult struct {
	Target   string           `json:"target"`
	Server   loadtest.Report  `json:"server"`
	Baseline *loadtest.Report `json:"baseline,omitempty"`
	Ratio    float64          `json:"throughput_ratio_to_baseline,omitempty"`
	Settings map[string]any   `json:"settings"`
}

func cmdBench(ctx context.Context, e env) error {
	fset := flag.NewFlagSet("bench", flag.ContinueOnError)
	url := fset.String("url", "", "base URL of a running server (default: start one in-process on loopback)")
	rate := fset.Int("rate", 0, "requests per second (0 = as fast as possible)")
	duration := fset.Duration("duration", 10*time.Second, "how long to run")
	workers := fset.Int("workers", 16, "concurrent connections at max rate")
	useCache := fset.Bool("cache", false, "let the server answer from its cache (off: every query is computed)")
	baseline := fset.Bool("baseline", false, "also measure a bare net/http handler that decodes and re-encodes the same JSON (the ceiling)")
	bodies := fset.Int("bodies", 5000, "distinct request bodies, built from the KTAS rows")
	asJSON := fset.Bool("json", false, "print the result as JSON")
	models := modelsFlag(fset, e.getenv)
	batchSize := fset.Int("batch-size", batcher.DefaultMaxBatchSize, "in-process server: batcher max batch size")
	batchDelay := fset.Duration("batch-delay", 0, "in-process server: batcher max queue delay (0 = no wait)")
	dataDir := clinicalDataFlag(fset, e.getenv)
	dbURL := fset.String("database-url", "", "in-process server: PostgreSQL URL (default: a fresh embedded SQLite file)")
	redisURL := fset.String("redis-url", "", "in-process server: Redis URL for the L2 cache")
	gzipOK := fset.Bool("gzip", false, "ask for gzip-compressed answers (on one machine the load generator then pays for decompressing too)")
	apiKey := fset.String("api-key", e.getenv("MEDSERVE_API_KEY"), "bearer token for --url (the in-process server gets a service key whose limits do not throttle the load) (env MEDSERVE_API_KEY)")
	if err := parseFlags(fset, e); err != nil {
		return err
	}
	fsys, err := dataFS(*dataDir)
	if err != nil {
		return err
	}
	reqs, err := benchBodies(fsys, *bodies, *useCache)
	if err != nil {
		return err
	}
	base := *url
	if base == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		state, err := os.MkdirTemp("", "medserve-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(state)
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		ready := make(chan struct{})
		getenv := benchEnv(e.getenv)
		// The whole gateway stays on: the load authenticates with a
		// service key whose own limits are far above the load.
		if *apiKey, err = benchKey(ctx, *dbURL, state); err != nil {
			stop()
			return err
		}
		go func() {
			cfg := serveConfig{addr: ln.Addr().String(), dataDir: state, models: *models, clinicalData: *dataDir, deadline: time.Second,
				shutdownGrace: 10 * time.Second, batch: batcher.Config{MaxBatchSize: *batchSize, MaxQueueDelay: *batchDelay, Workers: 2}, cacheMB: 64,
				databaseURL: *dbURL, redisURL: *redisURL, viewsEvery: time.Hour, checkpointEvery: 10 * time.Second}
			if cfg.batch.MaxQueueDelay == 0 {
				cfg.batch.MaxQueueDelay = -1
			}
			done <- serve(sctx, env{getenv: getenv, stdout: io.Discard, stderr: readyWriter{e.stderr, ready}}, cfg, ln)
		}()
		select {
		case <-ready:
		case err := <-done:
			stop()
			return fmt.Errorf("in-process server: %v", err)
		}
		defer func() { stop(); <-done }()
		base = "http://" + ln.Addr().String()
		if err := waitReady(ctx, base); err != nil {
			return err
		}
	}
	res := benchResult{Target: base + "/api/v1/inference", Settings: map[string]any{
		"rate": *rate, "duration": duration.String(), "workers": *workers, "cache": *useCache, "bodies": len(reqs),
		"batch_size": *batchSize, "batch_delay": batchDelay.String(), "in_process": *url == ""}}
	cfg := loadtest.Config{URL: res.Target, Bodies: reqs, Rate: *rate, Duration: *duration, Workers: *workers}
	cfg.Header = http.Header{}
	if *apiKey != "" {
		cfg.Header.Set("Authorization", "Bearer "+*apiKey)
	}
	if !*gzipOK {
		// An explicit identity stops Go's transport from asking for gzip
		// (and decompressing on the load generator's share of the CPU).
		cfg.Header.Set("Accept-Encoding", "identity")
	}
	fmt.Fprintf(e.stderr, "bench: %s for %s…\n", res.Target, duration)
	if res.Server, err = loadtest.Run(ctx, cfg); err != nil {
		return err
	}
	if *baseline {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		bs := &http.Server{Handler: loadtest.BaselineHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = bs.Serve(ln) }()
		defer bs.Close()
		cfg.URL = "http://" + ln.Addr().String() + "/"
		fmt.Fprintf(e.stderr, "bench: baseline %s for %s…\n", cfg.URL, duration)
		rep, err := loadtest.Run(ctx, cfg)
		if err != nil {
			return err
		}
		res.Baseline = &rep
		if rep.Throughput > 0 {
			res.Ratio = res.Server.Throughput / rep.Throughput
		}
	}
	if *asJSON {
		return writeJSON(e.stdout, res)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "medserve  %s\n", res.Server)
	if res.Baseline != nil {
		fmt.Fprintf(&b, "baseline  %s\nratio     %.2f of the bare handler's throughput\n", res.Baseline, res.Ratio)
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

// readyWriter passes the server's log through and signals its first line
// (the server is listening).
type readyWriter struct {
	w     io.Writer
	ready chan struct{}
}

func (r readyWriter) Write(p []byte) (int, error) {
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}
	return r.w.Write(p)
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("server at %s not ready", base)
}

// benchBodies builds realistic inference requests from the KTAS rows:
// complaint, vitals, age, sex, arrival, with the nurse's level on half of
// them; Vary makes every body distinct so a cache cannot hide the work.
func benchBodies(fsys fs.FS, n int, useCache bool) ([][]byte, error) {
	raw, err := fs.ReadFile(fsys, ktasFile)
	if err != nil {
		return nil, err
	}
	cases, _, err := triage.ParseKTAS(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var bodies [][]byte
	for i, c := range cases {
		q := c.Query
		if q.Text == "" {
			continue
		}
		r := pipeline.Request{Query: q.Text, Patient: pipeline.Patient{Age: q.Age, Sex: q.Sex}}
		r.Vitals.Vitals, r.Vitals.AVPU = q.Vitals, q.AVPU
		r.Context.ArrivalMode, r.Context.Injury = q.Arrival, q.Injury
		if i%2 == 0 {
			r.Context.NurseAcuity = c.Nurse
		}
		if !useCache {
			off := false
			r.Options.UseCache = &off
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		bodies = append(bodies, b)
	}
	return loadtest.Vary(bodies, n), nil
}

// benchEnv gives the in-process server a throwaway PHI key when none is set,
// since a shared database requires one from the environment.
func benchEnv(getenv func(string) string) func(string) string {
	secret := make([]byte, phi.SecretSize)
	_, _ = rand.Read(secret)
	key := base64.StdEncoding.EncodeToString(secret)
	return func(k string) string {
		if v := getenv(k); v != "" || k != "MEDSERVE_PHI_KEY" {
			return v
		}
		return key
	}
}

// benchKey creates, in the in-process server's store, a service key whose
// inference limit is far above any load this machine can send.
func benchKey(ctx context.Context, dbURL, dataDir string) (string, error) {
	db, _, err := openStore(ctx, dbURL, dataDir)
	if err != nil {
		return "", err
	}
	defer db.Close()
	_, token, err := auth.CreateKey(ctx, db, auth.RoleService, "medserve bench", "inference=1000000/s burst 10000", time.Now())
	return token, err
}
