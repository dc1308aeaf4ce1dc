package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

const (
	// DefaultMaxKeys is NewMemory's bound when maxKeys ≤ 0: about 10 MB of
	// keys and timestamps at worst.
	DefaultMaxKeys = 100_000
	// maxMemoryShards bounds lock contention; a shard's lock is held for a
	// map lookup and a store.
	maxMemoryShards = 64
	// sweepGap is the least time between two sweeps of one shard, so a
	// flood of new keys into a full shard costs one O(shard) sweep per gap,
	// not one per request.
	sweepGap = 10 * time.Millisecond
)

// Memory is a Limiter that keeps each key's theoretical arrival time (TAT) in
// process: a map sharded by key hash, one mutex per shard. It is exact for
// one process; replicas each count their own clients (use Redis to share).
//
// Memory is bounded: it tracks at most maxKeys keys. An entry whose TAT has
// passed is a full bucket, exactly what an absent key is, so dropping it
// loses nothing; those are the only entries ever evicted. When a shard is
// full, it is swept of expired entries (at most once per 10 ms, and only if
// one has expired); if it is still full, the new key is not tracked and
// shares that shard's overflow bucket (one per Limit) with every other
// untracked key of the shard.
//
// That is the choice for a flood of distinct client keys (spoofed IPs, an
// IPv6 range): a client already tracked keeps its budget — no flood can
// evict an entry whose TAT is in the future, so it cannot buy a reset — and
// the untracked keys are limited together rather than treated as fresh, so
// the flood is never unlimited either: at most one Limit's worth per shard.
// The price falls on new, legitimate clients while the table is full of live
// entries: they share the flood's overflow budget until entries expire.
//
// A Memory is safe for concurrent use.
type Memory struct {
	now    func() time.Time
	base   time.Time // TATs are nanoseconds since base, on now's clock
	seed   maphash.Seed
	shards []memShard
}

var _ Limiter = (*Memory)(nil)

// memShard is one independently locked part of the table.
type memShard struct {
	mu  sync.Mutex
	tat map[string]int64
	max int // most entries tat may hold
	// minTAT is at most every TAT in tat, so no entry expires before it:
	// a sweep before then would free nothing.
	minTAT    int64
	lastSweep int64
	// overflow holds the TATs of the buckets shared by untracked keys.
	overflow map[Limit]int64
	// Padding keeps a hot shard's mutex off its neighbour's cache line.
	_ [64]byte
}

// NewMemory returns an empty Memory reading time from now (nil means
// time.Now; inject a clock in tests) and tracking at most maxKeys keys (≤ 0
// means DefaultMaxKeys).
func NewMemory(now func() time.Time, maxKeys int) *Memory {
	if now == nil {
		now = time.Now
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	n := min(maxMemoryShards, maxKeys)
	m := &Memory{now: now, base: now(), seed: maphash.MakeSeed(), shards: make([]memShard, n)}
	for i := range m.shards {
		s := &m.shards[i]
		// Split maxKeys exactly: the first maxKeys%n shards hold one more.
		s.max = maxKeys / n
		if i < maxKeys%n {
			s.max++
		}
		s.tat = make(map[string]int64)
		s.overflow = make(map[Limit]int64)
		s.minTAT = math.MaxInt64
		s.lastSweep = math.MinInt64 / 2
	}
	return m
}

// Allow implements Limiter; it never blocks on anything but a shard lock and
// fails only for an invalid limit.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Decision, error) {
	t, tau, err := l.interval()
	if err != nil {
		return Decision{}, err
	}
	now := int64(m.now().Sub(m.base))
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()

	tat, tracked := s.tat[key]
	if !tracked && !s.room(now) {
		d, newTAT := gcra(now, s.overflow[l], t, tau)
		if d.Allowed {
			s.overflow[l] = newTAT
		}
		d.Limit = l
		return d, nil
	}
	if !tracked {
		tat = now
	}
	d, newTAT := gcra(now, tat, t, tau)
	if d.Allowed {
		s.tat[key] = newTAT
		s.minTAT = min(s.minTAT, newTAT)
	}
	d.Limit = l
	return d, nil
}

// shard returns key's shard.
func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
}

// room reports whether the shard can track one more key, sweeping it of
// expired entries first if it is full and a sweep can free something.
func (s *memShard) room(now int64) bool {
	if len(s.tat) < s.max {
		return true
	}
	if now < s.minTAT || now < s.lastSweep+int64(sweepGap) {
		return false
	}
	s.lastSweep = now
	s.minTAT = math.MaxInt64
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
		} else {
			s.minTAT = min(s.minTAT, tat)
		}
	}
	for l, tat := range s.overflow {
		if tat <= now {
			delete(s.overflow, l)
		}
	}
	return len(s.tat) < s.max
}

// Len returns the number of keys tracked, expired entries not yet swept
// included; it never exceeds maxKeys.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
