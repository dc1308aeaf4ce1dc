package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// SetHeaders writes d to h as the IETF draft "RateLimit header fields for
// HTTP" (the RateLimit-Limit/-Remaining/-Reset form):
//
//   - RateLimit-Limit: the bucket's capacity, Burst+1 — what a fresh client
//     may send at once;
//   - RateLimit-Remaining: d.Remaining;
//   - RateLimit-Reset: seconds until the bucket is full again, rounded up;
//
// and, when d rejects the request, Retry-After in whole seconds, rounded up
// so that a client that waits that long is admitted, and at least 1 (an
// answer of 0 invites a client to retry in a tight loop). When d allows,
// any Retry-After is removed.
func SetHeaders(h http.Header, d Decision) {
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit.Capacity()))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(0, d.Remaining)))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	if d.Allowed {
		h.Del("Retry-After")
		return
	}
	h.Set("Retry-After", strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10))
}

// ceilSeconds returns d in whole seconds, rounded up; 0 for d ≤ 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
