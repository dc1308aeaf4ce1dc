package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"medserve/internal/pgtest"
	"medserve/internal/redistest"
)

// The nginx config that ships, relative to this package.
const ngxShipped = "../../deploy/nginx/medserve.conf"

// TestNginx runs the shipped nginx config in front of two medserve
// replicas (child processes of a freshly built binary) sharing one
// PostgreSQL database and one Redis, and shows through nginx that requests
// are spread over both replicas, that the per-key rate limit and the cache
// are shared, and that killing a replica under load loses no request.
//
// The config is run as shipped except for the lines ngxRender substitutes:
// the upstream server lines, the listen line, and the pid, log and temp
// paths. nginx's per-address rate limits keep their shipped rates: the test
// sends its load from many loopback source addresses (127.10.x.y), one per
// request, so that each address stays within its budget.
func TestNginx(t *testing.T) {
	nginx := ngxLookPath(t)
	ngxCheckLoopbackRange(t)
	raw, err := os.ReadFile(ngxShipped)
	if err != nil {
		t.Fatal(err)
	}
	shipped := string(raw)

	dir := ngxPrivateDir(t)
	bin := filepath.Join(dir, "medserve")
	built := make(chan error, 1)
	go func() { built <- ngxBuild(bin) }()

	t.Run("shipped file verbatim", func(t *testing.T) { ngxCheckVerbatim(t, nginx, dir) })

	db := pgtest.FreshDatabase(t)
	rds := redistest.Start(t)
	buildStart := time.Now()
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	t.Logf("medserve built (waited %v for the build after starting PostgreSQL and Redis)", time.Since(buildStart).Round(time.Millisecond))
	models, err := filepath.Abs(bundledModels)
	if err != nil {
		t.Fatal(err)
	}
	phiKey := ngxPHIKey()
	env := []string{"MEDSERVE_PHI_KEY=" + phiKey}
	// Every connection the test opens comes from its own loopback address,
	// so that no per-address rate limit (nginx's or medserve's) is shared
	// between the test's probes and its load.
	src := &ngxSources{}

	// Two replicas, started together on the fresh database, as two pods
	// would be (migrations run under an advisory lock).
	var reps [2]*ngxReplica
	repStart := time.Now()
	for i := range reps {
		reps[i] = ngxStartReplica(t, bin, env, "--database-url", db, "--redis-url", rds.URL(),
			"--data-dir", t.TempDir(), "--models", models, "--trusted-proxies", "127.0.0.1/32")
	}
	for _, r := range reps {
		r.waitReady(t, src)
	}
	a, b := reps[0], reps[1]
	t.Logf("two replicas ready in %v", time.Since(repStart).Round(time.Millisecond))

	// A key whose limits stay out of the way of the load, and one whose
	// inference budget is 6 requests and then 1 an hour.
	loadKey := ngxCreateKey(t, bin, env, db, "nginx test load", "inference=100000/s burst 10000,clinical=100000/s burst 10000")
	limitedKey := ngxCreateKey(t, bin, env, db, "nginx test limited", "inference=1/h burst 5")

	// nginx, on the shipped config.
	port := redistest.FreePort(t)
	conf, subs, err := ngxRender(shipped, []string{a.addr, b.addr}, "127.0.0.1:"+strconv.Itoa(port), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ngxOnlySubstituted(shipped, conf); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		t.Logf("substituted: %s", s)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("nginx -t on the rendered config", func(t *testing.T) {
		if out, err := exec.Command(nginx, "-t", "-p", dir+"/", "-c", confPath).CombinedOutput(); err != nil {
			t.Fatalf("nginx -t: %v\n%s", err, out)
		}
	})
	base := ngxStart(t, nginx, dir, confPath, port)
	logs := &ngxAccessLog{path: filepath.Join(dir, "logs", "access.log")}
	t.Cleanup(func() {
		if t.Failed() {
			errLog, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			t.Logf("nginx error log:\n%s", ngxTail(string(errLog), 40))
			t.Logf("replica A log:\n%s\nreplica B log:\n%s", ngxTail(a.logs.String(), 30), ngxTail(b.logs.String(), 30))
		}
	})
	names := map[string]string{a.addr: "A", b.addr: "B"}

	t.Run("edge: headers, CORS, limits, metrics, logs", func(t *testing.T) {
		ngxCheckEdge(t, base, loadKey, src, logs)
	})

	t.Run("a: requests spread over both replicas", func(t *testing.T) {
		beforeA, beforeB := a.inferenceCount(t, src), b.inferenceCount(t, src)
		const n = 40
		res := ngxLoad(base, loadKey, src, "spread", n, 4, nil)
		if res.codes[200] != n {
			t.Fatalf("%d requests: %v, transport errors %d", n, res.codes, res.transport)
		}
		dA, dB := a.inferenceCount(t, src)-beforeA, b.inferenceCount(t, src)-beforeB
		byUp := logs.byUpstream(t, res.ids, names)
		t.Logf("%d inference requests through nginx: replica A counted %d, replica B %d (medserve_http_request_duration_seconds_count); nginx's log: %v",
			n, dA, dB, byUp)
		if dA+dB != n || dA == 0 || dB == 0 {
			t.Errorf("replica counts %d + %d for %d requests: want both replicas used, nothing counted twice", dA, dB, n)
		}
		if byUp["A"] != dA || byUp["B"] != dB {
			t.Errorf("nginx's log %v disagrees with the replicas' metrics A=%d B=%d", byUp, dA, dB)
		}
	})

	t.Run("b: one rate-limit budget across replicas", func(t *testing.T) {
		const n = 32
		var mu sync.Mutex
		var bad []string
		res := ngxLoad(base, limitedKey, src, "limit", n, 2, func(code int, h http.Header, body []byte) {
			if code != http.StatusTooManyRequests {
				return
			}
			// medserve's 429 (not nginx's): exact Retry-After and RateLimit headers.
			if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || h.Get("RateLimit-Remaining") != "0" || !bytes.Contains(body, []byte("inference zone")) {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("Retry-After %q RateLimit-Remaining %q %s", h.Get("Retry-After"), h.Get("RateLimit-Remaining"), body))
				mu.Unlock()
			}
		})
		per := logs.statusByUpstream(t, res.ids, names)
		t.Logf("limited key (inference=1/h burst 5), %d requests through nginx, 2 at a time: %d allowed, %d refused 429 (%v); by replica: %v",
			n, res.codes[200], res.codes[429], res.codes, per)
		if res.codes[200] != 6 || res.codes[429] != n-6 {
			t.Errorf("want exactly 6 allowed (burst 5 + 1) in total across both replicas, the rest 429: %v", res.codes)
		}
		for _, r := range []string{"A", "B"} {
			if per[r][200]+per[r][429] < 6 {
				t.Errorf("replica %s answered %v: each replica must see at least 6 requests, or a per-replica budget would pass too", r, per[r])
			}
		}
		if len(bad) > 0 {
			t.Errorf("429s without medserve's headers: %v", bad)
		}
	})

	t.Run("c: one cache across replicas", func(t *testing.T) {
		rc := redis.NewClient(&redis.Options{Addr: rds.Addr()})
		defer rc.Close()
		query := `{"query": "sudden severe headache with neck stiffness and photophobia", "patient": {"id": "NGX-1", "age": 41, "sex": "female"}, "vitals": {"hr": 97, "temp_c": 38.9, "spo2": 97}}`
		keysBefore := ngxCacheKeys(t, rc)
		code, first := ngxPost(t, a.base+"/api/v1/inference", loadKey, query)
		if code != 200 || !bytes.Contains(first, []byte(`"cache":{"hit":false,"level":""}`)) {
			t.Fatalf("first query on replica A: %d, want a miss: %s", code, ngxCacheField(first))
		}
		// The L2 write is asynchronous: wait for it before asking B.
		for deadline := time.Now().Add(5 * time.Second); ngxCacheKeys(t, rc) <= keysBefore; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("replica A's answer never reached Redis")
			}
		}
		code, second := ngxPost(t, b.base+"/api/v1/inference", loadKey, strings.Replace(query, "NGX-1", "NGX-2", 1))
		if code != 200 || !bytes.Contains(second, []byte(`"cache":{"hit":true,"level":"l2"}`)) {
			t.Errorf("same query on replica B: %d, %s; want a hit in L2", code, ngxCacheField(second))
		}
		t.Logf("direct: replica A %s, then replica B %s", ngxCacheField(first), ngxCacheField(second))

		// Through nginx: the first answer comes from one replica; the
		// first answer from the other must come from Redis.
		query2 := `{"query": "left flank pain radiating to groin with blood in urine", "patient": {"age": 36, "sex": "male"}, "vitals": {"hr": 104, "sbp": 142}}`
		var first2 string
		for i := 0; i < 6; i++ {
			id := fmt.Sprintf("ngx-cache-%d", i)
			code, _, body, err := ngxDo(ngxClient(src), "POST", base+"/api/v1/inference", loadKey, query2, "X-Request-Id", id)
			if err != nil || code != 200 {
				t.Fatalf("through nginx: %d %v %s", code, err, body)
			}
			rep := names[logs.entry(t, id).firstUpstream()]
			t.Logf("through nginx #%d: replica %s, %s", i+1, rep, ngxCacheField(body))
			switch {
			case first2 == "":
				first2 = rep
				if !bytes.Contains(body, []byte(`"hit":false`)) {
					t.Fatalf("first time through nginx must be a miss: %s", ngxCacheField(body))
				}
				// Let the L2 write land before the other replica is asked.
				for deadline := time.Now().Add(5 * time.Second); ngxCacheKeys(t, rc) <= keysBefore+1; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("the answer never reached Redis")
					}
				}
			case rep != first2:
				if !bytes.Contains(body, []byte(`"cache":{"hit":true,"level":"l2"}`)) {
					t.Errorf("first answer from the other replica: %s; want an L2 hit", ngxCacheField(body))
				}
				return
			}
		}
		t.Errorf("six requests through nginx all went to replica %s", first2)
	})

	t.Run("d: a replica killed under load", func(t *testing.T) {
		killAfter, runFor := 1500*time.Millisecond, 4*time.Second
		errLog := filepath.Join(dir, "logs", "error.log")
		errBefore, _ := os.ReadFile(errLog)
		var killedAt atomic.Int64
		go func() {
			time.Sleep(killAfter)
			killedAt.Store(time.Now().UnixNano())
			a.kill()
		}()
		res := ngxLoadFor(base, loadKey, src, "kill", runFor, 8)
		total := 0
		for _, n := range res.codes {
			total += n
		}
		total += res.transport
		var retried, retriedToB, beforeKill, beforeKillA, afterKill, afterKillB int
		entries := logs.entries(t, res.ids)
		cut := time.Unix(0, killedAt.Load())
		for id, e := range entries {
			if strings.Contains(e.Upstream, ",") {
				retried++
				if e.lastUpstream() == b.addr && e.Status == 200 {
					retriedToB++
				}
			}
			if res.started[id].Before(cut) {
				beforeKill++
				if e.firstUpstream() == a.addr && !strings.Contains(e.Upstream, ",") {
					beforeKillA++
				}
			} else {
				afterKill++
				if e.Upstream == b.addr {
					afterKillB++
				}
			}
		}
		// How nginx saw each failed attempt on A: refused at connect (any
		// request may then go elsewhere), or after the request had gone out
		// (a POST then goes elsewhere only with non_idempotent).
		after, _ := os.ReadFile(errLog)
		phaseLog := string(after[min(len(errBefore), len(after)):])
		var refused, inFlight, disabled int
		for _, line := range strings.Split(phaseLog, "\n") {
			switch {
			case strings.Contains(line, "upstream server temporarily disabled"):
				disabled++
			case !strings.Contains(line, "[error]"):
			case strings.Contains(line, "while connecting to upstream"):
				refused++
			case strings.Contains(line, "while sending request to upstream"), strings.Contains(line, "while reading response header from upstream"):
				inFlight++
			}
		}
		t.Logf("replica A SIGKILLed %v into a %v load of 8 concurrent clients through nginx: %d requests, %v by status, %d transport errors",
			killAfter, runFor, total, res.codes, res.transport)
		t.Logf("before the kill %d requests (%d answered by A alone); after it %d (%d answered by B at the first attempt); "+
			"%d retried on the other replica (%d answered 200 by B): nginx's error log shows %d attempts refused at connect, %d POSTs cut off after they were sent to A, "+
			"and %d \"upstream server temporarily disabled\" (max_fails)",
			beforeKill, beforeKillA, afterKill, afterKillB, retried, retriedToB, refused, inFlight, disabled)
		if res.codes[200] != total || total < 50 {
			t.Errorf("every request must be answered 200 across the kill: %d requests, %v, %d transport errors (first errors: %v)",
				total, res.codes, res.transport, res.errs)
		}
		if beforeKillA == 0 || afterKillB == 0 {
			t.Errorf("the load did not use replica A before the kill (%d) or B after it (%d)", beforeKillA, afterKillB)
		}
		if inFlight == 0 {
			t.Log("no request was in flight on A at the kill this time: the non_idempotent retry was not exercised")
		}
	})
}

