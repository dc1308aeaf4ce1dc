package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/redis/go-redis/v9"

	"medserve/internal/audit"
	"medserve/internal/cache"
	"medserve/internal/phi"
	"medserve/internal/record"
	"medserve/internal/spool"
	"medserve/internal/store"
	"medserve/internal/upkeep"
)

// state is everything serve keeps beyond one request: the store, the PHI
// keys, the audit outbox and its checkpoints, the cache levels below L1.
type state struct {
	store    store.Store
	where    string
	phi      *phi.Keyring
	spool    *spool.Log
	recorder *record.Recorder
	cpFile   *audit.CheckpointFile
	webhook  *audit.Webhook
	lower    []cache.Level
	redis    redis.UniversalClient // nil without --redis-url
	closeFns []func()
	stop     context.CancelFunc
	done     chan struct{}
}

// Paths inside the data directory.
const (
	phiKeyFile      = "phi-keys.json"
	auditKeyFile    = "audit-signing-key.json"
	checkpointsFile = "audit-checkpoints.jsonl"
	spoolDir        = "spool"
	rejectFile      = "audit-rejected.jsonl"
)

// loadPHI returns the PHI keyring: from the environment when set (required
// with PostgreSQL, where several replicas must share it: SPEC section 12),
// else the embedded mode's key file, created on first start.
func loadPHI(e env, dataDir string, shared bool) (*phi.Keyring, error) {
	kr, ok, err := phi.FromEnv(e.getenv)
	if err != nil {
		return nil, err
	}
	if ok {
		return kr, nil
	}
	if shared {
		return nil, errors.New("MEDSERVE_PHI_KEY is required with a shared database: every replica must hold the same PHI key (see internal/phi/ROTATION.md)")
	}
	path := filepath.Join(dataDir, phiKeyFile)
	kr, created, err := phi.LoadOrCreate(path)
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(e.stderr, "medserve: generated a PHI key in %s (mode 0600); back it up: data sealed under it cannot be read without it\n", path)
	}
	return kr, nil
}

// loadSigner returns the audit checkpoint signing key (environment, else a
// file in the data directory created on first start).
func loadSigner(e env, dataDir string) (*audit.Signer, error) {
	s, ok, err := audit.SignerFromEnv(e.getenv)
	if err != nil || ok {
		return s, err
	}
	path := filepath.Join(dataDir, auditKeyFile)
	s, created, err := audit.LoadOrCreateSigner(path)
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(e.stderr, "medserve: generated an audit checkpoint key in %s (mode 0600)\n", path)
	}
	return s, nil
}

func openState(ctx context.Context, e env, c serveConfig, obs record.Observer) (st *state, err error) {
	st = &state{done: make(chan struct{})}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	logf := func(format string, args ...any) { fmt.Fprintf(e.stderr, "medserve: "+format+"\n", args...) }

	if st.phi, err = loadPHI(e, c.dataDir, c.databaseURL != ""); err != nil {
		return st, err
	}
	if st.store, st.where, err = openStore(ctx, c.databaseURL, c.dataDir); err != nil {
		return st, err
	}
	st.closeFns = append(st.closeFns, func() { st.store.Close() })
	if st.spool, err = spool.Open(filepath.Join(c.dataDir, spoolDir), spool.Options{}); err != nil {
		return st, fmt.Errorf("audit spool: %w", err)
	}
	st.closeFns = append(st.closeFns, func() { st.spool.Close() })
	signer, err := loadSigner(e, c.dataDir)
	if err != nil {
		return st, err
	}
	if st.cpFile, err = audit.OpenCheckpointFile(filepath.Join(c.dataDir, checkpointsFile)); err != nil {
		return st, err
	}
	st.closeFns = append(st.closeFns, func() { st.cpFile.Close() })
	sinks := []record.CheckpointSink{st.cpFile}
	if c.auditWebhook != "" {
		st.webhook = audit.NewWebhook(c.auditWebhook, logf)
		sinks = append(sinks, st.webhook)
	}
	st.recorder = record.New(st.spool, st.store, record.Options{
		Signer: signer, Sinks: sinks, CheckpointInterval: c.checkpointEvery, Observer: obs, Logf: logf,
		RejectFile: filepath.Join(c.dataDir, rejectFile),
	})
	if n := st.spool.Pending(0); n > 0 {
		logf("audit spool holds entries from an earlier run; replaying them into the store")
	}

	// Cache levels below L1; their values are sealed, since a cached answer
	// carries the patient's own words.
	if c.redisURL != "" {
		client, err := cache.ParseRedisURL(c.redisURL)
		if err != nil {
			return st, fmt.Errorf("redis: %w", err)
		}
		st.closeFns = append(st.closeFns, func() { client.Close() })
		st.redis = client
		st.lower = append(st.lower, cache.NewSealed(cache.NewRedis(client, cache.RedisOptions{}), st.phi))
	}
	st.lower = append(st.lower, cache.NewSealed(cache.NewL3(st.store, nil), st.phi))

	rctx, stop := context.WithCancel(context.Background())
	st.stop = stop
	go st.recorder.Run(rctx)
	go func() {
		defer close(st.done)
		upkeep.Run(rctx, upkeep.Config{
			Store: st.store, Recorder: st.recorder, RetentionDays: c.retentionDays,
			ViewsEvery: c.viewsEvery, Logf: logf,
		})
	}()
	return st, nil
}

// close stops the background work after a final flush of the spool, then
// closes everything in reverse order of opening.
func (st *state) close() {
	if st.stop != nil {
		st.stop()
		st.recorder.Wait()
		<-st.done
	}
	if st.webhook != nil {
		st.webhook.Close()
	}
	for i := len(st.closeFns) - 1; i >= 0; i-- {
		st.closeFns[i]()
	}
}
