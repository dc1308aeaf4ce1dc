// Package record is medserve's outbox: every answered request's query
// record and audit events are appended to a local spool and fsync'd before
// the response is sent, then copied into the store in batches by a flusher.
//
// Writing through a local spool rather than straight into the database
// gives three things at once: durability that does not depend on the
// database being up (SPEC section 3, step 7), group commit (one fsync and
// one transaction cover many requests, so auditing every request costs a
// fraction of a millisecond rather than a database round trip each), and
// one ordered replay path used both normally and after a crash or an
// outage. The store records how far into this spool it has written, in the
// same transaction as the records, so a replay after a crash writes every
// entry exactly once.
package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"medserve/internal/audit"
	"medserve/internal/spool"
	"medserve/internal/store"
)

// Entry is what one request leaves behind: the query records it answered
// and the audit events it caused, written to the store together.
type Entry struct {
	Queries []store.QueryRecord `json:"q,omitempty"`
	Events  []audit.Event       `json:"e,omitempty"`
}

// CheckpointSink receives signed checkpoints (a file, a webhook).
type CheckpointSink interface {
	Write(cp audit.Checkpoint) error
}

// Observer receives the recorder's figures for metrics.
type Observer interface {
	Flushed(entries, events int, d time.Duration)
	FlushFailed()
	Backlog(entries int64)
}

// Options tune a Recorder; zero values take the defaults.
type Options struct {
	MaxBatch int // entries per store transaction (default 512)
	// Linger is how long the flusher waits, after new entries arrive, for
	// more to join the batch (default 10 ms). Entries are already durable
	// in the spool, so waiting costs only how soon the store shows them;
	// it saves a transaction (and the database's fsync) per few requests.
	Linger             time.Duration
	CheckpointEvery    int64         // sign a checkpoint after this many new events (default 1000)
	CheckpointInterval time.Duration // … or this long after the last one, if the head moved (default 10 s)
	RetryMin, RetryMax time.Duration // backoff while the store fails (default 50 ms … 2 s)
	Signer             *audit.Signer // nil: no checkpoints
	// RejectFile receives, as JSON lines, spool entries the store refuses
	// while it is otherwise reachable (a bug, not an outage), so that one
	// bad entry cannot hold up every later one. Empty: such an entry is
	// retried for ever and the backlog grows (and is alerted on).
	RejectFile string
	Sinks      []CheckpointSink
	Observer   Observer
	Logf       func(format string, args ...any) // operational messages; never given PHI
	Now        func() time.Time
}

// Recorder appends entries to a spool and flushes them into a store.
type Recorder struct {
	sp  *spool.Log
	st  store.Store
	opt Options

	flushed atomic.Int64 // spool position known to be in the store
	mu      sync.Mutex
	advance chan struct{} // closed and replaced whenever flushed moves
	down    atomic.Bool   // the last flush failed

	sinceCP int64
	lastCP  time.Time
	cpSeq   int64
	head    audit.Event
	runDone chan struct{}
	kick    chan struct{} // Sync asks the flusher not to linger
}