// ngxLookPath finds nginx: skipped without it, a failure under CI=true.
func ngxLookPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not installed (CI=true requires it: apt-get install nginx)")
	}
	t.Skip("nginx not installed")
	return ""
}

// ngxCheckLoopbackRange makes sure the host routes all of 127.0.0.0/8 to
// loopback (Linux does; macOS has only 127.0.0.1): the test's clients
// send from 127.10.x.y.
func ngxCheckLoopbackRange(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.10.0.1:0")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("127.10.0.1 is not a local address (CI=true requires it): %v", err)
		}
		t.Skipf("127.10.0.1 is not a local address here: %v", err)
	}
	ln.Close()
}

// ngxPrivateDir is the test's nginx prefix. nginx running as root hands its
// workers to an unprivileged user, who must reach the temp directories:
// the directory is world-traversable (not t.TempDir's 0700 parents).
func ngxPrivateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "medserve-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Join(dir, "logs"), filepath.Join(dir, "temp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ngxBuild builds the medserve binary the replicas run: the binary that
// ships, without the race detector (the packages are in the build cache
// once go vet ./... has run; the replicas also start several times faster).
func ngxBuild(out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", out}
	cmd := exec.Command(goTool, append(args, ".")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, b)
	}
	return nil
}

// ngxPHIKey is a fresh PHI key (32 random bytes, base64) the replicas share.
func ngxPHIKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// ngxRender returns the shipped config with only these lines changed: the
// upstream's `server medserve-N.medserve:8080 PARAMS;` lines become one
// `server ADDR PARAMS;` line per replica (same PARAMS); `listen 8080;`
// becomes `listen LISTEN;`; and in the pid, error_log, access_log and
// *_temp_path lines the directories /var/run/, /var/log/nginx/ and
// /var/cache/nginx/ become DIR/, DIR/logs/ and DIR/temp/. subs describes
// each change. An expected line that is missing is an error, so a change
// to the shipped file cannot slip past the test.
func ngxRender(shipped string, upstreams []string, listen, dir string) (conf string, subs []string, err error) {
	serverRe := regexp.MustCompile(`^(\s*)server\s+medserve-\d+\.medserve:8080(\s+[^;]*)?;\s*$`)
	paths := strings.NewReplacer("/var/run/", dir+"/", "/var/log/nginx/", dir+"/logs/", "/var/cache/nginx/", dir+"/temp/")
	pathDirectives := map[string]bool{"pid": true, "error_log": true, "access_log": true, "client_body_temp_path": true,
		"proxy_temp_path": true, "fastcgi_temp_path": true, "uwsgi_temp_path": true, "scgi_temp_path": true}
	var out []string
	servers, listens := 0, 0
	seenPath := map[string]bool{}
	for _, line := range strings.Split(shipped, "\n") {
		trimmed := strings.TrimSpace(line)
		fields := strings.Fields(trimmed)
		switch {
		case serverRe.MatchString(line):
			m := serverRe.FindStringSubmatch(line)
			if servers == 0 {
				for _, u := range upstreams {
					out = append(out, m[1]+"server "+u+m[2]+";")
				}
				subs = append(subs, fmt.Sprintf("upstream servers %q → %v (parameters %q kept)", trimmed, upstreams, strings.TrimSpace(m[2])))
			} else {
				subs = append(subs, fmt.Sprintf("upstream server %q dropped", trimmed))
			}
			servers++
		case trimmed == "listen 8080;":
			out = append(out, strings.Replace(line, "8080", listen, 1))
			subs = append(subs, fmt.Sprintf("%q → listen %s;", trimmed, listen))
			listens++
		case len(fields) > 1 && pathDirectives[fields[0]] && fields[1] != "off;":
			nl := paths.Replace(line)
			if nl == line {
				return "", nil, fmt.Errorf("%s: path %q outside the substituted directories", fields[0], fields[1])
			}
			out = append(out, nl)
			subs = append(subs, fmt.Sprintf("%q → %q", trimmed, strings.TrimSpace(nl)))
			seenPath[fields[0]] = true
		default:
			out = append(out, line)
		}
	}
	if servers == 0 || listens != 1 || len(seenPath) != len(pathDirectives) {
		return "", nil, fmt.Errorf("shipped config: %d upstream server lines, %d `listen 8080;` lines, path directives %v: the test's substitutions no longer fit it", servers, listens, seenPath)
	}
	return strings.Join(out, "\n"), subs, nil
}

