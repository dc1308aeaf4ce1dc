package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for TieredOptions.
const (
	DefaultTieredGetTimeout = 100 * time.Millisecond
	DefaultTieredSetTimeout = time.Second
	DefaultTieredQueueSize  = 1024
	DefaultTieredWorkers    = 2
)

// TieredOptions tunes a Tiered cache; zero fields take the defaults.
type TieredOptions struct {
	// GetTimeout bounds each lower level's Get inside a request (a level
	// may bound itself tighter, as Redis does).
	GetTimeout time.Duration
	// SetTimeout bounds each asynchronous write.
	SetTimeout time.Duration
	// QueueSize is the number of pending writes each lower level may have;
	// past it writes are dropped and counted, never waited for.
	QueueSize int
	// Workers is the number of goroutines writing to each lower level.
	Workers int
	// Observer, if set, receives Hit and Miss for the lower levels (the
	// L1 has its own, see L1.SetObserver), and LevelError and WriteDropped
	// if it also implements ErrorObserver.
	Observer Observer
}

// TieredStats counts what happened to the lower levels since NewTiered.
type TieredStats struct {
	GetErrors   int64 // lower-level Gets that failed (answered as a miss)
	Written     int64 // asynchronous writes stored
	WriteErrors int64 // asynchronous writes that failed (ErrLevelDown included)
	Dropped     int64 // asynchronous writes dropped: queue full, or after Close
}

// Tiered is the multi-level cache: the in-process L1 in front of slower,
// shared levels (Redis as "l2", the store as "l3"). It satisfies
// pipeline.Cache.
//
// A lookup walks the levels in order and the first hit answers; a miss
// everywhere computes. Concurrent misses of one key share one walk and one
// computation (the L1's singleflight). Levels below the L1 are written
// asynchronously — a computed answer to all of them, a lower level's hit to
// the levels above it that missed — by a small pool of workers per level
// behind a bounded queue, so a slow or dead Redis or database never adds
// latency to a request; a full queue drops the write. A level error is a
// miss, counted and reported, never an error for the caller.
//
// A value found in a lower level is stored above it with the class's full
// TTL (the levels do not report what remains of theirs), so an answer may
// outlive its first computation by up to one TTL per level.
type Tiered struct {
	l1         *L1
	class      Class
	lower      []Level
	queues     []chan writeJob // one per lower level, so a slow level cannot starve another
	getTimeout time.Duration
	setTimeout time.Duration
	obs        Observer
	eobs       ErrorObserver

	lookups sync.Pool // of *lookup

	mu     sync.RWMutex // guards closed against sends on closed queues
	closed bool
	wg     sync.WaitGroup

	getErrors, written, writeErrors, dropped atomic.Int64
}

// writeJob is one pending write to one lower level.
type writeJob struct {
	key string
	val []byte // read-only: shared with the L1 and the callers
}

// NewTiered returns a cache of l1 then lower (in lookup order, usually
// Redis then the store) for answers of class, and starts its writers; call
// Close to stop them.
func NewTiered(l1 *L1, class Class, lower []Level, opt TieredOptions) *Tiered {
	if opt.GetTimeout <= 0 {
		opt.GetTimeout = DefaultTieredGetTimeout
	}
	if opt.SetTimeout <= 0 {
		opt.SetTimeout = DefaultTieredSetTimeout
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = DefaultTieredQueueSize
	}
	if opt.Workers <= 0 {
		opt.Workers = DefaultTieredWorkers
	}
	t := &Tiered{
		l1:         l1,
		class:      class,
		lower:      append([]Level(nil), lower...),
		queues:     make([]chan writeJob, len(lower)),
		getTimeout: opt.GetTimeout,
		setTimeout: opt.SetTimeout,
		obs:        opt.Observer,
	}
	t.eobs, _ = opt.Observer.(ErrorObserver)
	t.lookups.New = t.newLookup
	for i := range t.queues {
		t.queues[i] = make(chan writeJob, opt.QueueSize)
		for range opt.Workers {
			t.wg.Add(1)
			go t.writer(i)
		}
	}
	return t
}

