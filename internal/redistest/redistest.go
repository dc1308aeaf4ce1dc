// Package redistest starts a private redis-server for tests that fill,
// kill or restart their Redis, so they never touch the machine's shared
// server on 6379, which other tests and CI use.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a private redis-server on a free loopback port, with no
// persistence, so a restart comes back empty, as a crashed cache would.
type Server struct {
	tb   testing.TB
	bin  string
	port int
	dir  string

	// mu lets a load goroutine Kill the server while the test's Cleanup
	// may Kill it too.
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts a private redis-server; it is killed when the test ends.
// Without redis-server on PATH the test is skipped, except under CI=true,
// where it fails.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server not on PATH (required in CI): %v", err)
		}
		tb.Skipf("redis-server not on PATH: %v", err)
	}
	s := &Server{tb: tb, bin: bin, port: FreePort(tb), dir: tb.TempDir()}
	// Registered after TempDir, so it runs first: the directory is removed
	// only once the server is gone.
	tb.Cleanup(s.Kill)
	s.StartAgain()
	return s
}

// Addr is the server's host:port, for clients built from options.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the server's database 0 as medserve's --redis-url takes it.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Kill sends SIGKILL and waits for the process to exit, so that clients see
// a crash (connections cut, nothing flushed) rather than a shutdown. It may
// be called from any goroutine, and again on a server already killed.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// StartAgain starts the (killed) server on the same port and directory and
// waits until it answers PING; the port is what clients already hold.
func (s *Server) StartAgain() {
	s.tb.Helper()
	logFile := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logFile,
	)
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.tb.Fatal("redis-server already running")
	}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.tb.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	// Short timeouts and no retries, so the loop notices an exit or the
	// deadline promptly instead of waiting inside the client.
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			s.tb.Fatalf("redis-server on port %d exited: %s", s.port, readLog(logFile))
		default:
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redis-server on port %d does not answer PING: %v\n%s", s.port, err, readLog(logFile))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// FreePort returns a loopback port that was free a moment ago; tests also
// use it for an address where nothing listens (connection refused).
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
