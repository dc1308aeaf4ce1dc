package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"medserve/internal/audit"
	"medserve/internal/pgtest"
)

// TestMain lets a test run the real program in a child process (to kill
// it with SIGKILL): MEDSERVE_TEST_ARGS holds the arguments as JSON.
func TestMain(m *testing.M) {
	if args := os.Getenv("MEDSERVE_TEST_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ctx, stop := signalContext()
		defer stop()
		if err := run(ctx, argv, os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "medserve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// child is the server running in a subprocess.
type child struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	base string
}

func startChild(t *testing.T, args []string, env []string) *child {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	argv, _ := json.Marshal(append([]string{"medserve", "serve", "--addr", addr}, args...))
	c := &child{logs: &syncBuffer{}, base: "http://" + addr}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(append(os.Environ(), "MEDSERVE_TEST_ARGS="+string(argv)), env...)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(c.base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("child server not ready: %v\n%s", err, c.logs.String())
		}
	}
}

// TestCrashLosesNothing kills the server with SIGKILL in the middle of a
// load, starts it again on the same data directory, and checks that every
// request that was answered has exactly one query record and one audit
// event, that nothing is duplicated, and that the chain verifies.
func TestCrashLosesNothing(t *testing.T) {
	// Long and self-contained: runs beside the other long ones.
	t.Parallel()
	if testing.Short() && os.Getenv("CI") != "true" { // CI always runs it
		t.Skip("starts the server three times")
	}
	for _, backend := range []string{"sqlite", "postgresql"} {
		t.Run(backend, func(t *testing.T) {
			dataDir := t.TempDir()
			args := []string{"--data-dir", dataDir, "--models", bundledModels, "--cache-mb", "0", "--insecure-no-auth", "--rate-limits", testRateLimits}
			var env []string
			getenv := testEnv(nil)
			if backend == "postgresql" {
				db := pgtest.FreshDatabase(t)
				args = append(args, "--database-url", db)
				env = []string{"MEDSERVE_PHI_KEY=" + testPHIKey}
				getenv = testEnv(map[string]string{"MEDSERVE_PHI_KEY": testPHIKey, "MEDSERVE_DATABASE_URL": db})
			}
			c := startChild(t, args, env)

			var mu sync.Mutex
			acked := map[string]bool{}
			var wg sync.WaitGroup
			client := &http.Client{Timeout: 10 * time.Second}
			killed := make(chan struct{})
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-killed:
							return
						default:
						}
						body := fmt.Sprintf(`{"query": "fall with wrist pain %d-%d", "patient": {"id": "C-%d"}}`, w, i, i%9)
						resp, err := client.Post(c.base+"/api/v1/inference", "application/json", strings.NewReader(body))
						if err != nil {
							continue
						}
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						var r struct {
							RequestID string `json:"request_id"`
						}
						if resp.StatusCode == http.StatusOK && json.Unmarshal(b, &r) == nil {
							mu.Lock()
							acked[r.RequestID] = true
							mu.Unlock()
						}
					}
				}()
			}
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n >= 400 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			c.cmd.Process.Signal(syscall.SIGKILL)
			c.cmd.Wait()
			close(killed)
			wg.Wait()

			// Restart: the spool is replayed into the store; then a clean stop.
			c2 := startChild(t, args, env)
			c2.cmd.Process.Signal(syscall.SIGTERM)
			if err := c2.cmd.Wait(); err != nil {
				t.Fatalf("restarted server: %v\n%s", err, c2.logs.String())
			}

			db, _, err := openStore(context.Background(), getenv("MEDSERVE_DATABASE_URL"), dataDir)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			events := map[string]int{}
			err = db.Range(context.Background(), 1, 1<<62, func(e audit.Event) error {
				if e.Action == "inference" {
					events[e.RequestID]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			queries := map[string]int{}
			for p := 0; p < 9; p++ {
				h, err := db.PatientHistory(context.Background(), pseudonyms(t, getenv, dataDir, fmt.Sprintf("C-%d", p)), 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range h {
					queries[q.RequestID]++
				}
			}
			for id := range acked {
				if events[id] != 1 || queries[id] != 1 {
					t.Fatalf("answered request %s: %d audit events, %d query records after the crash; want 1 and 1", id, events[id], queries[id])
				}
			}
			for id, n := range events {
				if n != 1 || queries[id] != 1 {
					t.Fatalf("request %s: %d audit events, %d query records: duplicated or split", id, n, queries[id])
				}
			}
			out, err := verifyCmd(t, getenv, "--data-dir", dataDir)
			if err != nil || !strings.Contains(out, "OK") {
				t.Fatalf("verify after the crash: %v\n%s", err, out)
			}
			t.Logf("%s: %d requests answered before SIGKILL, %d recorded (answered or not), each exactly once; %s",
				backend, len(acked), len(events), strings.SplitN(out, "\n", 2)[0])
		})
	}
}

// pseudonyms are the patient's pseudonyms under the server's PHI key.
func pseudonyms(t *testing.T, getenv func(string) string, dataDir, id string) []string {
	t.Helper()
	kr, err := loadPHI(env{getenv: getenv, stderr: &bytes.Buffer{}}, dataDir, false)
	if err != nil {
		t.Fatal(err)
	}
	return kr.Pseudonyms(id)
}
