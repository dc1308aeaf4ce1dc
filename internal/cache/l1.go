package cache

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

const (
	// maxShards bounds lock contention: with a lock held for ~100 ns per
	// operation, 16 shards keep a 64-core box far from saturating any one.
	maxShards = 16
	// minShardBytes keeps each shard's budget large enough that sharding does
	// not silently shrink the largest cacheable value below what a caller
	// expects from maxBytes; small caches (tests, tiny deployments) get one
	// shard and therefore exact global LRU order.
	minShardBytes = 1 << 20
)

// L1 is the in-process level: a sharded LRU bounded by total bytes (keys +
// values), entries expire by their class TTL.
//
// The byte budget counts len(key)+len(value) only; map and list overhead
// (about 150 bytes per entry) is not counted, so size maxBytes with that
// margin in mind.
//
// Slices returned by Get and Do are shared with the cache and with other
// callers and must not be modified. Set copies its input, so a caller may
// reuse its buffer; entries are replaced, never written in place, so a
// returned slice stays valid and unchanged after later Sets or evictions.
type L1 struct {
	shards []*shard
	seed   maphash.Seed
	now    func() time.Time
	obs    Observer
}

var _ Level = (*L1)(nil)

// shard is one independently locked LRU with its own share of the budget.
type shard struct {
	mu     sync.Mutex
	items  map[string]*entry
	calls  map[string]*call // in-flight Do computations, by key
	root   entry            // sentinel of the LRU ring: root.next is most recent
	bytes  int64
	budget int64
	// gen changes on Purge so that a computation started before the purge
	// does not store its (possibly stale-model) result after it.
	gen uint64
	// Padding keeps a hot shard's mutex off its neighbour's cache line.
	_ [64]byte
}

// entry is one cached value, linked into its shard's LRU ring.
type entry struct {
	key        string
	val        []byte
	expires    time.Time // kept as time.Time so the monotonic clock decides expiry
	prev, next *entry
}

// call is one in-flight computation shared by every Do caller of its key.
type call struct {
	done     chan struct{} // closed once val and err are set
	val      []byte
	err      error
	waiters  int  // callers still waiting; guarded by the shard lock
	finished bool // compute returned; guarded by the shard lock
	cancel   context.CancelFunc
	gen      uint64
}

// NewL1 returns an empty L1 holding at most maxBytes of keys and values; now
// nil means time.Now (inject a clock in tests). maxBytes ≤ 0 caches nothing.
func NewL1(maxBytes int64, now func() time.Time) *L1 {
	if now == nil {
		now = time.Now
	}
	if maxBytes < 0 {
		maxBytes = 0
	}
	n := 1
	for n < maxShards && maxBytes/int64(n*2) >= minShardBytes {
		n *= 2
	}
	c := &L1{shards: make([]*shard, n), seed: maphash.MakeSeed(), now: now}
	for i := range c.shards {
		s := &shard{
			items:  make(map[string]*entry),
			calls:  make(map[string]*call),
			budget: maxBytes / int64(n),
		}
		s.root.next, s.root.prev = &s.root, &s.root
		c.shards[i] = s
	}
	return c
}

// SetObserver installs o to receive hit, miss and evict events; call it
// before the cache is shared, since it is not synchronised (keeping the hot
// path free of an atomic load).
func (c *L1) SetObserver(o Observer) { c.obs = o }

// Name returns "l1".
func (c *L1) Name() string { return "l1" }

func (c *L1) shardFor(key string) *shard {
	if len(c.shards) == 1 {
		return c.shards[0]
	}
	// The shard count is a power of two, so a mask picks the shard.
	return c.shards[maphash.String(c.seed, key)&uint64(len(c.shards)-1)]
}

// Get returns the live value for key. The returned slice must not be
// modified. ctx is unused: L1 never blocks, and a cancelled caller may as
// well receive a value that costs nothing to return.
func (c *L1) Get(_ context.Context, key string) ([]byte, bool, error) {
	now := c.now()
	s := c.shardFor(key)
	s.mu.Lock()
	v, ok := s.lookup(key, now)
	s.mu.Unlock()
	if ok {
		c.hit()
	} else {
		c.miss()
	}
	return v, ok, nil
}

