package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// do sends one request with an optional bearer token and extra headers.
func do(t *testing.T, method, url, token, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gunzip
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// createKey runs `medserve keys create` and returns the token it prints.
func createKey(t *testing.T, dataDir, role string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"medserve", "keys", "create", "--data-dir", dataDir, "--role", role, "--name", role + " test"}, testEnv(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out.String()) {
		if strings.HasPrefix(f, "msk_") {
			return f
		}
	}
	t.Fatalf("no token in %q", out.String())
	return ""
}

// TestAuthenticationAndRoles: the bootstrap admin key, keys made with the
// CLI, 401 without credentials, 403 for a role a route does not admit,
// and every denial in the audit trail under the caller's key id.
func TestAuthenticationAndRoles(t *testing.T) {
	dataDir := t.TempDir()
	base, logs, stop := startServerConfigured(t, serveConfig{dataDir: dataDir, cacheMB: 0, gw: gatewayConfig{rateLimits: testRateLimits, corsOrigins: "https://ehr.example.org"}}, testEnv(nil))

	path := filepath.Join(dataDir, bootstrapKeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap key file: %v %v", err, fi)
	}
	raw, _ := os.ReadFile(path)
	admin := strings.TrimSpace(string(raw))
	if !strings.Contains(logs.String(), path) || strings.Contains(logs.String(), admin) {
		t.Fatal("the log must name the bootstrap key's file and never hold the key")
	}
	clinician, auditor, service := createKey(t, dataDir, "clinician"), createKey(t, dataDir, "auditor"), createKey(t, dataDir, "service")
	query := `{"query": "chest pain", "patient": {"id": "MRN-7"}}`

	code, hdr, body := do(t, "POST", base+"/api/v1/inference", "", query)
	if code != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") || hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("no credentials: %d %v %s", code, hdr, body)
	}
	if code, _, _ := do(t, "POST", base+"/api/v1/inference", "msk_kdeadbeef0000_"+strings.Repeat("A", 43), query); code != 401 {
		t.Fatalf("made-up key: %d", code)
	}
	for _, c := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"clinician infers", "POST", "/api/v1/inference", clinician, query, 200},
		{"service infers", "POST", "/api/v1/clinical", service, query, 200},
		{"admin infers", "POST", "/api/v1/inference", admin, query, 200},
		{"auditor may not infer", "POST", "/api/v1/inference", auditor, query, 403},
		{"clinician reads history", "POST", "/api/v1/patients/history", clinician, `{"patient_id": "MRN-7"}`, 200},
		{"service may not read history", "POST", "/api/v1/patients/history", service, `{"patient_id": "MRN-7"}`, 403},
		{"clinician may not read the audit trail", "GET", "/api/v1/audit", clinician, "", 403},
		{"auditor reads the audit trail", "GET", "/api/v1/audit", auditor, "", 200},
		{"any role lists models", "GET", "/api/v1/models", auditor, "", 200},
		{"health needs no key", "GET", "/health/live", "", "", 200},
	} {
		if code, _, body := do(t, c.method, base+c.path, c.token, c.body); code != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, code, c.want, body)
		}
	}
	code, _, body = do(t, "GET", base+"/api/v1/audit?outcome=denied&limit=100", auditor, "")
	var page struct {
		Events []struct {
			Actor, Role, Action, Reason string
		}
	}
	if code != 200 || json.Unmarshal(body, &page) != nil {
		t.Fatalf("audit: %d %s", code, body)
	}
	denied := map[string]bool{}
	for _, e := range page.Events {
		denied[e.Action+" by "+e.Role+" "+e.Reason] = true
	}
	for _, want := range []string{"inference by  401 Unauthorized", "inference by auditor 403 Forbidden", "patient.history.read by service 403 Forbidden", "audit.read by clinician 403 Forbidden"} {
		if !denied[want] {
			t.Errorf("denial %q not in the audit trail: %v", want, denied)
		}
	}

	// Headers, CORS, compression.
	code, hdr, body = do(t, "POST", base+"/api/v1/clinical", clinician, query, "Origin", "https://ehr.example.org", "Accept-Encoding", "gzip")
	if code != 200 || hdr.Get("X-Frame-Options") != "DENY" || hdr.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'self'") || hdr.Get("Referrer-Policy") != "strict-origin-when-cross-origin" ||
		hdr.Get("Access-Control-Allow-Origin") != "https://ehr.example.org" || hdr.Get("Content-Encoding") != "gzip" || hdr.Get("Strict-Transport-Security") != "" {
		t.Errorf("headers of an allowed-origin gzip request: %d %v", code, hdr)
	}
	if zr, err := gzip.NewReader(bytes.NewReader(body)); err != nil {
		t.Error(err)
	} else if plain, err := io.ReadAll(zr); err != nil || !json.Valid(plain) {
		t.Errorf("gzip body does not decode to JSON: %v", err)
	}
	_, hdr, _ = do(t, "POST", base+"/api/v1/inference", clinician, query, "Origin", "https://evil.example.com")
	if hdr.Get("Access-Control-Allow-Origin") != "" || hdr.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("an origin not on the list got CORS headers: %v", hdr)
	}
	code, hdr, _ = do(t, "OPTIONS", base+"/api/v1/inference", "", "", "Origin", "https://ehr.example.org", "Access-Control-Request-Method", "POST")
	if code != 204 || hdr.Get("Access-Control-Max-Age") != "86400" {
		t.Errorf("preflight: %d %v", code, hdr)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := verifyCmd(t, testEnv(nil), "--data-dir", dataDir); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

func TestInsecureNoAuthOnlyOnLoopback(t *testing.T) {
	err := run(context.Background(), []string{"medserve", "serve", "--addr", "0.0.0.0:0", "--insecure-no-auth", "--data-dir", t.TempDir(), "--models", bundledModels}, testEnv(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--insecure-no-auth") {
		t.Fatalf("--insecure-no-auth on 0.0.0.0: %v", err)
	}
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true, ":8080": false, "0.0.0.0:8080": false, "10.0.0.1:80": false} {
		if isLoopback(addr) != want {
			t.Errorf("isLoopback(%q) = %v", addr, !want)
		}
	}
}

func TestMetricsGuard(t *testing.T) {
	base, _, _ := startServerConfigured(t, serveConfig{dataDir: t.TempDir(), cacheMB: 0,
		gw: gatewayConfig{rateLimits: testRateLimits, metricsNets: "10.0.0.0/8", metricsToken: "s3cret-metrics-token"}}, testEnv(nil))
	if code, _, _ := do(t, "GET", base+"/metrics", "", ""); code != 403 {
		t.Errorf("metrics from a network not allowed: %d", code)
	}
	if code, _, body := do(t, "GET", base+"/metrics", "s3cret-metrics-token", ""); code != 200 || !bytes.Contains(body, []byte("medserve_http_request_duration_seconds")) {
		t.Errorf("metrics with the token: %d", code)
	}
}

// allowedBurst sends n requests at once to each base and counts the 200s.
func allowedBurst(t *testing.T, bases []string, path, token, body string, n int) (ok, limited int, sample http.Header) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, b := range bases {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				method := "GET"
				if body != "" {
					method = "POST"
				}
				code, hdr, _ := do(t, method, b+path, token, body)
				mu.Lock()
				defer mu.Unlock()
				switch code {
				case 200:
					ok++
				case 429:
					limited++
					sample = hdr
				}
			}()
		}
	}
	wg.Wait()
	return ok, limited, sample
}