// New returns a Recorder over an open spool and store. Call Run to start flushing.
func New(sp *spool.Log, st store.Store, opt Options) *Recorder {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 512
	}
	if opt.Linger <= 0 {
		opt.Linger = 10 * time.Millisecond
	}
	if opt.CheckpointEvery <= 0 {
		opt.CheckpointEvery = 1000
	}
	if opt.CheckpointInterval <= 0 {
		opt.CheckpointInterval = 10 * time.Second
	}
	if opt.RetryMin <= 0 {
		opt.RetryMin = 50 * time.Millisecond
	}
	if opt.RetryMax <= 0 {
		opt.RetryMax = 2 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	return &Recorder{sp: sp, st: st, opt: opt, advance: make(chan struct{}), runDone: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// Record makes e durable: when it returns nil the entry is in the spool and
// fsync'd, and will reach the store even if the process crashes now.
//
// Events without a time get the current time here, so an event replayed
// after an outage keeps the time of the request (SPEC section 12).
func (r *Recorder) Record(ctx context.Context, e Entry) error {
	now := r.opt.Now().UTC().Truncate(time.Microsecond)
	for i := range e.Events {
		if e.Events[i].Time.IsZero() {
			e.Events[i].Time = now
		}
		if e.Events[i].Actor == "" {
			e.Events[i].Actor = "anonymous"
		}
	}
	if len(e.Events) == 0 && len(e.Queries) == 0 {
		return errors.New("record: empty entry")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("record: encode: %w", err)
	}
	if _, err := r.sp.Append(ctx, b); err != nil {
		return fmt.Errorf("record: spool: %w", err)
	}
	return nil
}

// Backlog is the number of durable entries not yet in the store.
func (r *Recorder) Backlog() int64 { return r.sp.Last() - r.flushed.Load() }

// StoreDown reports whether the last attempt to write to the store failed.
func (r *Recorder) StoreDown() bool { return r.down.Load() }

// Sync waits until every entry recorded before the call is in the store,
// for read-your-writes (a clinician's history right after a query).
func (r *Recorder) Sync(ctx context.Context) error {
	target := r.sp.Last()
	if r.flushed.Load() < target {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	for {
		r.mu.Lock()
		ch := r.advance
		r.mu.Unlock()
		if r.flushed.Load() >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("record: sync: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Run flushes the spool into the store until ctx is done, then makes a
// last attempt to flush what remains and signs a final checkpoint.
func (r *Recorder) Run(ctx context.Context) {
	defer close(r.runDone)
	src := r.sp.ID()
	backoff := r.opt.RetryMin
	progress := int64(-1)
	for ctx.Err() == nil {
		if progress < 0 {
			p, err := r.st.Progress(ctx, src)
			if err != nil {
				r.failed(ctx, err, &backoff)
				continue
			}
			progress = p
			r.setFlushed(p)
		}
		n, err := r.flushOnce(ctx, src, &progress)
		if err != nil {
			// Re-read progress after a failure: a transaction whose commit
			// reply was lost may have been applied.
			progress = -1
			r.failed(ctx, err, &backoff)
			continue
		}
		backoff = r.opt.RetryMin
		r.down.Store(false)
		if n > 0 {
			continue // drain a backlog without sleeping
		}
		r.maybeCheckpoint(false)
		select {
		case <-ctx.Done():
		case <-r.sp.Notify():
			if r.sp.Last()-progress < int64(r.opt.MaxBatch) {
				select {
				case <-ctx.Done():
				case <-r.kick:
				case <-time.After(r.opt.Linger):
				}
			}
		case <-time.After(r.opt.CheckpointInterval):
		}
	}
	// Shutdown: the HTTP server has drained, so the spool is complete; one
	// bounded attempt to leave the store up to date.
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if progress < 0 {
		p, err := r.st.Progress(fctx, src)
		if err != nil {
			r.opt.Logf("record: final flush skipped, store unavailable (%d entries stay in the spool): %v", r.Backlog(), err)
			return
		}
		progress = p
	}
	for {
		n, err := r.flushOnce(fctx, src, &progress)
		if err != nil {
			r.opt.Logf("record: final flush: %v (%d entries stay in the spool and are replayed at next start)", err, r.Backlog())
			return
		}
		if n == 0 {
			break
		}
	}
	r.maybeCheckpoint(true)
}

// Wait blocks until Run has returned.
func (r *Recorder) Wait() { <-r.runDone }

func (r *Recorder) failed(ctx context.Context, err error, backoff *time.Duration) {
	if !r.down.Swap(true) {
		r.opt.Logf("record: store unavailable, entries stay in the spool (%d pending): %v", r.Backlog(), err)
	}
	if r.opt.Observer != nil {
		r.opt.Observer.FlushFailed()
		r.opt.Observer.Backlog(r.Backlog())
	}
	select {
	case <-ctx.Done():
	case <-time.After(*backoff):
	}
	*backoff = min(*backoff*2, r.opt.RetryMax)
}

// flushOnce writes the next batch after *progress and returns how many entries it wrote.
func (r *Recorder) flushOnce(ctx context.Context, src string, progress *int64) (int, error) {
	recs, err := r.sp.Read(*progress+1, r.opt.MaxBatch, 8<<20)
	if err != nil {
		return 0, fmt.Errorf("record: read spool: %w", err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	start := time.Now()
	b := store.Batch{Source: src, Through: recs[len(recs)-1].Pos}
	for _, rec := range recs {
		var e Entry
		if err := json.Unmarshal(rec.Data, &e); err != nil {
			// The spool checksums every record, so this is a bug, not
			// corruption; stopping here keeps the entry for inspection
			// rather than silently skipping an audit event.
			return 0, fmt.Errorf("record: spool entry %d: %w", rec.Pos, err)
		}
		b.Queries = append(b.Queries, e.Queries...)
		b.Events = append(b.Events, e.Events...)
	}
	chained, err := r.st.Write(ctx, b)
	if err != nil {
		werr := fmt.Errorf("record: write %d entries: %w", len(recs), err)
		done, perr := r.st.Progress(ctx, src)
		switch {
		case perr != nil:
			return 0, werr // the store is unreachable: an outage, retried
		case done >= b.Through:
			// The commit went through and only its reply was lost:
			// writing the batch again would chain its events twice.
			chained = nil
		case r.opt.RejectFile == "":
			return 0, werr
		default:
			// The store answers but refuses the batch: find the entries
			// it refuses one by one and set them aside.
			if chained, err = r.isolate(ctx, src, recs, done); err != nil {
				return 0, err
			}
		}
	}
	*progress = b.Through
	r.setFlushed(b.Through)
	if err := r.sp.Trim(b.Through); err != nil {
		r.opt.Logf("record: trim spool: %v", err)
	}
	if len(chained) > 0 {
		r.head = chained[len(chained)-1]
		r.sinceCP += int64(len(chained))
		if r.sinceCP >= r.opt.CheckpointEvery {
			r.maybeCheckpoint(true)
		}
	}
	if r.opt.Observer != nil {
		r.opt.Observer.Flushed(len(recs), len(chained), time.Since(start))
		r.opt.Observer.Backlog(r.Backlog())
	}
	return len(recs), nil
}

// isolate writes recs one entry per transaction; an entry the store
// refuses while it stays reachable is appended to the reject file and
// replaced in the chain by an event that says so.
func (r *Recorder) isolate(ctx context.Context, src string, recs []spool.Record, done int64) ([]audit.Event, error) {
	var chained []audit.Event
	for _, rec := range recs {
		if rec.Pos <= done {
			continue // already in the store
		}
		var e Entry
		_ = json.Unmarshal(rec.Data, &e) // decoded once already
		b := store.Batch{Source: src, Through: rec.Pos, Queries: e.Queries, Events: e.Events}
		evs, err := r.st.Write(ctx, b)
		if err != nil {
			p, perr := r.st.Progress(ctx, src)
			if perr != nil {
				return nil, fmt.Errorf("record: write entry %d: %w", rec.Pos, err)
			}
			if p >= rec.Pos {
				continue // committed; the reply was lost
			}
			if qerr := r.reject(rec, err); qerr != nil {
				return nil, qerr
			}
			ev := audit.Event{Time: r.opt.Now().UTC(), Actor: "system", Role: "service", Action: "audit.entry.rejected",
				Resource: "spool", Outcome: audit.OutcomeError,
				Reason: fmt.Sprintf("spool entry %d refused by the store (%v); kept in the reject file", rec.Pos, err)}
			if len(e.Events) > 0 {
				ev.RequestID, ev.Patient = e.Events[0].RequestID, e.Events[0].Patient
			}
			r.opt.Logf("record: spool entry %d refused by the store and set aside in %s: %v", rec.Pos, r.opt.RejectFile, err)
			if evs, err = r.st.Write(ctx, store.Batch{Source: src, Through: rec.Pos, Events: []audit.Event{ev}}); err != nil {
				return nil, fmt.Errorf("record: write rejection of entry %d: %w", rec.Pos, err)
			}
		}
		chained = append(chained, evs...)
	}
	return chained, nil
}

// reject appends a refused entry to the reject file and fsyncs it.
func (r *Recorder) reject(rec spool.Record, cause error) error {
	f, err := os.OpenFile(r.opt.RejectFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record: reject file: %w", err)
	}
	line, _ := json.Marshal(struct {
		Pos   int64           `json:"pos"`
		Error string          `json:"error"`
		Entry json.RawMessage `json:"entry"`
	}{rec.Pos, cause.Error(), rec.Data})
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("record: reject file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("record: reject file: %w", err)
	}
	return f.Close()
}

func (r *Recorder) setFlushed(p int64) {
	r.flushed.Store(p)
	r.mu.Lock()
	close(r.advance)
	r.advance = make(chan struct{})
	r.mu.Unlock()
}

// maybeCheckpoint signs the head this recorder last wrote when enough
// events or time have passed (or force). With several replicas each signs
// the head its own transaction produced, which is a true head of the one
// chain at that moment.
func (r *Recorder) maybeCheckpoint(force bool) {
	if r.opt.Signer == nil || r.head.Seq == 0 || r.head.Seq == r.cpSeq {
		return
	}
	now := r.opt.Now()
	if !force && r.sinceCP < r.opt.CheckpointEvery && now.Sub(r.lastCP) < r.opt.CheckpointInterval {
		return
	}
	cp := r.opt.Signer.Sign(r.head.Seq, r.head.Hash, now)
	for _, s := range r.opt.Sinks {
		if err := s.Write(cp); err != nil {
			r.opt.Logf("record: checkpoint %d: %v", cp.Seq, err)
		}
	}
	r.cpSeq, r.sinceCP, r.lastCP = r.head.Seq, 0, now
}

// CloseSpoolForTest closes the spool under the recorder, so that tests can
// see how callers answer when nothing can be recorded.
func (r *Recorder) CloseSpoolForTest() error { return r.sp.Close() }
