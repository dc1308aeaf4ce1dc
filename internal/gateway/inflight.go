package gateway

import (
	"net/http"
	"sync/atomic"
)

// InFlightLimit caps the requests being served at once. Beyond the cap a
// request is refused at once with 503 and Retry-After: 1: no queue, so an
// overloaded server answers quickly instead of piling up work.
type InFlightLimit struct {
	max      int64
	n        atomic.Int64
	rejected atomic.Uint64
}

// InFlight returns a limit of max concurrent requests; max <= 0 means no
// limit (requests are still counted). Apply it with its Wrap method.
func InFlight(max int) *InFlightLimit {
	return &InFlightLimit{max: int64(max)}
}

// Wrap is the middleware: func(http.Handler) http.Handler.
func (l *InFlightLimit) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := l.n.Add(1); l.max > 0 && n > l.max {
			l.n.Add(-1)
			l.rejected.Add(1)
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, http.StatusServiceUnavailable, "too many requests in flight; retry shortly")
			return
		}
		defer l.n.Add(-1)
		next.ServeHTTP(w, r)
	})
}

// Current returns the number of requests in flight now, for a gauge. A
// refused request is counted only for the instant it takes to refuse it.
func (l *InFlightLimit) Current() int { return int(l.n.Load()) }

// Rejected returns how many requests were refused since start, for a counter.
func (l *InFlightLimit) Rejected() uint64 { return l.rejected.Load() }
