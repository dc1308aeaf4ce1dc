// Package loadtest drives an HTTP JSON endpoint with a mix of request bodies
// and reports throughput and latency percentiles (the engine behind
// `medserve bench`). It also provides BaselineHandler, a bare net/http JSON
// echo that is the throughput ceiling the real server is compared with.
//
// The package knows nothing of medserve's domain: callers build the bodies
// (Vary helps make them unique so a cache cannot hide the work).
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Limits that keep a mistyped flag from turning a benchmark into an outage.
const (
	// MaxDuration bounds one run.
	MaxDuration = 10 * time.Minute
	// MaxWorkers bounds concurrency in both modes: beyond it the load
	// generator runs out of ephemeral ports and file descriptors long before
	// it measures anything about the server.
	MaxWorkers = 10000
	// DefaultTimeout is the per-request timeout when Config.Timeout is zero.
	DefaultTimeout = 5 * time.Second
	// maxErrors is how many distinct error messages a Report keeps.
	maxErrors = 10
)

// Config describes one load run.
type Config struct {
	URL      string        // target, e.g. "http://127.0.0.1:8080/api/v1/inference"; every request is a POST
	Bodies   [][]byte      // request bodies, used round-robin (vary them so a cache cannot hide the work)
	Rate     int           // requests per second; 0 = as fast as Workers allow (closed loop)
	Duration time.Duration // how long to send requests; 0 < Duration <= MaxDuration
	Workers  int           // concurrency; max-rate mode default 2×GOMAXPROCS, rate mode default MaxWorkers (a cap, grown on demand)
	Timeout  time.Duration // per request; default DefaultTimeout
	Header   http.Header   // extra headers; Content-Type: application/json is always set
}

// Report is the result of one run.
type Report struct {
	Requests    int            `json:"requests"`
	Duration    time.Duration  `json:"duration_ns"`    // first request sent to last response received
	Throughput  float64        `json:"throughput_rps"` // successful requests per second of Duration
	Success     float64        `json:"success_ratio"`  // share of responses with status 2xx/3xx
	P50         time.Duration  `json:"p50_ns"`
	P95         time.Duration  `json:"p95_ns"`
	P99         time.Duration  `json:"p99_ns"`
	Max         time.Duration  `json:"max_ns"`
	Mean        time.Duration  `json:"mean_ns"`
	StatusCodes map[string]int `json:"status_codes"`     // "0" counts requests that got no response (timeout, refused)
	Errors      []string       `json:"errors,omitempty"` // distinct error messages, at most 10
}

