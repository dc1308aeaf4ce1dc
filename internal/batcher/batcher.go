// Package batcher is a dynamic batcher for one model, with the semantics of
// NVIDIA Triton's dynamic batcher: single requests are queued per priority
// level and run together once MaxBatchSize of them are queued
// (size-triggered) or once the oldest has waited MaxQueueDelay
// (delay-triggered). Urgent levels are taken first, FIFO within a level;
// requests whose deadline passed or whose client went away are answered with
// their error and never run.
//
// # Concurrency design
//
// The queues are guarded by one mutex, not owned by a goroutine that others
// talk to over channels. An owner goroutine would add a goroutine hand-off
// (a scheduler wake-up) to every Submit and would have to select
// over a variable number of priority channels; with the mutex a Submit is a
// short critical section (push, maybe one non-blocking wake-up) and the only
// hand-offs left are the unavoidable ones: one to start a batch and one
// per request to return its result.
//
// Batches are formed by the workers themselves. formMu lets exactly one idle
// worker at a time be the "former": it sleeps until the queue has enough
// work (a wake channel from Submit) or the oldest request's delay runs out (a
// timer), takes the batch under mu, releases formMu and runs the batch, so
// the next idle worker forms the next batch meanwhile.
//
// Ownership of a request is decided under mu by its queued flag: whoever
// takes it out of a queue (the former, or its own Submit giving up on
// timeout or cancellation) answers it. A request taken into a batch is
// answered exactly once through its done channel; a request its Submit
// removed is never sent anything. That invariant is what lets request structs
// and their channels and timers be pooled and reused.
package batcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors returned by Submit. A RunFunc's own error is returned as is.
var (
	// ErrQueueFull rejects a Submit at once because its priority level is full.
	ErrQueueFull = errors.New("batcher: queue full")
	// ErrTimeout means the request's deadline passed before its batch ran.
	ErrTimeout = errors.New("batcher: request timed out in queue")
	// ErrClosed means the batcher no longer accepts requests.
	ErrClosed = errors.New("batcher: closed")
	// ErrOutputCount fails a batch whose RunFunc returned the wrong number of outputs.
	ErrOutputCount = errors.New("batcher: run returned a wrong number of outputs")
	// ErrPanic fails a batch whose RunFunc panicked (the panic is recovered so the server survives).
	ErrPanic = errors.New("batcher: run panicked")
)

// Defaults applied to zero Config fields.
const (
	DefaultMaxBatchSize  = 64
	DefaultMaxQueueDelay = 200 * time.Microsecond
	DefaultPriorities    = 3
	DefaultQueueSize     = 1024
	DefaultTimeout       = time.Second
	DefaultWorkers       = 1
)

// Observer.Rejected reasons.
const (
	rejectQueueFull = "queue_full"
	rejectTimeout   = "timeout"
	rejectCancelled = "cancelled"
	rejectClosed    = "closed"
	rejectBackend   = "backend"
)

// initialBatchBufferCap caps the batch buffers preallocated per worker; a
// huge MaxBatchSize then costs memory only if batches get that big.
const initialBatchBufferCap = 64

// Config tunes a Batcher; zero fields get the Default* values.
type Config struct {
	// MaxBatchSize is the largest batch (default 64); 1 disables batching.
	MaxBatchSize int
	// MaxQueueDelay is how long the first request of a batch may wait for
	// more (default 200µs). A negative value means no wait at all: a free
	// worker takes whatever is queued.
	MaxQueueDelay time.Duration
	// Priorities is the number of priority levels, 0 = most urgent (default 3).
	Priorities int
	// QueueSize bounds each priority level; a full level rejects at once (default 1024).
	QueueSize int
	// DefaultTimeout bounds a request's wait when its context has no earlier
	// deadline (default 1s).
	DefaultTimeout time.Duration
	// Workers is the number of batches that may run at once (default 1).
	// More than runtime.GOMAXPROCS only helps a RunFunc that blocks on I/O.
	Workers int
}

