package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"medserve/internal/batcher"
	"medserve/internal/pgtest"
	"medserve/internal/redistest"
)

// syncBuffer is a log sink the server writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testPHIKey is a fixed PHI key for tests that share a database.
var testPHIKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

func testEnv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// testRateLimits keep the zones' limits out of the way of tests that send
// hundreds of requests from one address (rate limits have tests of their own).
const testRateLimits = "inference=100000/s burst 10000,clinical=100000/s burst 10000,health=100000/s burst 10000"

// startServerWith runs serve with c on a loopback port, authentication off
// and rate limits out of the way, and waits for readiness.
func startServerWith(t *testing.T, c serveConfig, getenv func(string) string) (base string, logs *syncBuffer, stop func() error) {
	t.Helper()
	c.gw.insecureNoAuth = true
	if c.gw.rateLimits == "" {
		c.gw.rateLimits = testRateLimits
	}
	return startServerConfigured(t, c, getenv)
}

// startServerConfigured runs serve with c exactly as given (the gateway on
// unless c says otherwise) and waits for readiness.
func startServerConfigured(t *testing.T, c serveConfig, getenv func(string) string) (base string, logs *syncBuffer, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	if c.models == "" {
		c.models = bundledModels
	}
	if c.deadline == 0 {
		c.deadline = time.Second
	}
	if c.shutdownGrace == 0 {
		c.shutdownGrace = 10 * time.Second
	}
	if c.batch.MaxBatchSize == 0 {
		c.batch = batcher.Config{MaxBatchSize: 8, MaxQueueDelay: 100 * time.Microsecond}
	}
	if c.viewsEvery == 0 {
		c.viewsEvery = time.Minute
	}
	if c.checkpointEvery == 0 {
		c.checkpointEvery = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs = &syncBuffer{}
	go func() {
		done <- serve(ctx, env{getenv: getenv, stdout: io.Discard, stderr: logs}, c, ln)
	}()
	base = "http://" + ln.Addr().String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("server exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return base, logs, stop
}

// TestDurabilityAcrossDatabaseOutage stops a private PostgreSQL in the
// middle of a load and starts it again: every answered request must end
// up with exactly one query record and one audit event, and the chain
// must verify.
func TestDurabilityAcrossDatabaseOutage(t *testing.T) {
	pg := pgtest.Start(t)
	dataDir := t.TempDir()
	getenv := testEnv(map[string]string{"MEDSERVE_PHI_KEY": testPHIKey})
	base, logs, stop := startServerWith(t, serveConfig{dataDir: dataDir, databaseURL: pg.URL, cacheMB: 0}, getenv)

	// Three phases of load: database up, database stopped (an immediate
	// shutdown, as a crash or failover looks to clients), and database
	// restarting while the load goes on.
	const perPhase, workers = 200, 8
	var sent atomic.Int64
	var mu sync.Mutex
	ids := map[string]bool{}
	answered := make([]int, 3)
	var failures []string
	client := &http.Client{Timeout: 30 * time.Second}
	load := func(phase int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > perPhase {
						return
					}
					body := fmt.Sprintf(`{"query": "chest pain and shortness of breath %d-%d", "patient": {"id": "DUR-%d"}}`, phase, i, i%50)
					resp, err := client.Post(base+"/api/v1/inference", "application/json", strings.NewReader(body))
					sent.Add(1)
					if err != nil {
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var r struct {
						RequestID string `json:"request_id"`
					}
					mu.Lock()
					if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil || r.RequestID == "" {
						failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, b))
					} else {
						ids[r.RequestID] = true
						answered[phase]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	load(0)
	pg.Stop()
	load(1)
	restarted := make(chan struct{})
	go func() {
		pg.StartAgain()
		close(restarted)
	}()
	load(2)
	<-restarted
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed, e.g. %s", len(failures), sent.Load(), failures[0])
	}

	// Wait for the spool to drain into the restarted database.
	ctx := context.Background()
	count := func() (events, queries int) {
		conn, err := pgx.Connect(ctx, pg.URL)
		if err != nil {
			return -1, -1
		}
		defer conn.Close(ctx)
		conn.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'inference'`).Scan(&events)
		conn.QueryRow(ctx, `SELECT count(*) FROM queries`).Scan(&queries)
		return events, queries
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ev, q := count()
		if ev >= len(ids) && q >= len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s the database has %d audit events and %d queries for %d answers\n%s", ev, q, len(ids), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if !strings.Contains(logs.String(), "store unavailable") {
		t.Error("the outage was not noticed (no 'store unavailable' in the log): the test did not test anything")
	}

	conn, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	perID := func(q string) map[string]int {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			m[id] = n
		}
		return m
	}
	events := perID(`SELECT request_id, count(*) FROM audit_events WHERE action = 'inference' GROUP BY request_id`)
	queries := perID(`SELECT request_id, count(*) FROM queries GROUP BY request_id`)
	for id := range ids {
		if events[id] != 1 || queries[id] != 1 {
			t.Fatalf("request %s: %d audit events and %d query records, want exactly 1 and 1", id, events[id], queries[id])
		}
	}
	if len(events) != len(ids) || len(queries) != len(ids) {
		t.Fatalf("%d answers, %d request ids with events, %d with queries", len(ids), len(events), len(queries))
	}

	var out bytes.Buffer
	err = run(ctx, []string{"medserve", "audit", "verify", "--data-dir", dataDir, "--database-url", pg.URL}, getenv, &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), "OK") {
		t.Fatalf("audit verify: %v\n%s", err, out.String())
	}
	t.Logf("durability: %d requests sent, %d answered 200 (%d with PostgreSQL up, %d while it was stopped, %d while it restarted), %d audit events and %d query records in PostgreSQL (one each), %s",
		sent.Load(), len(ids), answered[0], answered[1], answered[2], len(events), len(queries), strings.TrimSpace(strings.SplitN(out.String(), "\n", 2)[0]))
}

// startRedis starts a private redis-server for one test and returns its URL.
func startRedis(t *testing.T) string { return redistest.Start(t).URL() }

// TestRedisOutage: with Redis killed in the middle of a load, every
// request is still answered (from L1, the store's L3 or computed).
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t)
	// A small L1 so that lookups reach the lower levels.
	base, _, stop := startServerWith(t, serveConfig{dataDir: t.TempDir(), cacheMB: 1, redisURL: srv.URL()}, testEnv(nil))
	metrics := func() string {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	const total = 600
	var next atomic.Int64
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				if i == total/3 {
					srv.Kill() // Redis dies mid-load
				}
				// Before the outage 40 bodies repeat (answered from a cache
				// level); after it every body is new, so every lookup goes
				// past L1 to the dead Redis.
				k := i
				if i < total/3 {
					k = i % 40
				}
				body := fmt.Sprintf(`{"query": "abdominal pain and vomiting %d"}`, k)
				resp, err := http.Post(base+"/api/v1/inference", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	m := metrics()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed while Redis was down", failed.Load(), total)
	}
	if !strings.Contains(m, `medserve_cache_events_total{event="error",level="l2"}`) {
		t.Log(grepLines(m, "medserve_cache_events_total"))
		t.Errorf("the outage did not show in the metrics (no l2 error events): the test did not test anything")
	}
}

// TestNoPHILeaks plants a patient identifier and a made-up word in the
// free text, sends them through every route that takes clinical data, and
// searches every place medserve writes for either in clear: the log, the
// metrics, the data directory (SQLite file, WAL, spool, checkpoints), the
// Redis values and every PostgreSQL table.
func TestNoPHILeaks(t *testing.T) {
	const planted, word = "MRN-PLANTED-93741", "Quixotrelliswort"
	for _, backend := range []string{"sqlite", "postgresql"} {
		t.Run(backend, func(t *testing.T) {
			dataDir := t.TempDir()
			c := serveConfig{dataDir: dataDir, cacheMB: 8, redisURL: startRedis(t)}
			vars := map[string]string{}
			if backend == "postgresql" {
				c.databaseURL = pgtest.FreshDatabase(t)
				vars["MEDSERVE_PHI_KEY"] = testPHIKey
			}
			base, logs, stop := startServerWith(t, c, testEnv(vars))
			query := fmt.Sprintf(`{"query": "%s says crushing chest pain, sweaty", "patient": {"id": "%s", "age": 58, "sex": "male"}, "medications": ["warfarin", "aspirin"]}`, word, planted)
			for _, r := range []struct{ path, body string }{
				{"/api/v1/inference", query},
				{"/api/v1/inference", query}, // a cache hit too
				{"/api/v1/clinical", query},
				{"/api/v1/analyze", fmt.Sprintf(`{"text": "%s %s denies fever"}`, planted, word)},
				{"/v2/models/triage/infer", fmt.Sprintf(`{"inputs": [{"name": "query", "shape": [1], "datatype": "BYTES", "data": [%q]}]}`, query)},
				{"/api/v1/inference", fmt.Sprintf(`{"query": "%s", "patient": {"id": "%s"}, "vitals": {"spo2": 140}}`, word, planted)}, // rejected
				{"/api/v1/audit/search", fmt.Sprintf(`{"patient_id": %q}`, planted)},
			} {
				code, _, body := post(t, base+r.path, r.body)
				if r.path != "/api/v1/inference" || !strings.Contains(r.body, "140") {
					if code != http.StatusOK {
						t.Fatalf("%s: %d %s", r.path, code, body)
					}
				}
			}
			// Feedback whose free-text comment names the patient.
			_, _, ans := post(t, base+"/api/v1/inference", query)
			var answered struct {
				RequestID string `json:"request_id"`
			}
			json.Unmarshal(ans, &answered)
			if code, _, body := post(t, base+"/api/v1/feedback", fmt.Sprintf(`{"request_id": %q, "true_acuity": 2, "comment": "%s %s improved"}`, answered.RequestID, planted, word)); code != http.StatusOK {
				t.Fatalf("feedback: %d %s", code, body)
			}
			// The history holds the words in clear for the clinician, which
			// shows the data was stored (sealed), so finding nothing below
			// is not for want of data.
			code, _, hist := post(t, base+"/api/v1/patients/history", fmt.Sprintf(`{"patient_id": %q}`, planted))
			if code != http.StatusOK || !strings.Contains(string(hist), word) || !strings.Contains(string(hist), `"queries":[`) {
				t.Fatalf("history: %d %s", code, hist)
			}
			var h historyProbe
			if err := json.Unmarshal(hist, &h); err != nil || len(h.Queries) < 3 {
				t.Fatalf("history has %d queries for the planted patient: %v", len(h.Queries), err)
			}
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// Let the spool flush and the cache writes land, then stop.
			time.Sleep(300 * time.Millisecond)
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			leaks := func(where string, b []byte) {
				for _, s := range []string{planted, word} {
					if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(s))) {
						t.Errorf("%q found in clear in %s", s, where)
					}
				}
			}
			leaks("the log", []byte(logs.String()))
			leaks("/metrics", metrics)
			files := 0
			filepath.Walk(dataDir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					b, _ := os.ReadFile(p)
					leaks(p, b)
					files++
				}
				return nil
			})
			if backend == "sqlite" && files < 3 {
				t.Fatalf("only %d files in the data directory", files)
			}
			scanRedis(t, c.redisURL, leaks)
			if backend == "postgresql" {
				scanPostgres(t, c.databaseURL, leaks)
			}
		})
	}
}

type historyProbe struct {
	Queries []json.RawMessage `json:"queries"`
}

func scanRedis(t *testing.T, url string, leaks func(string, []byte)) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("nothing in Redis: the L2 cache was not used")
	}
	for _, k := range keys {
		v, _ := c.Get(ctx, k).Bytes()
		leaks("Redis key "+k, append([]byte(k+" "), v...))
	}
}

func scanPostgres(t *testing.T, url string, leaks func(string, []byte)) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"patient_summary", "clinical_outcomes"} {
		tables = append(tables, v)
	}
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{tbl}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		all, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		leaks("PostgreSQL table "+tbl, []byte(strings.Join(all, "\n")))
	}
}

// TestTwoReplicasOneChain: two servers sharing one PostgreSQL database (and
// the PHI key) append to one audit chain, and either serves the history of
// a patient seen by the other.
func TestTwoReplicasOneChain(t *testing.T) {
	db := pgtest.FreshDatabase(t)
	getenv := testEnv(map[string]string{"MEDSERVE_PHI_KEY": testPHIKey})
	dirA, dirB := t.TempDir(), t.TempDir()
	baseA, _, stopA := startServerWith(t, serveConfig{dataDir: dirA, databaseURL: db, cacheMB: 0}, getenv)
	baseB, _, stopB := startServerWith(t, serveConfig{dataDir: dirB, databaseURL: db, cacheMB: 0}, getenv)
	const perReplica = 60
	var wg sync.WaitGroup
	for r, base := range []string{baseA, baseB} {
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perReplica; i += 3 {
					body := fmt.Sprintf(`{"query": "headache %d-%d", "patient": {"id": "R-%d"}}`, r, i, i%5)
					resp, err := http.Post(base+"/api/v1/inference", "application/json", strings.NewReader(body))
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("replica %d: %d", r, resp.StatusCode)
					}
				}
			}()
		}
	}
	wg.Wait()
	// A history read waits for this replica's own spool (read-your-writes);
	// the other replica's last answers reach the store with its next flush
	// (milliseconds), so they are waited for, not assumed.
	var code, reads int
	var h historyProbe
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var hist []byte
		reads++ // each read is an audit event of its own
		code, _, hist = post(t, baseB+"/api/v1/patients/history", `{"patient_id": "R-0", "limit": 100}`)
		h = historyProbe{}
		if code == http.StatusOK && json.Unmarshal(hist, &h) == nil && len(h.Queries) == 2*perReplica/5 || time.Now().After(deadline) {
			break
		}
	}
	if code != http.StatusOK || len(h.Queries) != 2*perReplica/5 {
		t.Fatalf("replica B's history of R-0: %d, %d queries, want %d from both replicas", code, len(h.Queries), 2*perReplica/5)
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	// Each replica's checkpoints sign heads of the one chain.
	out, err := verifyCmd(t, getenv, "--data-dir", dirA, "--database-url", db, "--checkpoints", filepath.Join(dirB, checkpointsFile),
		"--public-keys", publicKeyArg(t, dirB))
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	// 2×60 inferences and the history reads.
	if !strings.Contains(out, fmt.Sprintf(" %d events", 2*perReplica+reads)) {
		t.Fatalf("want %d events in the one chain:\n%s", 2*perReplica+reads, out)
	}
}

// publicKeyArg is the --public-keys value for the signing key in dir, as
// `medserve audit public-key` prints it.
func publicKeyArg(t *testing.T, dir string) string {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"medserve", "audit", "public-key", "--data-dir", dir}, testEnv(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String())
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