// validate checks cfg and fills in defaults, returning the normalised copy.
func (cfg Config) validate() (Config, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return cfg, fmt.Errorf("loadtest: URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("loadtest: URL %q: want an absolute http or https URL", cfg.URL)
	}
	if len(cfg.Bodies) == 0 {
		return cfg, errors.New("loadtest: no request bodies")
	}
	if cfg.Duration <= 0 || cfg.Duration > MaxDuration {
		return cfg, fmt.Errorf("loadtest: duration %v: want more than 0 and at most %v", cfg.Duration, MaxDuration)
	}
	if cfg.Rate < 0 {
		return cfg, fmt.Errorf("loadtest: rate %d: want 0 (max) or a positive number of requests per second", cfg.Rate)
	}
	if cfg.Workers < 0 || cfg.Workers > MaxWorkers {
		return cfg, fmt.Errorf("loadtest: workers %d: want 0 (default) to %d", cfg.Workers, MaxWorkers)
	}
	if cfg.Timeout < 0 {
		return cfg, fmt.Errorf("loadtest: timeout %v: want 0 (default) or positive", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Workers == 0 {
		if cfg.Rate == 0 {
			// Enough requests in flight to keep every core of a server on the
			// same machine busy, without so many that the generator's own
			// scheduling dominates the latencies.
			cfg.Workers = 2 * runtime.GOMAXPROCS(0)
		} else {
			cfg.Workers = MaxWorkers
		}
	}
	return cfg, nil
}

// Run sends POST requests to cfg.URL for cfg.Duration and summarises them.
// With Rate > 0 it is an open-loop test at that constant rate (vegeta adds
// workers up to Workers when responses are slow); with Rate 0 exactly
// Workers workers send back to back, which measures peak throughput.
//
// When ctx is cancelled no new requests are sent, the ones in flight finish
// (bounded by Timeout, so their latencies are not polluted by cancellation),
// and Run returns the Report of the partial run together with ctx.Err().
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return Report{}, err
	}
	if err := ctx.Err(); err != nil {
		return Report{StatusCodes: map[string]int{}}, err
	}

	header := cfg.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	targets := make([]vegeta.Target, len(cfg.Bodies))
	for i, b := range cfg.Bodies {
		// Target.Request copies the header, so sharing one map is safe.
		targets[i] = vegeta.Target{Method: http.MethodPost, URL: cfg.URL, Body: b, Header: header}
	}

	workers := uint64(cfg.Workers)
	opts := []func(*vegeta.Attacker){
		vegeta.Timeout(cfg.Timeout),
		vegeta.MaxWorkers(workers),
		// The generator usually shares the machine with the server: reading
		// response bodies into memory would only steal CPU from it. Bodies
		// are still drained in full, so the server does all of its work.
		vegeta.MaxBody(0),
		// A proxy from the environment would be measured along with the
		// server; a benchmark talks to the server directly.
		vegeta.Proxy(nil),
	}
	pacer := vegeta.ConstantPacer{Freq: cfg.Rate, Per: time.Second}
	if cfg.Rate == 0 {
		// A zero pacer means "no pacing": every worker sends as soon as its
		// previous response is in. Start them all at once rather than
		// letting vegeta discover that it needs them.
		pacer = vegeta.ConstantPacer{}
		opts = append(opts, vegeta.Workers(workers))
	}
	attacker := vegeta.NewAttacker(opts...)

	stop := context.AfterFunc(ctx, func() { attacker.Stop() })
	defer stop()

	var m vegeta.Metrics
	for res := range attacker.Attack(vegeta.NewStaticTargeter(targets...), pacer, cfg.Duration, "medserve-bench") {
		m.Add(res)
	}
	m.Close()
	return newReport(&m), ctx.Err()
}

// newReport converts closed vegeta metrics into a Report.
func newReport(m *vegeta.Metrics) Report {
	r := Report{
		Requests:    int(m.Requests),
		Duration:    m.Duration + m.Wait,
		Success:     m.Success,
		P50:         m.Latencies.P50,
		P95:         m.Latencies.P95,
		P99:         m.Latencies.P99,
		Max:         m.Latencies.Max,
		Mean:        m.Latencies.Mean,
		StatusCodes: m.StatusCodes,
	}
	if r.StatusCodes == nil {
		r.StatusCodes = map[string]int{}
	}
	// vegeta divides by the attack span only when it is non-zero; computing
	// it here keeps Throughput consistent with the Duration we report.
	if secs := r.Duration.Seconds(); secs > 0 {
		r.Throughput = m.Success * float64(m.Requests) / secs
	}
	if len(m.Errors) > 0 {
		r.Errors = append([]string(nil), m.Errors[:min(len(m.Errors), maxErrors)]...)
	}
	return r
}

// String is a one-line human summary of the report.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d in %.1fs: %.0f req/s, success %.2f%%, latency p50 %s p95 %s p99 %s max %s",
		r.Requests, r.Duration.Seconds(), r.Throughput, 100*r.Success,
		short(r.P50), short(r.P95), short(r.P99), short(r.Max))
	codes := make([]string, 0, len(r.StatusCodes))
	for c := range r.StatusCodes {
		codes = append(codes, c)
	}
	// Numeric order, so "0" (no response) comes first and 200 before 500.
	sort.Slice(codes, func(i, j int) bool {
		a, _ := strconv.Atoi(codes[i])
		c, _ := strconv.Atoi(codes[j])
		return a < c
	})
	if len(codes) > 0 {
		b.WriteString("; status")
		for _, c := range codes {
			fmt.Fprintf(&b, " %s×%d", c, r.StatusCodes[c])
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "; %d distinct errors, first: %s", len(r.Errors), r.Errors[0])
	}
	return b.String()
}

// short rounds d to three significant digits so a summary reads "1.23ms"
// rather than "1.234567ms".
func short(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for v := d; v >= 1000; v /= 10 {
		unit *= 10
	}
	return d.Round(unit)
}
