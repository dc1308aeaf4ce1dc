package gateway

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestInFlight(t *testing.T) {
	tests := []struct {
		name      string
		max       int
		busy      int // requests held inside the handler
		wantExtra int // status of one more request
	}{
		{"under the limit", 3, 2, 200},
		{"at the limit", 3, 3, 503},
		{"limit of one", 1, 1, 503},
		{"no limit", 0, 5, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := InFlight(tt.max)
			release := make(chan struct{})
			entered := make(chan struct{})
			h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hold" {
					entered <- struct{}{}
					<-release
				}
				w.WriteHeader(http.StatusOK)
			}))
			var wg sync.WaitGroup
			for range tt.busy {
				wg.Go(func() {
					h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hold", nil))
				})
				<-entered
			}
			if got := l.Current(); got != tt.busy {
				t.Errorf("Current() = %d with %d held, want %d", got, tt.busy, tt.busy)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/inference", nil))
			if tt.wantExtra == 503 {
				checkProblem(t, rec, 503, "/api/v1/inference")
				if got := rec.Header().Get("Retry-After"); got != "1" {
					t.Errorf("Retry-After = %q, want 1", got)
				}
				if l.Rejected() != 1 {
					t.Errorf("Rejected() = %d, want 1", l.Rejected())
				}
			} else if rec.Code != tt.wantExtra {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantExtra)
			}
			if got := l.Current(); got != tt.busy {
				t.Errorf("Current() after the extra request = %d, want %d", got, tt.busy)
			}
			close(release)
			wg.Wait()
			if got := l.Current(); got != 0 {
				t.Errorf("Current() after all returned = %d, want 0", got)
			}
		})
	}
}

// TestInFlightConcurrent hammers the limit from many goroutines: the count
// never exceeds the limit inside the handler and returns to zero.
func TestInFlightConcurrent(t *testing.T) {
	const limit = 4
	l := InFlight(limit)
	var mu sync.Mutex
	inside, peak := 0, 0
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inside++
		peak = max(peak, inside)
		mu.Unlock()
		mu.Lock()
		inside--
		mu.Unlock()
	}))
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 50 {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}
		})
	}
	wg.Wait()
	if peak > limit {
		t.Errorf("peak in handler = %d, limit %d", peak, limit)
	}
	if l.Current() != 0 {
		t.Errorf("Current() = %d after all returned", l.Current())
	}
}
