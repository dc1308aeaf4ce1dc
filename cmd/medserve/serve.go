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
	"strconv"
	"sync/atomic"
	"time"

	"medserve/internal/batcher"
	"medserve/internal/cache"
	"medserve/internal/gateway"
	"medserve/internal/kb"
	"medserve/internal/pipeline"
	"medserve/internal/registry"
	"medserve/internal/server"
	"medserve/internal/triage"
)

// serveConfig is the server's configuration, from flags and environment
// in one place.
type serveConfig struct {
	addr, dataDir, models, clinicalData string
	deadline, shutdownGrace             time.Duration
	batch                               batcher.Config
	cacheMB                             int
	databaseURL, redisURL, auditWebhook string
	retentionDays                       int
	viewsEvery, checkpointEvery         time.Duration
	gw                                  gatewayConfig
	mon                                 monitorConfig
}

// gatewayConfig is the security configuration from flags (SPEC section 8).
type gatewayConfig struct {
	insecureNoAuth                            bool
	jwksFile, jwtIssuer, jwtAudience, jwtRole string
	rateLimits, trustedProxies, corsOrigins   string
	metricsNets, metricsToken                 string
	tlsCert, tlsKey                           string
	behindTLSProxy                            bool
	maxInFlight                               int
	readHeaderTimeout                         time.Duration
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(getenv func(string) string, key string, def int) int {
	if v, err := strconv.Atoi(getenv(key)); err == nil {
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
	fset.IntVar(&c.batch.MaxBatchSize, "batch-size", batcher.DefaultMaxBatchSize, "dynamic batcher: max batch size (1 = no batching)")
	fset.DurationVar(&c.batch.MaxQueueDelay, "batch-delay", 0, "dynamic batcher: max queue delay before a partial batch runs; 0 = no wait (a free worker takes whatever is queued, so batches grow with load)")
	fset.IntVar(&c.batch.QueueSize, "batch-queue", batcher.DefaultQueueSize, "dynamic batcher: queue size per priority level; a full level answers 503")
	fset.IntVar(&c.batch.Workers, "batch-workers", 2, "dynamic batcher: batches computed concurrently")
	fset.IntVar(&c.cacheMB, "cache-mb", 64, "in-process (L1) answer cache size in MiB; 0 turns caching off")
	fset.StringVar(&c.databaseURL, "database-url", e.getenv("MEDSERVE_DATABASE_URL"), "PostgreSQL URL; empty = the embedded SQLite file <data-dir>/medserve.db (env MEDSERVE_DATABASE_URL)")
	fset.StringVar(&c.redisURL, "redis-url", e.getenv("MEDSERVE_REDIS_URL"), "Redis URL for the shared (L2) cache, e.g. redis://127.0.0.1:6379/0; empty = no L2 (env MEDSERVE_REDIS_URL)")
	fset.StringVar(&c.auditWebhook, "audit-webhook", e.getenv("MEDSERVE_AUDIT_WEBHOOK"), "URL that receives each signed audit checkpoint (env MEDSERVE_AUDIT_WEBHOOK)")
	fset.IntVar(&c.retentionDays, "retention-days", envInt(e.getenv, "MEDSERVE_RETENTION_DAYS", 0), "delete query records older than this many days; 0 keeps them (audit events are always kept) (env MEDSERVE_RETENTION_DAYS)")
	fset.DurationVar(&c.viewsEvery, "views-refresh", 5*time.Minute, "how often the summary views are refreshed (PostgreSQL)")
	fset.DurationVar(&c.checkpointEvery, "checkpoint-interval", 10*time.Second, "longest time between signed audit checkpoints while events are written")
	g := &c.gw
	fset.BoolVar(&g.insecureNoAuth, "insecure-no-auth", false, "turn authentication off (local development only: refused unless --addr is a loopback address)")
	fset.StringVar(&g.jwksFile, "jwks-file", e.getenv("MEDSERVE_JWKS_FILE"), "JSON Web Key Set of the identity provider whose JWTs are accepted (env MEDSERVE_JWKS_FILE)")
	fset.StringVar(&g.jwtIssuer, "jwt-issuer", e.getenv("MEDSERVE_JWT_ISSUER"), "required iss of accepted JWTs (env MEDSERVE_JWT_ISSUER)")
	fset.StringVar(&g.jwtAudience, "jwt-audience", e.getenv("MEDSERVE_JWT_AUDIENCE"), "required aud of accepted JWTs (env MEDSERVE_JWT_AUDIENCE)")
	fset.StringVar(&g.jwtRole, "jwt-role-claim", "role", "JWT claim holding the role")
	fset.StringVar(&g.rateLimits, "rate-limits", e.getenv("MEDSERVE_RATE_LIMITS"), `zone limits overriding SPEC section 8's, e.g. "inference=120/min burst 20,clinical=60/min burst 10" (env MEDSERVE_RATE_LIMITS)`)
	fset.StringVar(&g.trustedProxies, "trusted-proxies", e.getenv("MEDSERVE_TRUSTED_PROXIES"), "networks whose X-Forwarded-For is believed, e.g. 10.0.0.0/8 (env MEDSERVE_TRUSTED_PROXIES)")
	fset.StringVar(&g.corsOrigins, "cors-origins", e.getenv("MEDSERVE_CORS_ORIGINS"), "origins allowed by CORS, comma-separated, e.g. https://ehr.example.org (env MEDSERVE_CORS_ORIGINS)")
	fset.StringVar(&g.metricsNets, "metrics-networks", e.getenv("MEDSERVE_METRICS_NETWORKS"), "networks that may read /metrics (default loopback and private ranges) (env MEDSERVE_METRICS_NETWORKS)")
	fset.StringVar(&g.metricsToken, "metrics-token", e.getenv("MEDSERVE_METRICS_TOKEN"), "bearer token that opens /metrics from anywhere (env MEDSERVE_METRICS_TOKEN)")
	fset.StringVar(&g.tlsCert, "tls-cert", e.getenv("MEDSERVE_TLS_CERT"), "TLS certificate file (PEM); with --tls-key serves HTTPS, TLS 1.2+ (env MEDSERVE_TLS_CERT)")
	fset.StringVar(&g.tlsKey, "tls-key", e.getenv("MEDSERVE_TLS_KEY"), "TLS private key file (PEM) (env MEDSERVE_TLS_KEY)")
	fset.BoolVar(&g.behindTLSProxy, "behind-tls-proxy", false, "a TLS-terminating proxy is in front: send HSTS")
	fset.IntVar(&g.maxInFlight, "max-in-flight", 4096, "requests served at once; beyond it 503 at once")
	fset.DurationVar(&g.readHeaderTimeout, "read-header-timeout", 5*time.Second, "how long a client may take to send its request headers (slow-loris defence)")
	monitorFlags(fset, e, &c.mon)
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
	st, err := openState(ctx, e, c, metrics.RecorderObserver())
	if err != nil {
		return err
	}
	defer st.close() // after the HTTP server has drained: the final flush sees every entry
	c.batch.DefaultTimeout = c.deadline
	if c.batch.MaxQueueDelay == 0 {
		// Measured with medserve bench on 2 cores: waiting for a fuller
		// batch costs more latency than it saves compute.
		c.batch.MaxQueueDelay = -1
	}
	newPredictor := func(a *triage.Artifact) (pipeline.Predictor, func(), error) {
		p, err := pipeline.NewBatchedPredictor(a.Model, c.batch, metrics.BatcherObserver(a.Manifest.Name))
		if err != nil {
			return nil, nil, err
		}
		return p, func() { p.Close() }, nil
	}
	// The registry decides the serving version (the store's production
	// one; on a first start the newest on disk) and swaps versions later.
	reg := registry.New(st.store, filepath.Join(c.models, "triage"), "triage", feat, newPredictor)
	art, err := reg.Start(ctx)
	if err != nil {
		return err
	}
	m := art.Manifest
	metrics.ModelInfo.WithLabelValues(m.Name, m.Version, m.Family).Set(1)
	pred, retirePred, err := newPredictor(art)
	if err != nil {
		return err
	}
	defer reg.Close() // after the HTTP server has drained: queued requests are answered
	// Cache keys and query hashes are keyed with a subkey of the PHI key,
	// which every replica shares, so replicas share Redis entries too.
	hashID, hashSecret := st.phi.HashKey()
	keyer, err := cache.NewKeyer(hashID, hashSecret)
	if err != nil {
		return err
	}
	var pc pipeline.Cache
	var keyFn func(...string) string
	{
		// The cache is built even with --cache-mb 0, so the alert engine
		// can switch it on (response time critical); it starts off then.
		l1 := cache.NewL1(int64(max(c.cacheMB, 64))<<20, nil)
		l1.SetObserver(metrics.CacheObserver())
		tiered := cache.NewTiered(l1, cache.ClinicalDecision, st.lower, cache.TieredOptions{Observer: metrics.CacheObserver()})
		defer func() {
			// Cache writes are best effort: give the queued ones a moment,
			// but never hold a shutdown on a dead Redis or database.
			done := make(chan struct{})
			go func() { tiered.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
			}
		}()
		pc, keyFn = tiered, keyer.Key
	}
	pipe := pipeline.New(triage.NewAssessor(feat, art), k, pred, pc, keyFn, pipeline.Config{Deadline: c.deadline})
	pipe.SetCaching(c.cacheMB > 0)
	reg.Attach(infoSwapper{pipe, metrics}, retirePred)
	if err := reg.Resume(ctx); err != nil {
		// Production serves regardless: a canary or shadow that cannot be
		// restored is reported, not fatal.
		fmt.Fprintf(e.stderr, "medserve: canary/shadow not restored: %v\n", err)
	}
	// Other replicas (and `medserve models`) change stages in the store;
	// follow them.
	rctx, stopReconcile := context.WithCancel(ctx)
	defer stopReconcile()
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := reg.Reconcile(rctx); err != nil && rctx.Err() == nil {
					fmt.Fprintf(e.stderr, "medserve: model registry: %v\n", err)
				}
			}
		}
	}()
	gw, err := buildGateway(ctx, e, c, st)
	if err != nil {
		return err
	}
	mctx, stopMonitoring := context.WithCancel(ctx)
	defer stopMonitoring()
	mon, err := startMonitoring(mctx, e, c, st, reg, pipe, fsys, eng, feat, metrics)
	if err != nil {
		return err
	}
	handler := server.NewServer(server.Deps{Pipeline: pipe, Text: eng, KB: k, Triage: art, Features: feat.Spec(), Metrics: metrics, Ready: ready, Version: version,
		Recorder: st.recorder, Store: st.store, PHI: st.phi, QueryHash: keyer.Key, Gateway: gw, Registry: reg,
		Monitor: mon.monitor, Observer: mon.collector, Modes: mon.modes})

	rht := c.gw.readHeaderTimeout
	if rht <= 0 {
		rht = 5 * time.Second
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: rht, MaxHeaderBytes: 64 << 10, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	if c.gw.tlsCert != "" {
		srv.TLSConfig = gateway.TLSConfig()
		go func() { errc <- srv.ServeTLS(ln, c.gw.tlsCert, c.gw.tlsKey) }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	fmt.Fprintf(e.stderr, "medserve %s listening on %s (model %s/%s %s; store %s)\n", version, ln.Addr(), m.Name, m.Version, m.Family, st.where)

	// Warm up before declaring readiness: the first queries pay for lazy
	// initialisation that a patient's query should not.
	for _, q := range []string{"chest pain", "abd pain", "fever and cough", "headache"} {
		if _, err := pipe.Infer(ctx, &pipeline.Request{Query: q}); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
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

// infoSwapper keeps medserve_model_info naming the version in production
// as the registry swaps versions.
type infoSwapper struct {
	*pipeline.Pipeline
	metrics *server.Metrics
}

func (s infoSwapper) Swap(as *triage.Assessor, pr pipeline.Predictor, retire func()) <-chan struct{} {
	done := s.Pipeline.Swap(as, pr, retire)
	m := as.Artifact().Manifest
	s.metrics.ModelInfo.Reset()
	s.metrics.ModelInfo.WithLabelValues(m.Name, m.Version, m.Family).Set(1)
	return done
}
