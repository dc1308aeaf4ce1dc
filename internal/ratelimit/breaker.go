package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Breaker states.
const (
	breakerClosed  int32 = iota // checks go to Redis
	breakerOpen                 // checks go to the fallback until openUntil
	breakerProbing              // one probe is in flight; others fall back
)

// breaker is the circuit breaker of cache.Redis, for the limiter: after a
// failure Redis is skipped for a cool-down at the cost of two atomic loads,
// then one probe decides whether it is back.
type breaker struct {
	coolDown time.Duration
	// base anchors the monotonic clock: openUntil is nanoseconds since base.
	base      time.Time
	state     atomic.Int32
	openUntil atomic.Int64
}

func newBreaker(coolDown time.Duration) *breaker {
	return &breaker{coolDown: coolDown, base: time.Now()}
}

// down reports whether the breaker is open (or probing).
func (b *breaker) down() bool { return b.state.Load() != breakerClosed }

func (b *breaker) since() int64 { return int64(time.Since(b.base)) }

// allow reports whether a check may go to Redis, and whether it is the one
// probe that decides if an open breaker closes.
func (b *breaker) allow() (probe, ok bool) {
	switch b.state.Load() {
	case breakerClosed:
		return false, true
	case breakerOpen:
		if b.since() < b.openUntil.Load() {
			return false, false
		}
		// Only the caller that wins the swap probes; the rest fall back.
		if b.state.CompareAndSwap(breakerOpen, breakerProbing) {
			return true, true
		}
	}
	return false, false
}

// done records a check's outcome. A failure opens the breaker for the
// cool-down; the probe's success closes it. A failure because the caller
// left (its context was cancelled) says nothing about Redis and trips
// nothing; a caller's deadline that ran out does trip it, since a deadline
// shorter than the operation timeout must not hide a hung Redis.
func (b *breaker) done(ctx context.Context, probe bool, err error) {
	callerGone := err != nil && errors.Is(ctx.Err(), context.Canceled)
	switch {
	case err == nil && probe:
		b.state.Store(breakerClosed)
	case err == nil || (callerGone && !probe):
		// Success while closed, or nothing learnt: no change. Only the
		// probe closes an open breaker.
	case callerGone:
		// The probe learnt nothing: let the next check probe at once.
		b.openUntil.Store(b.since())
		b.state.Store(breakerOpen)
	default:
		// openUntil first, so that a reader who sees the open state also
		// sees its deadline.
		b.openUntil.Store(b.since() + int64(b.coolDown))
		if probe {
			b.state.Store(breakerOpen)
		} else {
			b.state.CompareAndSwap(breakerClosed, breakerOpen)
		}
	}
}
