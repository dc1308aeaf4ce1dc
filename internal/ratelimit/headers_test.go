package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestSetHeaders(t *testing.T) {
	inf := Limit{Rate: 1, Burst: 10}
	batch := Limit{Rate: 10.0 / 60}
	tests := []struct {
		name string
		d    Decision
		want map[string]string // "" means absent
	}{
		{"fresh", Decision{Allowed: true, Limit: inf, Remaining: 10, Reset: time.Second},
			map[string]string{"RateLimit-Limit": "11", "RateLimit-Remaining": "10", "RateLimit-Reset": "1", "Retry-After": ""}},
		{"reset rounds up", Decision{Allowed: true, Limit: inf, Remaining: 2, Reset: 8*time.Second + time.Nanosecond},
			map[string]string{"RateLimit-Limit": "11", "RateLimit-Remaining": "2", "RateLimit-Reset": "9", "Retry-After": ""}},
		{"rejected", Decision{Limit: inf, RetryAfter: time.Second, Reset: 11 * time.Second},
			map[string]string{"RateLimit-Limit": "11", "RateLimit-Remaining": "0", "RateLimit-Reset": "11", "Retry-After": "1"}},
		{"retry rounds up", Decision{Limit: batch, RetryAfter: 5*time.Second + 1, Reset: 5*time.Second + 1},
			map[string]string{"RateLimit-Limit": "1", "RateLimit-Remaining": "0", "RateLimit-Reset": "6", "Retry-After": "6"}},
		{"retry at least 1", Decision{Limit: inf, RetryAfter: time.Nanosecond, Reset: 10*time.Second + time.Nanosecond},
			map[string]string{"Retry-After": "1", "RateLimit-Reset": "11"}},
		{"retry 0 still 1", Decision{Limit: inf},
			map[string]string{"Retry-After": "1", "RateLimit-Reset": "0", "RateLimit-Remaining": "0"}},
	}
	for _, tt := range tests {
		h := http.Header{}
		h.Set("Retry-After", "stale")
		SetHeaders(h, tt.d)
		for k, want := range tt.want {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q; want %q", tt.name, k, got, want)
			}
		}
	}
}

// TestSetHeadersFromLimiter checks the headers a rejected client sees
// against the limiter: waiting Retry-After seconds gets it in.
func TestSetHeadersFromLimiter(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(clk.Now, 0)
	l := mustLimit(t, "30/min burst 5")
	for range 6 {
		mustAllow(t, m, "c", l)
	}
	clk.Advance(300 * time.Millisecond)
	d := mustAllow(t, m, "c", l)
	h := http.Header{}
	SetHeaders(h, d)
	if h.Get("Retry-After") != "2" || h.Get("RateLimit-Reset") != "12" || h.Get("RateLimit-Limit") != "6" {
		t.Fatalf("headers %v for %+v", h, d)
	}
	clk.Advance(2 * time.Second)
	if !mustAllow(t, m, "c", l).Allowed {
		t.Fatal("not allowed after Retry-After")
	}
}
