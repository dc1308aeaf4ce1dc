package ratelimit

import (
	"context"
	"time"
)

// Decision is the outcome of one Allow: whether the request may proceed, and
// what to tell the client about its budget (see SetHeaders).
type Decision struct {
	Allowed bool
	Limit   Limit
	// Remaining is how many more requests the client could send right now
	// and have allowed, in [0, Burst].
	Remaining int
	// RetryAfter is how long a rejected client must wait before its next
	// request can be allowed; 0 when allowed.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again (Burst+1 requests
	// available) if the client sends nothing more.
	Reset time.Duration
}

// Limiter decides whether the request of the client identified by key
// conforms to l. Allow records an allowed request; a rejected one costs the
// client nothing. The key names both the zone and the client; the limit may
// differ between calls (a key's override), the bucket is the key's.
//
// An error means the limit is invalid (ErrInvalidLimit), never that a
// backend is down: a Limiter that depends on one falls back instead.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
}

// gcra applies one request at now (in any unit, t and tau in the same one)
// to a bucket whose theoretical arrival time is tat (tat ≤ now: the bucket
// is full). It returns the decision in that unit (the caller scales the
// durations) and the TAT to store, which is tat unchanged when rejected.
func gcra(now, tat, t, tau int64) (d Decision, newTAT int64) {
	tat = max(tat, now)
	if allowAt := tat - tau; now < allowAt {
		return Decision{RetryAfter: time.Duration(allowAt - now), Reset: time.Duration(tat - now)}, tat
	}
	newTAT = tat + t
	d = Decision{Allowed: true, Reset: time.Duration(newTAT - now)}
	// The next request is allowed now iff now ≥ newTAT − τ, and each one
	// after it moves the TAT by t: count how many fit. slack ≥ −t here.
	if slack := now + tau - newTAT; slack >= 0 {
		d.Remaining = int(slack/t) + 1
	}
	return d, newTAT
}