// Do returns the answer for key and the level that held it ("l1", "l2",
// "l3"), or computes it ("" as level). Only compute's error (or ctx's) is
// returned; compute runs at most once for concurrent callers of key, on its
// own goroutine (see L1.Do for its context and the sharing rules). A caller
// that joined another caller's in-flight lookup gets "" as level whatever
// answered it. The returned slice must not be modified.
func (t *Tiered) Do(ctx context.Context, key string, compute func(ctx context.Context) ([]byte, error)) ([]byte, string, error) {
	lk := t.lookups.Get().(*lookup)
	lk.key, lk.compute = key, compute
	v, hit, err := t.l1.Do(ctx, key, t.class, lk.fn)
	if err != nil {
		// Neither read nor recycle lk: a caller that left early (ctx) may
		// still have its lookup running and using it.
		return nil, "", err
	}
	// The lookup, if it ran, has finished (L1.Do saw its result).
	level := lk.level
	if hit {
		level = t.l1.Name()
	}
	*lk = lookup{t: t, fn: lk.fn}
	t.lookups.Put(lk)
	return v, level, nil
}

// lookup is one caller's walk below the L1, recycled so that an L1 hit
// allocates nothing: fn is its run method, bound once.
type lookup struct {
	t       *Tiered
	fn      func(ctx context.Context) ([]byte, error)
	key     string
	compute func(ctx context.Context) ([]byte, error)
	level   string // set by run: the level that answered, "" if computed
}

func (t *Tiered) newLookup() any {
	lk := &lookup{t: t}
	lk.fn = lk.run
	return lk
}

func (lk *lookup) run(ctx context.Context) ([]byte, error) {
	v, level, err := lk.t.fill(ctx, lk.key, lk.compute)
	lk.level = level
	return v, err
}

// fill walks the lower levels in order, then computes; it runs once per key
// for all concurrent callers.
func (t *Tiered) fill(ctx context.Context, key string, compute func(ctx context.Context) ([]byte, error)) ([]byte, string, error) {
	for i, lv := range t.lower {
		if v, ok := t.get(ctx, lv, key); ok {
			for j := range i {
				t.enqueue(j, key, v)
			}
			return v, lv.Name(), nil
		}
		if err := ctx.Err(); err != nil {
			return nil, "", err // every caller has left
		}
	}
	v, err := compute(ctx)
	if err != nil {
		return nil, "", err
	}
	for j := range t.lower {
		t.enqueue(j, key, v)
	}
	return v, "", nil
}

// get asks one lower level, bounded by GetTimeout; an error is a miss.
func (t *Tiered) get(ctx context.Context, lv Level, key string) ([]byte, bool) {
	gctx, cancel := context.WithTimeout(ctx, t.getTimeout)
	v, ok, err := lv.Get(gctx, key)
	cancel()
	switch {
	case err != nil:
		t.getErrors.Add(1)
		t.levelError(lv.Name())
		t.miss(lv.Name())
		return nil, false
	case ok:
		if t.obs != nil {
			t.obs.Hit(lv.Name())
		}
		return v, true
	default:
		t.miss(lv.Name())
		return nil, false
	}
}

// enqueue schedules a write of val to lower level i without ever waiting:
// a full queue, or a closed cache, drops it.
func (t *Tiered) enqueue(i int, key string, val []byte) {
	t.mu.RLock()
	queued := false
	if !t.closed {
		select {
		case t.queues[i] <- writeJob{key: key, val: val}:
			queued = true
		default:
		}
	}
	t.mu.RUnlock()
	if !queued {
		t.dropped.Add(1)
		if t.eobs != nil {
			t.eobs.WriteDropped(t.lower[i].Name())
		}
	}
}

// writer serves lower level i's queue until Close.
func (t *Tiered) writer(i int) {
	defer t.wg.Done()
	lv := t.lower[i]
	for j := range t.queues[i] {
		ctx, cancel := context.WithTimeout(context.Background(), t.setTimeout)
		err := lv.Set(ctx, j.key, t.class, j.val)
		cancel()
		if err != nil {
			t.writeErrors.Add(1)
			t.levelError(lv.Name())
		} else {
			t.written.Add(1)
		}
	}
}

// Close stops accepting writes, finishes the queued ones (each bounded by
// SetTimeout) and returns when the writers have stopped. Do keeps working
// after Close, without writing to the lower levels. Close is idempotent.
func (t *Tiered) Close() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		for _, q := range t.queues {
			close(q)
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// Stats returns the lower levels' counters.
func (t *Tiered) Stats() TieredStats {
	return TieredStats{
		GetErrors:   t.getErrors.Load(),
		Written:     t.written.Load(),
		WriteErrors: t.writeErrors.Load(),
		Dropped:     t.dropped.Load(),
	}
}

func (t *Tiered) miss(level string) {
	if t.obs != nil {
		t.obs.Miss(level)
	}
}

func (t *Tiered) levelError(level string) {
	if t.eobs != nil {
		t.eobs.LevelError(level)
	}
}