// TestRateLimits: the default inference zone (60/min burst 10) admits 11
// requests at once from one key; the health zone limits by address; two
// replicas sharing Redis share one budget.
func TestRateLimits(t *testing.T) {
	dataDir := t.TempDir()
	base, _, _ := startServerConfigured(t, serveConfig{dataDir: dataDir, cacheMB: 0}, testEnv(nil))
	raw, err := os.ReadFile(filepath.Join(dataDir, bootstrapKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(raw))
	began := time.Now()
	ok, limited, hdr := allowedBurst(t, []string{base}, "/api/v1/inference", admin, `{"query": "headache"}`, 30)
	// 11 at once, plus one per second the burst took (the refill rate).
	if refill := int(time.Since(began)/time.Second) + 1; ok < 11 || ok > 11+refill || limited != 30-ok {
		t.Errorf("inference zone: %d allowed, %d limited of 30 sent at once; want 11 (burst 10 + 1)", ok, limited)
	}
	if hdr.Get("Retry-After") == "" || hdr.Get("RateLimit-Limit") == "" || hdr.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429 headers: %v", hdr)
	}
	t.Logf("single replica, inference zone (60/min burst 10): %d of 30 concurrent requests allowed", ok)

	redisURL := startRedis(t)
	var bases []string
	for i := 0; i < 2; i++ {
		// 1/h burst 10: no refill during the test, so the count is exact.
		b, _, _ := startServerConfigured(t, serveConfig{dataDir: t.TempDir(), cacheMB: 0, redisURL: redisURL,
			gw: gatewayConfig{insecureNoAuth: true, rateLimits: "inference=1/h burst 10"}}, testEnv(nil))
		bases = append(bases, b)
	}
	// Without a key the caller is its address. Alternating between the
	// replicas one request at a time (so that a loaded machine does not
	// push Redis past the limiter's 50 ms budget, where each replica
	// would fall back to its own local limiter): 11 in total, not 22.
	ok = 0
	for i := 0; i < 30; i++ {
		if code, _, _ := do(t, "GET", bases[i%2]+"/api/v1/models", "", ""); code == 200 {
			ok++
		}
	}
	if ok != 11 {
		t.Errorf("two replicas sharing Redis, inference zone at 1/h burst 10: %d of 30 allowed; want 11, not 22", ok)
	}
	t.Logf("two replicas sharing Redis (burst 10): %d of 30 requests alternating between them allowed", ok)
}