// Set stores a copy of val under key for class's TTL. An unknown class, or a
// key and value larger than one shard's budget, stores nothing (and drops
// any older value for key, so a stale answer never outlives a newer one).
func (c *L1) Set(_ context.Context, key string, class Class, val []byte) error {
	// Copy so that a caller reusing its buffer cannot change a cached answer;
	// make+copy gives len == cap, so a reader's append reallocates instead
	// of writing into memory another reader sees.
	var v []byte
	if val != nil {
		v = make([]byte, len(val))
		copy(v, val)
	}
	c.store(key, class, v, 0, false)
	return nil
}

// store inserts v (already owned by the cache) and reports evictions. With
// checkGen it stores only if no Purge happened since generation gen.
func (c *L1) store(key string, class Class, v []byte, gen uint64, checkGen bool) {
	ttl := class.TTL()
	s := c.shardFor(key)
	expires := c.now().Add(ttl)
	s.mu.Lock()
	if checkGen && s.gen != gen {
		s.mu.Unlock()
		return
	}
	evicted := s.put(key, v, ttl, expires)
	s.mu.Unlock()
	c.evict(evicted)
}

// Delete removes key, for explicit invalidation (for example a corrected
// patient record).
func (c *L1) Delete(key string) {
	s := c.shardFor(key)
	s.mu.Lock()
	if e, ok := s.items[key]; ok {
		s.remove(e)
	}
	s.mu.Unlock()
}

// Len returns the number of entries, expired ones not yet cleaned included.
func (c *L1) Len() int {
	n := 0
	for _, s := range c.shards {
		s.mu.Lock()
		n += len(s.items)
		s.mu.Unlock()
	}
	return n
}

// Bytes returns the bytes of keys and values held.
func (c *L1) Bytes() int64 {
	var n int64
	for _, s := range c.shards {
		s.mu.Lock()
		n += s.bytes
		s.mu.Unlock()
	}
	return n
}

// Purge drops everything (e.g. on model swap). Computations already in
// flight still answer their waiters but store nothing, and later callers
// start a fresh computation rather than joining a pre-purge one.
func (c *L1) Purge() {
	for _, s := range c.shards {
		s.mu.Lock()
		// Fresh maps let the GC take the old entries in one go.
		s.items = make(map[string]*entry)
		s.calls = make(map[string]*call)
		s.root.next, s.root.prev = &s.root, &s.root
		s.bytes = 0
		s.gen++
		s.mu.Unlock()
	}
}

// Sweep removes every expired entry and returns how many it removed. Expired
// entries are never returned in any case; Sweep only frees their memory
// early, so a periodic call (say every minute) is optional.
func (c *L1) Sweep() int {
	now := c.now()
	n := 0
	for _, s := range c.shards {
		s.mu.Lock()
		for e := s.root.prev; e != &s.root; {
			prev := e.prev
			if !now.Before(e.expires) {
				s.remove(e)
				n++
			}
			e = prev
		}
		s.mu.Unlock()
	}
	return n
}

// Do returns the cached value for key, or computes it once for all concurrent
// callers of the same key (the others wait for the one computation and share
// its result; an error is shared, not cached), stores it with the class TTL,
// and reports whether it was a hit. ctx cancellation of a waiting caller
// returns ctx.Err() for that caller only.
//
// compute runs on its own goroutine with a context that keeps the first
// caller's values but not its cancellation or deadline, so no single caller
// leaving can fail the others; it is cancelled once every caller has left.
// The slice compute returns becomes the cache's: compute must not keep or
// modify it, and callers must not modify the returned slice. A panic in
// compute is returned to every waiter as an error wrapping ErrComputePanicked.
func (c *L1) Do(ctx context.Context, key string, class Class, compute func(ctx context.Context) ([]byte, error)) (val []byte, hit bool, err error) {
	now := c.now()
	s := c.shardFor(key)
	s.mu.Lock()
	if v, ok := s.lookup(key, now); ok {
		s.mu.Unlock()
		c.hit()
		return v, true, nil
	}
	// Checked after the lookup: a hit costs nothing to return, but a
	// cancelled caller must not start or join a computation.
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		c.miss()
		return nil, false, err
	}
	cl, joined := s.calls[key]
	if joined {
		cl.waiters++
	} else {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cl = &call{done: make(chan struct{}), waiters: 1, cancel: cancel, gen: s.gen}
		s.calls[key] = cl
		go c.run(cctx, s, key, class, cl, compute)
	}
	s.mu.Unlock()
	c.miss()

	select {
	case <-cl.done:
		return cl.val, false, cl.err
	case <-ctx.Done():
	}
	// Prefer a result that is already there over reporting cancellation.
	select {
	case <-cl.done:
		return cl.val, false, cl.err
	default:
	}
	s.mu.Lock()
	cl.waiters--
	if cl.waiters == 0 && !cl.finished {
		// Nobody wants the answer any more: stop the work, and make sure a
		// newcomer starts afresh instead of joining a cancelled computation.
		cl.cancel()
		if s.calls[key] == cl {
			delete(s.calls, key)
		}
	}
	s.mu.Unlock()
	return nil, false, ctx.Err()
}

