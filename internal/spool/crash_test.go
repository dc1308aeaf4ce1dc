package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Environment of the crash helper subprocess.
const (
	crashDirEnv   = "SPOOL_CRASH_DIR"
	crashRoundEnv = "SPOOL_CRASH_ROUND"
)

// crashData is the record the helper appends for id: about 600 bytes, like a
// real query record, with the id first so the parent can check any record.
func crashData(id string) []byte {
	return append([]byte(id+"|"), bytes.Repeat([]byte(id+";"), 600/(len(id)+1))...)
}

// TestCrashHelper is not a test: TestCrash runs it in a subprocess that
// appends from 8 goroutines until it is killed. It prints "ack POS ID" for
// every acknowledged append, and "trim N" before each Trim(N).
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrash in a subprocess")
	}
	var mu sync.Mutex
	emit := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format, args...) // unbuffered: one write per line
	}
	// Small segments so that kills also land around segment rolls and trims.
	l, err := Open(dir, Options{SegmentBytes: 16 << 10})
	if err != nil {
		emit("error %v\n", err)
		os.Exit(3)
	}
	round := os.Getenv(crashRoundEnv)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-i%d", round, g, i)
				pos, err := l.Append(context.Background(), crashData(id))
				if err != nil {
					emit("error %v\n", err)
					os.Exit(3)
				}
				emit("ack %d %s\n", pos, id)
				if g == 0 && i%40 == 39 && pos > 200 {
					emit("trim %d\n", pos-200)
					if err := l.Trim(pos - 200); err != nil {
						emit("error %v\n", err)
						os.Exit(3)
					}
				}
			}
		}()
	}
	select {}
}

// TestCrash kills a process appending to the spool with SIGKILL mid-stream,
// several times over, and checks after each kill that every acknowledged
// record is present with its data and that positions continue without reuse.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	dir := t.TempDir()
	acked := map[int64]string{}
	var trimmed int64 // the helpers may have trimmed through here
	var prevLast int64
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashRoundEnv, round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 300 + 97*round // acknowledgements before the kill
		n := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "ack":
				pos, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					t.Fatalf("bad line %q", sc.Text())
				}
				if pos <= prevLast {
					t.Errorf("round %d: position %d acknowledged again (Last was %d at reopen)", round, pos, prevLast)
				}
				if old, dup := acked[pos]; dup {
					t.Errorf("position %d acknowledged for %s and %s", pos, old, f[2])
				}
				acked[pos] = f[2]
				if n++; n == killAt {
					if err := cmd.Process.Kill(); err != nil { // SIGKILL
						t.Fatal(err)
					}
				}
			case len(f) == 2 && f[0] == "trim":
				through, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					t.Fatalf("bad line %q", sc.Text())
				}
				trimmed = max(trimmed, through)
			case len(f) > 0 && f[0] == "error":
				t.Fatalf("helper: %s", sc.Text())
			}
		}
		err = cmd.Wait()
		if n < killAt {
			t.Fatalf("round %d: helper stopped after %d acks (%v): %s", round, n, err, stderr.String())
		}

		l := mustOpen(t, dir, Options{SegmentBytes: 16 << 10})
		recs := readAll(t, l)
		if len(recs) == 0 {
			t.Fatalf("round %d: nothing retained", round)
		}
		first := recs[0].Pos
		if first > trimmed+1 {
			t.Errorf("round %d: first retained position %d, but trims went only through %d", round, first, trimmed)
		}
		for i, r := range recs {
			if r.Pos != first+int64(i) {
				t.Fatalf("round %d: position %d at index %d: gap", round, r.Pos, i)
			}
			id, _, ok := bytes.Cut(r.Data, []byte("|"))
			if !ok || !bytes.Equal(r.Data, crashData(string(id))) {
				t.Fatalf("round %d: record %d is damaged: %.40q", round, r.Pos, r.Data)
			}
			if want, ok := acked[r.Pos]; ok && want != string(id) {
				t.Errorf("round %d: record %d is %s, acknowledged as %s", round, r.Pos, id, want)
			}
		}
		lost := 0
		for pos := range acked {
			// Only a Trim may remove an acknowledged record.
			if pos > l.Last() || pos < first && pos > trimmed {
				lost++
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d acknowledged records lost (retained %d..%d)", round, lost, first, l.Last())
		}
		t.Logf("round %d: %d acked, retained %d..%d, zeroed %d bytes of torn tail", round, n, first, l.Last(), l.Stats().ZeroedOnOpen)
		prevLast = l.Last()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