// ngxOnlySubstituted checks what is tested is what ships: every line of the
// rendered config that differs from the shipped file is a substituted
// directive (upstream server, listen, pid, log or temp path).
func ngxOnlySubstituted(shipped, rendered string) error {
	allowed := regexp.MustCompile(`^\s*(server\s+\S+:\d+(\s[^;]*)?|listen\s+\S+|pid\s+\S+|error_log\s+\S+(\s+\w+)?|access_log\s+\S+\s+\w+|(client_body|proxy|fastcgi|uwsgi|scgi)_temp_path\s+\S+);\s*$`)
	sl, rl := strings.Split(shipped, "\n"), strings.Split(rendered, "\n")
	var s, r []string
	for _, l := range sl {
		if !allowed.MatchString(l) {
			s = append(s, l)
		}
	}
	for _, l := range rl {
		if !allowed.MatchString(l) {
			r = append(r, l)
		}
	}
	if len(s) != len(r) {
		return fmt.Errorf("rendered config has %d unsubstituted lines, the shipped one %d", len(r), len(s))
	}
	for i := range s {
		if s[i] != r[i] {
			return fmt.Errorf("rendered config differs from the shipped one outside the substitutions: %q vs %q", r[i], s[i])
		}
	}
	return nil
}

// ngxCheckVerbatim runs `nginx -t` on the shipped file itself, unchanged,
// inside a private mount namespace where /etc/hosts resolves the upstream
// names to loopback and a tmpfs over /var holds the pid, log and temp
// paths. Nothing outside the namespace changes. Where namespaces are not
// allowed (an unprivileged CI container) the check is logged as not run;
// the rendered config is checked either way.
func ngxCheckVerbatim(t *testing.T, nginx, dir string) {
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		t.Logf("not run: needs root and unshare (%v)", err)
		return
	}
	abs, err := filepath.Abs(ngxShipped)
	if err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost medserve-0.medserve medserve-1.medserve medserve-2.medserve\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `mount --bind "$1" /etc/hosts && mount -t tmpfs tmpfs /var && mkdir -p /var/run /var/log/nginx /var/cache/nginx || exit 97
exec "$2" -t -c "$3"`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", hosts, nginx, abs).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		t.Logf("nginx -t on %s, unchanged: %s", ngxShipped, strings.TrimSpace(string(out)))
	case errors.As(err, &ee) && ee.ExitCode() != 97 && bytes.Contains(out, []byte("nginx")):
		t.Fatalf("nginx -t on the shipped file: %v\n%s", err, out)
	default:
		t.Logf("not run: no private mount namespace here (%v): %s", err, strings.TrimSpace(string(out)))
	}
}

