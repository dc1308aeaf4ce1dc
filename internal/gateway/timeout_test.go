package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTimeoutInTime(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		wantStatus int
		wantBody   string
		wantHeader map[string]string // "" means absent
	}{
		{
			name: "status, headers and body pass through",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if _, ok := r.Context().Deadline(); !ok {
					t.Error("handler context has no deadline")
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Del("X-Outer-Removed")
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, `{"a":`)
				_, _ = io.WriteString(w, `1}`)
			},
			wantStatus: 201, wantBody: `{"a":1}`,
			wantHeader: map[string]string{"Content-Type": "application/json", "X-Outer": "kept", "X-Outer-Removed": ""},
		},
		{
			name:       "nothing written is 200",
			handler:    func(w http.ResponseWriter, r *http.Request) {},
			wantStatus: 200, wantBody: "",
			wantHeader: map[string]string{"X-Outer": "kept"},
		},
		{
			name: "handler sees outer headers",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, w.Header().Get("X-Outer"))
			},
			wantStatus: 200, wantBody: "kept",
		},
		{
			name: "informational status ignored, superfluous ignored",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusEarlyHints)
				w.WriteHeader(http.StatusAccepted)
				w.WriteHeader(http.StatusOK)
			},
			wantStatus: 202, wantBody: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Outer", "kept")
			rec.Header().Set("X-Outer-Removed", "x")
			Timeout(time.Hour)(tt.handler).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/x", nil))
			if rec.Code != tt.wantStatus || rec.Body.String() != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), tt.wantStatus, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestTimeoutLate blocks the handler on a channel past a tiny deadline: the
// client gets the 503 problem, and the handler's late writes and header
// changes are discarded without a race (run with -race).
func TestTimeoutLate(t *testing.T) {
	release := make(chan struct{})
	finished := make(chan error, 1)
	var ctxErr error
	h := Timeout(time.Millisecond)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		ctxErr = r.Context().Err()
		<-release
		w.Header().Set("X-Late", "yes")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, err := io.WriteString(w, "late answer")
		finished <- err
	}))
	rec := httptest.NewRecorder()
	rec.Header().Set("X-Content-Type-Options", "nosniff") // an outer layer's header
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/inference", nil))
	p := checkProblem(t, rec, http.StatusServiceUnavailable, "/api/v1/inference")
	if p.Detail != "timed out" {
		t.Errorf("detail = %q, want timed out", p.Detail)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Error("outer header lost on timeout")
	}
	close(release)
	if err := <-finished; !errors.Is(err, http.ErrHandlerTimeout) {
		t.Errorf("late write error = %v, want http.ErrHandlerTimeout", err)
	}
	if !errors.Is(ctxErr, context.DeadlineExceeded) {
		t.Errorf("handler context error = %v, want DeadlineExceeded", ctxErr)
	}
	if rec.Header().Get("X-Late") != "" || strings.Contains(rec.Body.String(), "late") {
		t.Errorf("late answer leaked: %v %q", rec.Header(), rec.Body.String())
	}
}

// TestTimeoutServer runs the late handler behind a real server.
func TestTimeoutServer(t *testing.T) {
	release := make(chan struct{})
	done := make(chan struct{})
	srv := httptest.NewServer(Timeout(time.Millisecond)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		<-r.Context().Done()
		<-release
		_, _ = io.WriteString(w, "late")
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/api/v1/clinical")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(release)
	<-done
	if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), `"timed out"`) {
		t.Errorf("got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestTimeoutKeepsEarlierDeadline(t *testing.T) {
	parent, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
	defer cancel()
	want, _ := parent.Deadline()
	var got time.Time
	h := Timeout(2 * time.Hour)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = r.Context().Deadline()
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(parent))
	if !got.Equal(want) {
		t.Errorf("deadline = %v, want the parent's %v", got, want)
	}
}

func TestTimeoutCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release, finished := make(chan struct{}), make(chan struct{})
	h := Timeout(time.Hour)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(finished)
		cancel() // the client went away
		<-r.Context().Done()
		<-release
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
	close(release)
	<-finished
	if p := checkProblem(t, rec, 503, "/x"); p.Detail != "request canceled" {
		t.Errorf("detail = %q", p.Detail)
	}
}

func TestTimeoutPanic(t *testing.T) {
	tests := []struct {
		name  string
		value any
		want  func(any) bool
	}{
		{"value with stack", "boom", func(p any) bool { s, ok := p.(string); return ok && strings.HasPrefix(s, "boom\n\n") }},
		{"abort handler kept", http.ErrAbortHandler, func(p any) bool { return p == http.ErrAbortHandler }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Timeout(time.Hour)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(tt.value) }))
			defer func() {
				if p := recover(); !tt.want(p) {
					t.Errorf("recovered %v", p)
				}
			}()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			t.Error("no panic")
		})
	}
}

func TestTimeoutZero(t *testing.T) {
	rec := httptest.NewRecorder()
	Timeout(0)(ok).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Body.String() != "ok" {
		t.Errorf("got %d %q", rec.Code, rec.Body.String())
	}
}

func TestTimeoutWriterInvalidCode(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("WriteHeader(42) did not panic")
		}
	}()
	(&timeoutWriter{h: http.Header{}}).WriteHeader(42)
}