// withDefaults fills zero fields and rejects negative ones.
func (c Config) withDefaults() (Config, error) {
	if c.MaxBatchSize < 0 || c.Priorities < 0 || c.QueueSize < 0 || c.DefaultTimeout < 0 || c.Workers < 0 {
		return c, fmt.Errorf("batcher: negative config value in %+v", c)
	}
	if c.MaxBatchSize == 0 {
		c.MaxBatchSize = DefaultMaxBatchSize
	}
	if c.MaxQueueDelay == 0 {
		c.MaxQueueDelay = DefaultMaxQueueDelay
	}
	if c.Priorities == 0 {
		c.Priorities = DefaultPriorities
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	return c, nil
}

// Observer receives measurements (nil = none). Implementations must be cheap
// and concurrency-safe: they are called on the request path.
type Observer interface {
	// QueueTime is called per request run: from Submit to its batch's start.
	QueueTime(d time.Duration)
	// ComputeTime is called per batch: how long RunFunc took.
	ComputeTime(d time.Duration)
	// BatchSize is called per batch with the number of requests run.
	BatchSize(n int)
	// Rejected is called once per failed Submit, with reason "queue_full",
	// "timeout", "cancelled", "closed" or "backend".
	Rejected(reason string)
}

// RunFunc runs one batch. It must return exactly len(in) outputs, in input
// order, or an error, which fails every request of the batch. It must not
// keep in after returning: the batcher reuses it. ctx is not cancelled by
// any single request; the RunFunc should bound its own run time.
type RunFunc[In, Out any] func(ctx context.Context, in []In) ([]Out, error)

// sleepState tells Submit whether the former must be woken.
type sleepState uint8

const (
	awake      sleepState = iota // forming or running: it will look at the queue anyway
	sleepIdle                    // queue was empty: any new request matters
	sleepTimed                   // waiting for the oldest's delay: only a full batch matters
)

// Batcher queues requests for one model and runs them in batches. It is
// safe for concurrent use.
type Batcher[In, Out any] struct {
	run RunFunc[In, Out]
	obs Observer
	cfg Config

	// pool recycles request structs together with their done channel and
	// timer, so a Submit allocates nothing in the steady state.
	pool sync.Pool

	// formMu is held by the one worker forming the next batch.
	formMu sync.Mutex
	// wake (capacity 1) tells the sleeping former the queue changed in a way
	// it must see; a stale token only costs one extra look.
	wake chan struct{}

	mu     sync.Mutex // guards everything below, and request.queued
	queues []ring[*request[In, Out]]
	total  int // requests in all queues
	closed bool
	sleep  sleepState

	closeOnce sync.Once
	wg        sync.WaitGroup // workers
}

// request is one Submit in flight.
type request[In, Out any] struct {
	in       In
	out      Out
	err      error
	reason   string // Observer.Rejected reason when err != nil
	ctx      context.Context
	enq      time.Time // Submit time: queue time and the delay trigger count from here
	deadline time.Time // the earlier of enq+DefaultTimeout and the context's deadline
	prio     int
	queued   bool          // guarded by Batcher.mu: true while in a queue
	done     chan struct{} // capacity 1: exactly one send per request taken by a former
	timer    *time.Timer   // DefaultTimeout timer, created on first use and reused
}

// worker is one worker's reusable batch buffers.
type worker[In, Out any] struct {
	timer   *time.Timer // the delay-trigger wait
	reqs    []*request[In, Out]
	rejects []*request[In, Out]
	in      []In
}

// New starts a batcher with cfg.Workers workers. Close it to stop them.
func New[In, Out any](cfg Config, run RunFunc[In, Out], obs Observer) (*Batcher[In, Out], error) {
	if run == nil {
		return nil, errors.New("batcher: nil RunFunc")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Batcher[In, Out]{
		run:    run,
		obs:    obs,
		cfg:    cfg,
		wake:   make(chan struct{}, 1),
		queues: make([]ring[*request[In, Out]], cfg.Priorities),
	}
	b.pool.New = func() any { return &request[In, Out]{done: make(chan struct{}, 1)} }
	for i := range b.queues {
		b.queues[i] = newRing[*request[In, Out]](cfg.QueueSize)
	}
	b.wg.Add(cfg.Workers)
	for range cfg.Workers {
		c := min(cfg.MaxBatchSize, initialBatchBufferCap)
		w := &worker[In, Out]{
			timer: time.NewTimer(time.Hour),
			reqs:  make([]*request[In, Out], 0, c),
			in:    make([]In, 0, c),
		}
		w.timer.Stop()
		go b.work(w)
	}
	return b, nil
}

// Config returns the effective configuration, defaults filled in.
func (b *Batcher[In, Out]) Config() Config { return b.cfg }

// Submit queues one input at a priority (clamped to the valid range) and
// waits for its output. It returns ErrQueueFull at once when that level is
// full; ErrTimeout when DefaultTimeout or an earlier context deadline passes
// before the batch runs (a context may shorten the timeout, never lengthen
// it); context.Canceled when the context is cancelled while queued (the
// request is dropped and never run); ErrClosed after Close; or the batch's
// error. Once its batch has started, a request waits for the batch's result
// whatever happens to its context.
func (b *Batcher[In, Out]) Submit(ctx context.Context, priority int, in In) (Out, error) {
	var zero Out
	if err := ctx.Err(); err != nil {
		err, reason := ctxErr(err)
		b.rejected(reason)
		return zero, err
	}
	priority = max(0, min(priority, b.cfg.Priorities-1))
	now := time.Now()
	deadline := now.Add(b.cfg.DefaultTimeout)
	useTimer := true
	if d, ok := ctx.Deadline(); ok && !d.After(deadline) {
		// ctx.Done() fires at the deadline; no timer of our own needed.
		deadline, useTimer = d, false
	}

	r := b.pool.Get().(*request[In, Out])
	r.in, r.ctx, r.enq, r.deadline, r.prio = in, ctx, now, deadline, priority

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.release(r)
		b.rejected(rejectClosed)
		return zero, ErrClosed
	}
	if !b.queues[priority].push(r) {
		b.mu.Unlock()
		b.release(r)
		b.rejected(rejectQueueFull)
		return zero, ErrQueueFull
	}
	r.queued = true
	b.total++
	if b.sleep == sleepIdle || (b.sleep == sleepTimed && b.total >= b.cfg.MaxBatchSize) {
		b.sleep = awake // one wake-up is enough; later Submits need not send
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()

	var expired <-chan time.Time
	if useTimer {
		if r.timer == nil {
			r.timer = time.NewTimer(deadline.Sub(now))
		} else {
			r.timer.Reset(deadline.Sub(now))
		}
		expired = r.timer.C
	}
	var giveUp error
	select {
	case <-r.done:
	case <-ctx.Done():
		giveUp = ctx.Err()
	case <-expired:
		giveUp = context.DeadlineExceeded
	}
	if useTimer {
		r.timer.Stop() // since Go 1.23 no stale tick can be received after Stop
	}
	if giveUp != nil {
		b.mu.Lock()
		if r.queued {
			// Still queued: we own it. Drop it so it never runs.
			b.queues[r.prio].remove(r)
			b.total--
			r.queued = false
			b.mu.Unlock()
			r.err, r.reason = ctxErr(giveUp)
		} else {
			// A former took it: its answer (result, or the same timeout or
			// cancellation noticed at formation) is on the way.
			b.mu.Unlock()
			<-r.done
		}
	}
	out, err, reason := r.out, r.err, r.reason
	b.release(r)
	if err != nil {
		b.rejected(reason)
	}
	return out, err
}

// ctxErr maps a context error to Submit's error and the Observer reason.
func ctxErr(err error) (error, string) {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout, rejectTimeout
	}
	return err, rejectCancelled
}

func (b *Batcher[In, Out]) rejected(reason string) {
	if b.obs != nil {
		b.obs.Rejected(reason)
	}
}

// release clears r (so the pool holds no caller data) and pools it.
func (b *Batcher[In, Out]) release(r *request[In, Out]) {
	var (
		zi In
		zo Out
	)
	r.in, r.out, r.err, r.reason, r.ctx = zi, zo, nil, "", nil
	b.pool.Put(r)
}

// Close stops accepting requests, runs everything already queued without
// waiting for the delay, waits for in-flight batches, then returns. It is
// idempotent and may be called concurrently.
func (b *Batcher[In, Out]) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		select {
		case b.wake <- struct{}{}:
		default:
		}
	})
	b.wg.Wait()
}