// ngxReplica is one medserve serve process.
type ngxReplica struct {
	cmd    *exec.Cmd
	addr   string // host:port
	base   string
	logs   *ngxBuffer
	exited chan struct{}
	once   sync.Once
}

// ngxStartReplica starts `medserve serve` in its own process group on a free
// loopback port.
func ngxStartReplica(t *testing.T, bin string, env []string, args ...string) *ngxReplica {
	t.Helper()
	r := &ngxReplica{addr: "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)), logs: &ngxBuffer{}, exited: make(chan struct{})}
	r.base = "http://" + r.addr
	r.cmd = exec.Command(bin, append([]string{"serve", "--addr", r.addr}, args...)...)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(r.kill)
	return r
}

// waitReady waits for the replica's /health/ready.
func (r *ngxReplica) waitReady(t *testing.T, src *ngxSources) {
	t.Helper()
	probe := ngxClient(src)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, _, _, err := ngxDo(probe, "GET", r.base+"/health/ready", "", "")
		if err == nil && code == http.StatusOK {
			return
		}
		select {
		case <-r.exited:
			t.Fatalf("replica exited: %s", r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not ready: %v\n%s", err, r.logs.String())
		}
	}
}

// kill sends SIGKILL to the replica's process group and waits for it.
func (r *ngxReplica) kill() {
	r.once.Do(func() {
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
	})
}

// inferenceCount is the replica's count of /api/v1/inference requests, any
// status, from its own /metrics.
func (r *ngxReplica) inferenceCount(t *testing.T, src *ngxSources) int {
	t.Helper()
	code, _, body, err := ngxDo(ngxClient(src), "GET", r.base+"/metrics", "", "")
	if err != nil || code != 200 {
		t.Fatalf("metrics of %s: %d %v", r.addr, code, err)
	}
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "medserve_http_request_duration_seconds_count{") && strings.Contains(line, `route="/api/v1/inference"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			n += int(v)
		}
	}
	return n
}

// ngxCreateKey runs `medserve keys create` and returns the token it prints.
func ngxCreateKey(t *testing.T, bin string, env []string, db, name, limits string) string {
	t.Helper()
	cmd := exec.Command(bin, "keys", "create", "--database-url", db, "--role", "clinician", "--name", name, "--limits", limits)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("keys create: %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if tok, ok := strings.CutPrefix(line, "token:"); ok {
			return strings.TrimSpace(tok)
		}
	}
	t.Fatalf("no token in %q", stdout.String())
	return ""
}

// ngxStart runs nginx in the foreground (-g 'daemon off;', the only
// directive given outside the file) in its own process group, and waits
// until it answers.
func ngxStart(t *testing.T, nginx, dir, conf string, port int) string {
	t.Helper()
	logs := &ngxBuffer{}
	cmd := exec.Command(nginx, "-p", dir+"/", "-c", conf, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Fast shutdown of master and workers; the whole group if it hangs.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return base
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening: %s", logs.String())
		}
	}
}

// ngxSources hands out loopback source addresses, a new one per
// connection: 127.10.0.1, 127.10.0.2, … Each address is its own client for
// nginx's per-address rate limits.
type ngxSources struct{ n atomic.Uint32 }

func (s *ngxSources) next() net.IP {
	i := s.n.Add(1) - 1
	return net.IPv4(127, byte(10+i/(254*254)), byte(1+(i/254)%254), byte(1+i%254))
}

// ngxClient is an HTTP client whose every request comes from a new source
// address (no keep-alive), with no transparent gzip.
func ngxClient(src *ngxSources) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DisableKeepAlives:  true,
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.next()}}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// ngxFixedClient sends every request from one source address.
func ngxFixedClient(ip net.IP) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// ngxDo sends one request with an optional bearer token and header pairs.
func ngxDo(c *http.Client, method, url, token, body string, hdr ...string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// ngxPost posts body to url from 127.0.0.1 and fails the test on a
// transport error.
func ngxPost(t *testing.T, url, token, body string) (int, []byte) {
	t.Helper()
	code, _, b, err := ngxDo(http.DefaultClient, "POST", url, token, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, b
}

// ngxLoadResult is what a load sent and got.
type ngxLoadResult struct {
	codes     map[int]int
	transport int
	errs      []string
	ids       []string             // X-Request-Id of every request sent
	started   map[string]time.Time // by X-Request-Id
}

// ngxLoad sends n inference requests through nginx, conc at a time, each
// from its own source address and with its own X-Request-Id (phase-i).
func ngxLoad(base, token string, src *ngxSources, phase string, n, conc int, check func(int, http.Header, []byte)) *ngxLoadResult {
	var next atomic.Int64
	return ngxRunLoad(base, token, src, phase, conc, func() (int, bool) {
		i := int(next.Add(1) - 1)
		return i, i < n
	}, check)
}

// ngxLoadFor sends inference requests through nginx for d, conc at a time.
func ngxLoadFor(base, token string, src *ngxSources, phase string, d time.Duration, conc int) *ngxLoadResult {
	var next atomic.Int64
	end := time.Now().Add(d)
	return ngxRunLoad(base, token, src, phase, conc, func() (int, bool) {
		return int(next.Add(1) - 1), time.Now().Before(end)
	}, nil)
}

func ngxRunLoad(base, token string, src *ngxSources, phase string, conc int, more func() (int, bool), check func(int, http.Header, []byte)) *ngxLoadResult {
	res := &ngxLoadResult{codes: map[int]int{}, started: map[string]time.Time{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	client := ngxClient(src)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := more()
				if !ok {
					return
				}
				id := fmt.Sprintf("ngx-%s-%d", phase, i)
				// Varied content, so that answers are computed, not cached.
				body := fmt.Sprintf(`{"query": "fall with wrist pain and swelling, day %d", "patient": {"id": "NGX-%d", "age": %d}, "vitals": {"hr": %d}}`,
					i%7, i%13, 20+i%60, 60+i%50)
				mu.Lock()
				res.ids = append(res.ids, id)
				res.started[id] = time.Now()
				mu.Unlock()
				code, hdr, b, err := ngxDo(client, "POST", base+"/api/v1/inference", token, body, "X-Request-Id", id)
				mu.Lock()
				if err != nil {
					res.transport++
					if len(res.errs) < 5 {
						res.errs = append(res.errs, err.Error())
					}
				} else {
					res.codes[code]++
					if code != 200 && code != 429 && len(res.errs) < 5 {
						res.errs = append(res.errs, fmt.Sprintf("%d %s", code, b))
					}
				}
				mu.Unlock()
				if err == nil && check != nil {
					check(code, hdr, b)
				}
			}
		}()
	}
	wg.Wait()
	return res
}

// ngxCheckEdge checks what nginx itself does: security headers once each,
// CORS from the allowlist, preflights, gzip, the request id, body size,
// the /metrics network rule, health passthrough, the access log's format,
// and nginx's own per-address rate limit at its shipped rate.
func ngxCheckEdge(t *testing.T, base, token string, src *ngxSources, logs *ngxAccessLog) {
	c := ngxClient(src)
	query := `{"query": "productive cough and fever for three days"}`
	code, h, body, err := ngxDo(c, "POST", base+"/api/v1/inference", token, query,
		"Origin", "https://ehr.example.org", "Accept-Encoding", "gzip", "X-Request-Id", "ngx-edge-1", "X-Forwarded-For", "203.0.113.9")
	if err != nil || code != 200 {
		t.Fatalf("inference through nginx: %d %v %s", code, err, body)
	}
	for k, want := range map[string]string{
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "strict-origin-when-cross-origin",
		"Content-Security-Policy":     "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
		"Access-Control-Allow-Origin": "https://ehr.example.org", "Access-Control-Allow-Credentials": "true",
		"X-Request-Id": "ngx-edge-1", "Content-Encoding": "gzip", "Cache-Control": "no-store",
	} {
		if v := h.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("%s: %q, want exactly one %q", k, v, want)
		}
	}
	if h.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain HTTP")
	}
	if vary := strings.Join(h.Values("Vary"), ","); !strings.Contains(vary, "Origin") || !strings.Contains(vary, "Accept-Encoding") {
		t.Errorf("Vary: %q", vary)
	}
	_, h, _, err = ngxDo(c, "POST", base+"/api/v1/inference", token, query, "Origin", "https://evil.example.com")
	if err != nil || h.Get("Access-Control-Allow-Origin") != "" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("an origin not on the list got CORS headers: %v %v", err, h)
	}
	code, h, _, err = ngxDo(c, "OPTIONS", base+"/api/v1/inference", "", "", "Origin", "https://ehr.example.org", "Access-Control-Request-Method", "POST")
	if err != nil || code != 204 || h.Get("Access-Control-Allow-Origin") != "https://ehr.example.org" || h.Get("Access-Control-Max-Age") != "86400" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from an allowed origin: %d %v %v", code, err, h)
	}
	code, h, _, err = ngxDo(c, "OPTIONS", base+"/api/v1/inference", "", "", "Origin", "https://evil.example.com", "Access-Control-Request-Method", "POST")
	if err != nil || code != 403 || h.Get("Access-Control-Allow-Origin") != "" || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("preflight from another origin: %d %v %v", code, err, h)
	}
	code, h, body, err = ngxDo(c, "POST", base+"/api/v1/inference", token, `{"query": "`+strings.Repeat("a", 2<<20)+`"}`)
	if err != nil || code != 413 || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("2 MiB query: %d %v %s", code, err, body)
	}
	for _, p := range []string{"/health/live", "/health/ready", "/v2/health/ready"} {
		if code, _, body, err := ngxDo(c, "GET", base+p, "", ""); err != nil || code != 200 {
			t.Errorf("GET %s through nginx: %d %v %s", p, code, err, body)
		}
	}
	// /metrics: loopback itself (127.0.0.1) may; 127.10.x.y is outside
	// every allowed network, as an outside address would be.
	code, _, body, err = ngxDo(http.DefaultClient, "GET", base+"/metrics", "", "")
	if err != nil || code != 200 || !bytes.Contains(body, []byte("medserve_http_request_duration_seconds")) {
		t.Errorf("/metrics from 127.0.0.1: %d %v", code, err)
	}
	code, h, _, err = ngxDo(c, "GET", base+"/metrics", "", "")
	if err != nil || code != 403 || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("/metrics from an address outside the allowed networks: %d %v", code, err)
	}
	// The access log has the path, never the query string.
	code, _, _, err = ngxDo(c, "GET", base+"/api/v1/models?patient=NGX-QUERY-SECRET", token, "", "X-Request-Id", "ngx-edge-qs")
	if err != nil {
		t.Fatal(err)
	}
	if e := logs.entry(t, "ngx-edge-qs"); e.URI != "/api/v1/models" || e.Status != code {
		t.Errorf("access log entry %+v", e)
	}
	if raw, _ := os.ReadFile(logs.path); bytes.Contains(raw, []byte("NGX-QUERY-SECRET")) {
		t.Error("the access log holds a query string")
	}

	// nginx's own limit, at the shipped rate (inference 60/min burst 10):
	// 20 requests at once from one address, with a key medserve would let
	// through, get 11 answers and nginx's 429s.
	one := ngxFixedClient(src.next())
	began := time.Now()
	var ok, limited atomic.Int32
	var sample atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, h, body, err := ngxDo(one, "POST", base+"/api/v1/inference", token, query)
			switch {
			case err != nil:
				t.Error(err)
			case code == 200:
				ok.Add(1)
			case code == 429:
				limited.Add(1)
				if h.Get("Retry-After") != "1" || h.Get("RateLimit-Limit") != "" || !bytes.Contains(body, []byte("at the proxy")) {
					sample.Store(fmt.Sprintf("%v %s", h, body))
				}
			}
		}()
	}
	wg.Wait()
	refill := int32(time.Since(began)/time.Second) + 1
	t.Logf("nginx's inference zone (60r/m burst 10) from one address: %d of 20 concurrent requests passed, %d refused 429 by nginx", ok.Load(), limited.Load())
	if ok.Load() < 11 || ok.Load() > 11+refill || ok.Load()+limited.Load() != 20 {
		t.Errorf("one address, 20 at once: %d passed, %d limited; want 11 (burst 10 + 1)", ok.Load(), limited.Load())
	}
	if s := sample.Load(); s != nil {
		t.Errorf("nginx's 429 should be a problem with Retry-After 1 and no RateLimit headers: %v", s)
	}
}

// ngxAccessLog reads nginx's JSON access log.
type ngxAccessLog struct{ path string }

type ngxLogEntry struct {
	RequestID      string `json:"request_id"`
	URI            string `json:"uri"`
	Status         int    `json:"status"`
	Upstream       string `json:"upstream"`
	UpstreamStatus string `json:"upstream_status"`
}

func (e ngxLogEntry) firstUpstream() string {
	return strings.TrimSpace(strings.Split(e.Upstream, ",")[0])
}

func (e ngxLogEntry) lastUpstream() string {
	parts := strings.Split(e.Upstream, ",")
	return strings.TrimSpace(parts[len(parts)-1])
}

// entries returns the log entries of ids, waiting briefly for the last
// lines to be written.
func (l *ngxAccessLog) entries(t *testing.T, ids []string) map[string]ngxLogEntry {
	t.Helper()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := map[string]ngxLogEntry{}
		f, err := os.Open(l.path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e ngxLogEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				f.Close()
				t.Fatalf("access log line %q: %v", sc.Text(), err)
			}
			if want[e.RequestID] {
				got[e.RequestID] = e
			}
		}
		f.Close()
		if len(got) == len(want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log has %d of %d requests", len(got), len(want))
		}
	}
}

func (l *ngxAccessLog) entry(t *testing.T, id string) ngxLogEntry {
	t.Helper()
	return l.entries(t, []string{id})[id]
}

// byUpstream counts the requests each replica answered (the last upstream
// nginx tried), by replica name.
func (l *ngxAccessLog) byUpstream(t *testing.T, ids []string, names map[string]string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, e := range l.entries(t, ids) {
		out[names[e.lastUpstream()]]++
	}
	return out
}

// statusByUpstream counts statuses per replica.
func (l *ngxAccessLog) statusByUpstream(t *testing.T, ids []string, names map[string]string) map[string]map[int]int {
	t.Helper()
	out := map[string]map[int]int{"A": {}, "B": {}}
	for _, e := range l.entries(t, ids) {
		r := names[e.lastUpstream()]
		if out[r] == nil {
			out[r] = map[int]int{}
		}
		out[r][e.Status]++
	}
	return out
}

// ngxCacheKeys counts medserve's L2 entries in Redis.
func ngxCacheKeys(t *testing.T, rc *redis.Client) int {
	t.Helper()
	keys, err := rc.Keys(context.Background(), "medserve:c:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// ngxCacheField is the response's "cache" member, for messages.
func ngxCacheField(body []byte) string {
	var r struct {
		Cache json.RawMessage `json:"cache"`
	}
	if json.Unmarshal(body, &r) != nil || r.Cache == nil {
		return fmt.Sprintf("(no cache field: %.200s)", body)
	}
	return `"cache":` + string(r.Cache)
}

// ngxBuffer is a goroutine-safe buffer for a child's output.
type ngxBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *ngxBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *ngxBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ngxTail is the last n lines of s.
func ngxTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
