package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// sampleBody is shaped like a medserve inference request, so the baseline
// benchmark decodes a realistic mix of strings, numbers and nesting.
const sampleBody = `{"query":"chest pain radiating to left arm, sweating","patient":{"age":67,"sex":"M"},` +
	`"vitals":{"hr":112,"sbp":92,"dbp":60,"rr":24,"spo2":91,"temp":37.4,"avpu":"A"},` +
	`"context":{"arrival_mode":"ambulance","injury":false},"medications":["aspirin","metoprolol","atorvastatin"],` +
	`"options":{"explain":true}}`

func TestRunFixedRate(t *testing.T) {
	var (
		mu      sync.Mutex
		queries = map[string]int{}
		badHdr  int
	)
	base := BaselineHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Bench") != "yes" {
			badHdr++
		}
		mu.Unlock()
		// Peek at the query without consuming the body for the echo.
		rec := httptest.NewRecorder()
		base.ServeHTTP(rec, r)
		var v struct{ Query string }
		_ = json.Unmarshal(rec.Body.Bytes(), &v)
		mu.Lock()
		queries[v.Query]++
		mu.Unlock()
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()

	bodies := Vary([][]byte{[]byte(sampleBody)}, 7)
	hdr := http.Header{"X-Bench": {"yes"}, "Content-Type": {"text/plain"}}
	rep, err := Run(context.Background(), Config{URL: srv.URL, Bodies: bodies, Rate: 200, Duration: 300 * time.Millisecond, Header: hdr})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	// 200 rps for 300 ms is 60 requests; allow for a slow (race-enabled) machine.
	if rep.Requests < 45 || rep.Requests > 62 {
		t.Errorf("Requests = %d, want ≈ 60", rep.Requests)
	}
	if rep.Success != 1 || rep.StatusCodes["200"] != rep.Requests || len(rep.Errors) != 0 {
		t.Errorf("success %v, codes %v, errors %v; want all 200", rep.Success, rep.StatusCodes, rep.Errors)
	}
	if rep.Throughput < 100 || rep.Throughput > 260 {
		t.Errorf("Throughput = %.1f, want ≈ 200", rep.Throughput)
	}
	if rep.Duration < 200*time.Millisecond || rep.Duration > time.Second {
		t.Errorf("Duration = %v, want ≈ 300ms", rep.Duration)
	}
	if !(0 < rep.P50 && rep.P50 <= rep.P95 && rep.P95 <= rep.P99 && rep.P99 <= rep.Max && rep.Mean > 0) {
		t.Errorf("latencies out of order: p50 %v p95 %v p99 %v max %v mean %v", rep.P50, rep.P95, rep.P99, rep.Max, rep.Mean)
	}
	mu.Lock()
	defer mu.Unlock()
	if badHdr != 0 {
		t.Errorf("%d requests without Content-Type: application/json and the extra header", badHdr)
	}
	if len(queries) != len(bodies) {
		t.Errorf("server saw %d distinct queries, want all %d bodies used round-robin: %v", len(queries), len(bodies), queries)
	}
}

func TestRunMaxRate(t *testing.T) {
	srv := httptest.NewServer(BaselineHandler())
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Bodies: [][]byte{[]byte(sampleBody)}, Duration: 300 * time.Millisecond, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Requests == 0 || rep.Success != 1 || rep.Throughput <= 0 {
		t.Errorf("got %+v, want requests all successful", rep)
	}
}

func TestRunServerErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Bodies: [][]byte{[]byte(`{}`)}, Rate: 100, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.Success != 0 || rep.Throughput != 0 || rep.StatusCodes["500"] != rep.Requests {
		t.Errorf("got %+v, want every request counted as 500 and none successful", rep)
	}
	if len(rep.Errors) != 1 || rep.Errors[0] != "500 Internal Server Error" {
		t.Errorf("Errors = %q, want the one status line", rep.Errors)
	}
	if s := rep.String(); !strings.Contains(s, fmt.Sprintf("status 500×%d", rep.Requests)) || !strings.Contains(s, "success 0.00%") {
		t.Errorf("String() = %q", s)
	}
}

func TestRunTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets net/http notice the client hanging up, so
		// the handler (and srv.Close) need not wait out the fallback.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(500 * time.Millisecond):
		}
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL, Bodies: [][]byte{[]byte(`{}`)}, Rate: 50, Duration: 100 * time.Millisecond, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.StatusCodes["0"] != rep.Requests || len(rep.Errors) == 0 {
		t.Errorf("got %+v, want every request timed out (status 0) with an error", rep)
	}
}

func TestRunCancel(t *testing.T) {
	srv := httptest.NewServer(BaselineHandler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{URL: srv.URL, Bodies: [][]byte{[]byte(sampleBody)}, Duration: time.Minute, Workers: 2})
	// Against a one-minute run, anything near 150 ms shows the stop; the
	// slack is for a machine busy with other builds (in-flight requests are
	// allowed to finish).
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Run took %v after cancellation at 150ms", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's error", err)
	}
	if rep.Requests == 0 || rep.Success != 1 {
		t.Errorf("partial report %+v, want the requests made before cancellation, all successful", rep)
	}

	// An already-cancelled context sends nothing.
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	rep, err = Run(done, Config{URL: srv.URL, Bodies: [][]byte{[]byte(`{}`)}, Duration: time.Minute})
	if !errors.Is(err, context.Canceled) || rep.Requests != 0 {
		t.Errorf("Run(cancelled) = %+v, %v", rep, err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	good := Config{URL: "http://127.0.0.1:1/x", Bodies: [][]byte{[]byte(`{}`)}, Duration: time.Second}
	for name, mod := range map[string]func(*Config){
		"duration over 10 min": func(c *Config) { c.Duration = MaxDuration + time.Second },
		"zero duration":        func(c *Config) { c.Duration = 0 },
		"no bodies":            func(c *Config) { c.Bodies = nil },
		"relative URL":         func(c *Config) { c.URL = "/api/v1/inference" },
		"ftp URL":              func(c *Config) { c.URL = "ftp://127.0.0.1/x" },
		"bad URL":              func(c *Config) { c.URL = "http://[::1" },
		"negative rate":        func(c *Config) { c.Rate = -1 },
		"too many workers":     func(c *Config) { c.Workers = MaxWorkers + 1 },
		"negative timeout":     func(c *Config) { c.Timeout = -time.Second },
	} {
		cfg := good
		mod(&cfg)
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: Run accepted %+v", name, cfg)
		}
	}
	if _, err := good.validate(); err != nil {
		t.Errorf("good config rejected: %v", err)
	}
}

func TestNewReportCapsErrors(t *testing.T) {
	var m vegeta.Metrics
	now := time.Now()
	for i := range 15 {
		m.Add(&vegeta.Result{Timestamp: now.Add(time.Duration(i) * time.Millisecond), Latency: time.Millisecond, Error: fmt.Sprintf("err %d", i)})
	}
	m.Close()
	rep := newReport(&m)
	if len(rep.Errors) != maxErrors || rep.Errors[0] != "err 0" {
		t.Errorf("Errors = %q, want the first %d", rep.Errors, maxErrors)
	}
	if rep.Requests != 15 || rep.StatusCodes["0"] != 15 {
		t.Errorf("got %+v", rep)
	}
}

func TestReportString(t *testing.T) {
	r := Report{
		Requests: 50000, Duration: 10 * time.Second, Throughput: 4998.4, Success: 1,
		P50: 1234567, P95: 3456789, P99: 5612345, Max: 12345678,
		StatusCodes: map[string]int{"200": 49990, "0": 3, "503": 7},
	}
	want := "requests 50000 in 10.0s: 4998 req/s, success 100.00%, latency p50 1.23ms p95 3.46ms p99 5.61ms max 12.3ms; status 0×3 200×49990 503×7"
	if got := r.String(); got != want {
		t.Errorf("String() =\n%q\nwant\n%q", got, want)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"requests":`, `"duration_ns":`, `"throughput_rps":`, `"success_ratio":`, `"p50_ns":`, `"p95_ns":`, `"p99_ns":`, `"max_ns":`, `"mean_ns":`, `"status_codes":`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON %s lacks %s", b, k)
		}
	}
	if strings.Contains(string(b), `"errors"`) {
		t.Errorf("JSON %s has errors though there are none", b)
	}
}