// QueueLen reports queued requests per priority (for metrics and readiness).
func (b *Batcher[In, Out]) QueueLen() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := make([]int, len(b.queues))
	for i := range b.queues {
		n[i] = b.queues[i].n
	}
	return n
}

// work is one worker: form a batch, run it, repeat until closed and drained.
func (b *Batcher[In, Out]) work(w *worker[In, Out]) {
	defer b.wg.Done()
	for b.form(w) {
		b.runBatch(w)
	}
}

// form waits for a batch to be due and moves it into w.reqs. It returns
// false once the batcher is closed and the queues are empty.
func (b *Batcher[In, Out]) form(w *worker[In, Out]) bool {
	b.formMu.Lock()
	defer b.formMu.Unlock()
	for {
		b.mu.Lock()
		b.sleep = awake
		now := time.Now()
		wait := time.Duration(-1) // < 0: until woken
		switch {
		case b.total == 0 && b.closed:
			b.mu.Unlock()
			return false
		case b.total == 0:
			b.sleep = sleepIdle
		case b.total >= b.cfg.MaxBatchSize || b.closed || b.cfg.MaxQueueDelay < 0:
			wait = 0
		default:
			wait = max(0, b.cfg.MaxQueueDelay-now.Sub(b.oldest()))
			b.sleep = sleepTimed
		}
		if wait == 0 {
			b.sleep = awake
			b.take(w, now)
			b.mu.Unlock()
			b.answerRejects(w)
			if len(w.reqs) > 0 {
				return true
			}
			continue // every taken request had expired: look again
		}
		b.mu.Unlock()
		if wait < 0 {
			<-b.wake
			continue
		}
		w.timer.Reset(wait)
		select {
		case <-b.wake:
			w.timer.Stop()
		case <-w.timer.C:
		}
	}
}

