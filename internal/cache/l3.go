package cache

import (
	"context"
	"fmt"
	"time"
)

// Table is the store's cache table as the L3 level needs it; the store
// packages implement it. CacheGet returns (nil, false, nil) for a missing
// or expired entry (expires ≤ now); CachePut replaces any older entry.
type Table interface {
	CacheGet(ctx context.Context, key string, now time.Time) ([]byte, bool, error)
	CachePut(ctx context.Context, key, class string, val []byte, expires time.Time) error
}

// L3 is the durable level ("l3") over the store's cache table: it survives
// restarts and Redis outages. The table is outside the process: wrap the
// level in Sealed so that values are stored encrypted. Safe for concurrent
// use if the Table is.
type L3 struct {
	t   Table
	now func() time.Time
}

var _ Level = (*L3)(nil)

// NewL3 returns the level over t; now nil means time.Now (inject a clock in
// tests).
func NewL3(t Table, now func() time.Time) *L3 {
	if now == nil {
		now = time.Now
	}
	return &L3{t: t, now: now}
}

// Name returns "l3".
func (l *L3) Name() string { return "l3" }

// Get returns the live value for key.
func (l *L3) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := l.t.CacheGet(ctx, key, l.now())
	if err != nil {
		return nil, false, fmt.Errorf("cache: l3 get: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return v, true, nil
}

// Set stores val under key until now + class's TTL; an unknown class stores
// nothing.
func (l *L3) Set(ctx context.Context, key string, class Class, val []byte) error {
	ttl := class.TTL()
	if ttl <= 0 {
		return nil
	}
	if err := l.t.CachePut(ctx, key, string(class), val, l.now().Add(ttl)); err != nil {
		return fmt.Errorf("cache: l3 put: %w", err)
	}
	return nil
}