// TestBadInput sends what attackers and broken clients send. Each gets a
// 4xx problem, the server stays healthy, nothing corrupt is stored, and
// hostile strings that are valid input are stored and returned inert.
func TestBadInput(t *testing.T) {
	dataDir := t.TempDir()
	base, _, stop := startServerConfigured(t, serveConfig{dataDir: dataDir, cacheMB: 0,
		gw: gatewayConfig{insecureNoAuth: true, rateLimits: testRateLimits, readHeaderTimeout: 300 * time.Millisecond}}, testEnv(nil))
	deep := strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000)
	huge := `{"query": "x", "medications": [` + strings.TrimSuffix(strings.Repeat(`"a",`, 100_000), ",") + `]}`
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed JSON", "POST", "/api/v1/inference", `{"query":`, 400},
		{"wrong type", "POST", "/api/v1/inference", `{"query": 5}`, 400},
		{"huge number", "POST", "/api/v1/inference", `{"query": "x", "vitals": {"hr": 1e400}}`, 400},
		{"NaN", "POST", "/api/v1/inference", `{"query": "x", "vitals": {"hr": NaN}}`, 400},
		{"Infinity", "POST", "/api/v1/inference", `{"query": "x", "vitals": {"sbp": Infinity}}`, 400},
		{"negative vital", "POST", "/api/v1/inference", `{"query": "x", "vitals": {"hr": -5}}`, 400},
		{"impossible vital", "POST", "/api/v1/inference", `{"query": "x", "vitals": {"spo2": 140, "temp_c": 60}}`, 400},
		{"age 200", "POST", "/api/v1/inference", `{"query": "x", "patient": {"age": 200}}`, 400},
		{"10 MB body", "POST", "/api/v1/inference", `{"query": "` + strings.Repeat("a", 10<<20) + `"}`, 413},
		{"invalid UTF-8", "POST", "/api/v1/inference", "{\"query\": \"chest \xff\xfe pain\"}", 400},
		{"100k-element array", "POST", "/api/v1/inference", huge, 400},
		{"1000-deep nesting", "POST", "/api/v1/analyze", deep, 400},
		{"duplicate key", "POST", "/api/v1/inference", `{"query": "headache", "query": "chest pain"}`, 400},
		{"unknown field", "POST", "/api/v1/inference", `{"query": "x", "admin": true}`, 400},
		{"empty body", "POST", "/api/v1/inference", ``, 400},
		{"two JSON values", "POST", "/api/v1/inference", `{"query": "a"} {"query": "b"}`, 400},
		{"traversal in model name", "GET", "/v2/models/..%2F..%2Fetc%2Fpasswd", "", 404},
		{"traversal in model version", "POST", "/v2/models/triage/versions/..%2F..%2F1/infer", `{"inputs": []}`, 404},
		// net/http cleans the path and redirects to /etc/passwd, which is not a route.
		{"traversal in path", "GET", "/api/v1/../../etc/passwd", "", 307},
		{"traversal in path, followed", "GET", "/etc/passwd", "", 404},
		{"wrong method", "GET", "/api/v1/inference", "", 404},
		{"identifier in a URL", "GET", "/api/v1/audit?patient_id=MRN-1", "", 400},
		{"SQL injection, stored inert", "POST", "/api/v1/inference", `{"query": "'; DROP TABLE queries; -- chest pain", "patient": {"id": "1' OR '1'='1"}}`, 200},
		{"script, stored inert", "POST", "/api/v1/inference", `{"query": "<script>alert(1)</script> headache", "patient": {"id": "1' OR '1'='1"}}`, 200},
	}
	for _, c := range cases {
		code, hdr, body := do(t, c.method, base+c.path, "", c.body)
		ctype := hdr.Get("Content-Type")
		if code != c.want || (code >= 400 && ctype != "application/problem+json" && !strings.HasPrefix(c.path, "/v2/")) {
			t.Errorf("%s: %d %s, want %d: %.200s", c.name, code, ctype, c.want, body)
		}
		t.Logf("| %s | %d %s |", c.name, code, ctype)
	}

	// Slow loris: headers dribbled in slower than --read-header-timeout.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	closed := false
	for _, b := range []byte("POST /api/v1/inference HTTP/1.1\r\nHost: x\r\nX-Slow: ") {
		if _, err := conn.Write([]byte{b}); err != nil {
			closed = true
			break
		}
		time.Sleep(50 * time.Millisecond)
		if time.Since(start) > 5*time.Second {
			break
		}
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil && !closed {
		t.Error("a slow-loris connection was kept open")
	}
	conn.Close()

	// Still healthy, still answering.
	if code, _, _ := do(t, "GET", base+"/health/ready", "", ""); code != 200 {
		t.Fatalf("not ready after the bad input: %d", code)
	}
	code, _, hist := do(t, "POST", base+"/api/v1/patients/history", "", `{"patient_id": "1' OR '1'='1"}`)
	if code != 200 || !strings.Contains(string(hist), `'; DROP TABLE queries; -- chest pain`) || !strings.Contains(string(hist), `<script>alert(1)</script> headache`) || !strings.Contains(string(hist), `"queries":2,`) {
		t.Fatalf("hostile strings not stored verbatim (or the table is gone): %d %.300s", code, hist)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if out, err := verifyCmd(t, testEnv(nil), "--data-dir", dataDir); err != nil {
		t.Fatalf("verify after the bad input: %v\n%s", err, out)
	}
}