// oldest returns the earliest Submit time among queue heads; mu held, total > 0.
func (b *Batcher[In, Out]) oldest() time.Time {
	var t time.Time
	for i := range b.queues {
		if q := &b.queues[i]; q.n > 0 {
			if e := q.peek().enq; t.IsZero() || e.Before(t) {
				t = e
			}
		}
	}
	return t
}

// take moves up to MaxBatchSize live requests, most urgent level first, into
// w.reqs, and expired or cancelled ones it meets into w.rejects; mu held.
func (b *Batcher[In, Out]) take(w *worker[In, Out], now time.Time) {
	for i := range b.queues {
		q := &b.queues[i]
		for q.n > 0 && len(w.reqs) < b.cfg.MaxBatchSize {
			r := q.pop()
			b.total--
			r.queued = false
			if err := r.ctx.Err(); err != nil {
				r.err, r.reason = ctxErr(err)
				w.rejects = append(w.rejects, r)
			} else if !now.Before(r.deadline) {
				r.err, r.reason = ErrTimeout, rejectTimeout
				w.rejects = append(w.rejects, r)
			} else {
				w.reqs = append(w.reqs, r)
			}
		}
	}
}

// answerRejects answers the requests take found dead, outside mu.
func (b *Batcher[In, Out]) answerRejects(w *worker[In, Out]) {
	for i, r := range w.rejects {
		r.done <- struct{}{} // r belongs to its Submit from here on
		w.rejects[i] = nil
	}
	w.rejects = w.rejects[:0]
}

// runBatch runs w.reqs and answers each request.
func (b *Batcher[In, Out]) runBatch(w *worker[In, Out]) {
	reqs := w.reqs
	in := w.in[:0]
	for _, r := range reqs {
		in = append(in, r.in)
	}
	var start time.Time
	if b.obs != nil {
		start = time.Now()
		for _, r := range reqs {
			b.obs.QueueTime(start.Sub(r.enq))
		}
		b.obs.BatchSize(len(reqs))
	}
	out, err := b.call(in)
	if b.obs != nil {
		b.obs.ComputeTime(time.Since(start))
	}
	if err == nil && len(out) != len(in) {
		err = fmt.Errorf("%w: got %d for %d inputs", ErrOutputCount, len(out), len(in))
	}
	for i, r := range reqs {
		if err != nil {
			r.err, r.reason = err, rejectBackend
		} else {
			r.out = out[i]
		}
		r.done <- struct{}{} // r belongs to its Submit from here on
	}
	clear(in) // drop references to caller data
	clear(reqs)
	w.in, w.reqs = in[:0], reqs[:0]
}

// call runs the RunFunc, turning a panic into an error so that one bad
// batch fails its requests instead of the whole server.
func (b *Batcher[In, Out]) call(in []In) (out []Out, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return b.run(context.Background(), in)
}
