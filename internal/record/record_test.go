package record

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/spool"
	"medserve/internal/store"
	"medserve/internal/store/sqlite"
)

// flaky wraps a real store and fails Write while down is set, as an
// unreachable database would; everything else reaches the real store.
type flaky struct {
	store.Store
	down atomic.Bool
}

func (f *flaky) Write(ctx context.Context, b store.Batch) ([]audit.Event, error) {
	if f.down.Load() {
		return nil, errors.New("connection refused")
	}
	return f.Store.Write(ctx, b)
}

func (f *flaky) Progress(ctx context.Context, src string) (int64, error) {
	if f.down.Load() {
		return 0, errors.New("connection refused")
	}
	return f.Store.Progress(ctx, src)
}

type memSink struct {
	mu  sync.Mutex
	cps []audit.Checkpoint
}

func (m *memSink) Write(cp audit.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cps = append(m.cps, cp)
	return nil
}

func (m *memSink) all() []audit.Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Checkpoint(nil), m.cps...)
}

func setup(t *testing.T) (dir string, st *sqlite.DB) {
	t.Helper()
	dir = t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return dir, st
}

func openSpool(t *testing.T, dir string) *spool.Log {
	t.Helper()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func entry(i int) Entry {
	id := fmt.Sprintf("req-%04d", i)
	return Entry{
		Queries: []store.QueryRecord{{RequestID: id, PatientPseudonym: "k1:p" + fmt.Sprint(i%7), Time: time.Now().UTC(), Acuity: 1 + i%5, Urgency: "medium"}},
		Events:  []audit.Event{{Action: "inference", Resource: "/api/v1/inference", RequestID: id, Patient: "k1:p" + fmt.Sprint(i%7), Outcome: audit.OutcomeOK}},
	}
}

// check asserts that the store holds exactly one query and one event per
// request id in 0..n-1 and that the chain verifies.
func check(t *testing.T, st store.Store, n int, cps []audit.Checkpoint, keys map[string]ed25519.PublicKey) {
	t.Helper()
	ctx := context.Background()
	perReq := map[string]int{}
	err := st.Range(ctx, 1, 1<<62, func(e audit.Event) error {
		perReq[e.RequestID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(perReq) != n {
		t.Fatalf("%d request ids have audit events, want %d", len(perReq), n)
	}
	for id, c := range perReq {
		if c != 1 {
			t.Fatalf("request %s has %d audit events, want exactly 1", id, c)
		}
	}
	queries := 0
	for p := 0; p < 7; p++ {
		h, err := st.PatientHistory(ctx, []string{"k1:p" + fmt.Sprint(p)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		queries += len(h)
	}
	if queries != n {
		t.Fatalf("%d query records, want %d", queries, n)
	}
	rep, err := audit.Verify(ctx, st, cps, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Events != int64(n) {
		t.Fatalf("verify: ok=%v events=%d problems=%v", rep.OK, rep.Events, rep.Problems)
	}
}

func TestRecordFlushAndCheckpoint(t *testing.T) {
	dir, st := setup(t)
	sp := openSpool(t, dir)
	defer sp.Close()
	pub, priv, _ := ed25519.GenerateKey(nil)
	sink := &memSink{}
	// Batches of at most 50 entries, so the 400 events span several
	// transactions and the every-50-events rule has room to act.
	r := New(sp, st, Options{Signer: audit.NewSigner("a1", priv), Sinks: []CheckpointSink{sink}, CheckpointEvery: 50, MaxBatch: 50})
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx)

	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < 400; i += 8 {
				if err := r.Record(ctx, entry(i)); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := r.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	r.Wait()
	if r.Backlog() != 0 {
		t.Fatalf("backlog %d after sync", r.Backlog())
	}
	cps := sink.all()
	if len(cps) < 2 {
		t.Fatalf("%d checkpoints for 400 events at one per 50", len(cps))
	}
	if last := cps[len(cps)-1]; last.Seq != 400 {
		t.Fatalf("final checkpoint at %d, want the head 400", last.Seq)
	}
	check(t, st, 400, cps, map[string]ed25519.PublicKey{"a1": pub})
}

// TestStoreOutageKeepsEverything: while the store refuses writes, entries
// are still recorded (durably, in the spool) and reach the store, each
// exactly once, when it returns.
func TestStoreOutageKeepsEverything(t *testing.T) {
	dir, st := setup(t)
	fl := &flaky{Store: st}
	sp := openSpool(t, dir)
	defer sp.Close()
	r := New(sp, fl, Options{RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	for i := 0; i < 100; i++ {
		if i == 30 {
			fl.down.Store(true)
		}
		if i == 80 {
			if r.Backlog() == 0 {
				t.Fatal("no backlog while the store is down")
			}
			fl.down.Store(false)
		}
		if err := r.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := r.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	check(t, st, 100, nil, nil)
}

// TestCrashReplaysExactlyOnce: a process that recorded entries and died
// before flushing them (or after writing a batch but before trimming the
// spool) loses nothing and duplicates nothing at the next start.
func TestCrashReplaysExactlyOnce(t *testing.T) {
	dir, st := setup(t)
	sp := openSpool(t, dir)
	ctx := context.Background()
	r := New(sp, st, Options{})
	for i := 0; i < 60; i++ {
		if err := r.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The first 25 entries were written by a batch whose process died
	// before trimming: the store has them and the spool still does too.
	recs, err := sp.Read(1, 25, 1<<20)
	if err != nil || len(recs) != 25 {
		t.Fatalf("read: %d %v", len(recs), err)
	}
	b := store.Batch{Source: sp.ID(), Through: recs[24].Pos}
	for i := 0; i < 25; i++ {
		e := entry(i)
		b.Queries = append(b.Queries, e.Queries...)
		b.Events = append(b.Events, e.Events...)
	}
	if _, err := st.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil { // the crash: nothing else flushed
		t.Fatal(err)
	}

	sp2 := openSpool(t, dir)
	defer sp2.Close()
	if sp2.ID() != b.Source {
		t.Fatal("spool id changed across restart")
	}
	r2 := New(sp2, st, Options{})
	rctx, cancel := context.WithCancel(ctx)
	go r2.Run(rctx)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := r2.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	r2.Wait()
	check(t, st, 60, nil, nil)
}

func TestRecordRejectsEmptyEntry(t *testing.T) {
	dir, st := setup(t)
	sp := openSpool(t, dir)
	defer sp.Close()
	if err := New(sp, st, Options{}).Record(context.Background(), Entry{}); err == nil {
		t.Fatal("empty entry accepted")
	}
}

// TestRefusedEntryIsSetAside: an entry the store refuses while reachable
// (here a query without a request id) must not hold up the ones after it.
func TestRefusedEntryIsSetAside(t *testing.T) {
	dir, st := setup(t)
	sp := openSpool(t, dir)
	defer sp.Close()
	rejects := filepath.Join(dir, "rejected.jsonl")
	r := New(sp, st, Options{RejectFile: rejects, RetryMin: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 20; i++ {
		e := entry(i)
		if i == 7 {
			e.Queries[0].RequestID = ""
		}
		if err := r.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	go r.Run(ctx)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := r.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(rejects)
	if err != nil || strings.Count(string(b), "\n") != 1 || !strings.Contains(string(b), "req-0007") {
		t.Fatalf("reject file: %v %q", err, b)
	}
	evs, err := st.AuditEvents(ctx, store.AuditFilter{Action: "audit.entry.rejected"})
	if err != nil || len(evs) != 1 || evs[0].RequestID != "req-0007" {
		t.Fatalf("rejection event: %v %+v", err, evs)
	}
	rep, err := audit.Verify(ctx, st, nil, nil)
	if err != nil || !rep.OK || rep.Events != 20 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// lostReply commits a batch and then reports an error, as a connection
// that drops after COMMIT but before its reply would.
type lostReply struct {
	store.Store
	left atomic.Int64
}

func (l *lostReply) Write(ctx context.Context, b store.Batch) ([]audit.Event, error) {
	evs, err := l.Store.Write(ctx, b)
	if err == nil && l.left.Add(-1) >= 0 {
		return nil, errors.New("connection reset after commit")
	}
	return evs, err
}

// TestLostCommitReplyIsNotReplayed: a batch that was committed although
// Write said otherwise must not be written again (its events would be
// chained twice), with or without a reject file.
func TestLostCommitReplyIsNotReplayed(t *testing.T) {
	for _, rejects := range []bool{false, true} {
		dir, st := setup(t)
		ls := &lostReply{Store: st}
		ls.left.Store(3)
		sp := openSpool(t, dir)
		opt := Options{RetryMin: time.Millisecond, MaxBatch: 7}
		if rejects {
			opt.RejectFile = filepath.Join(dir, "rejected.jsonl")
		}
		r := New(sp, ls, opt)
		ctx, cancel := context.WithCancel(context.Background())
		go r.Run(ctx)
		for i := 0; i < 40; i++ {
			if err := r.Record(ctx, entry(i)); err != nil {
				t.Fatal(err)
			}
		}
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		if err := r.Sync(sctx); err != nil {
			t.Fatal(err)
		}
		scancel()
		cancel()
		r.Wait()
		sp.Close()
		check(t, st, 40, nil, nil)
	}
}