// run executes compute for cl, stores a successful result and releases the
// waiters, whatever way compute ends (return, panic or Goexit).
func (c *L1) run(ctx context.Context, s *shard, key string, class Class, cl *call, compute func(context.Context) ([]byte, error)) {
	var (
		val    []byte
		err    error
		normal bool
	)
	defer func() {
		if !normal {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v", ErrComputePanicked, r)
			} else {
				err = errComputeExited
			}
			val = nil
		}
		cl.cancel() // release the context's resources
		// Clip so that a reader's append reallocates rather than writing
		// into spare capacity that other readers share.
		val = val[:len(val):len(val)]
		cl.val, cl.err = val, err

		ttl := class.TTL()
		expires := c.now().Add(ttl)
		s.mu.Lock()
		cl.finished = true
		if s.calls[key] == cl {
			delete(s.calls, key)
		}
		var evicted int
		if err == nil && s.gen == cl.gen {
			evicted = s.put(key, val, ttl, expires)
		}
		s.mu.Unlock()
		close(cl.done)
		c.evict(evicted)
	}()
	val, err = compute(ctx)
	normal = true
}

// lookup returns the live value for key and marks it most recently used;
// an expired entry is removed. The caller holds s.mu.
func (s *shard) lookup(key string, now time.Time) ([]byte, bool) {
	e, ok := s.items[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		s.remove(e)
		return nil, false
	}
	if s.root.next != e {
		s.unlink(e)
		s.pushFront(e)
	}
	return e.val, true
}

// put stores v under key and evicts least recently used entries until the
// shard is within budget, returning how many it evicted. A TTL of 0 or an
// entry larger than the whole budget stores nothing but still drops the old
// value, so the newest write always wins. The caller holds s.mu.
func (s *shard) put(key string, v []byte, ttl time.Duration, expires time.Time) int {
	size := int64(len(key) + len(v))
	old, exists := s.items[key]
	if ttl <= 0 || size > s.budget {
		if exists {
			s.remove(old)
		}
		return 0
	}
	if exists {
		s.bytes += int64(len(v)) - int64(len(old.val))
		old.val, old.expires = v, expires
		s.unlink(old)
		s.pushFront(old)
	} else {
		e := &entry{key: key, val: v, expires: expires}
		s.items[key] = e
		s.pushFront(e)
		s.bytes += size
	}
	n := 0
	for s.bytes > s.budget {
		// The new entry fits the budget on its own, so the loop stops before
		// reaching it at the front.
		s.remove(s.root.prev)
		n++
	}
	return n
}

func (s *shard) remove(e *entry) {
	s.unlink(e)
	delete(s.items, e.key)
	s.bytes -= int64(len(e.key) + len(e.val))
}

func (s *shard) unlink(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.prev = &s.root
	e.next = s.root.next
	s.root.next.prev = e
	s.root.next = e
}

func (c *L1) hit() {
	if c.obs != nil {
		c.obs.Hit("l1")
	}
}

func (c *L1) miss() {
	if c.obs != nil {
		c.obs.Miss("l1")
	}
}

// evict reports n capacity evictions; expiry is not an eviction, so the
// metric measures memory pressure only.
func (c *L1) evict(n int) {
	if c.obs == nil {
		return
	}
	for range n {
		c.obs.Evict("l1")
	}
}
