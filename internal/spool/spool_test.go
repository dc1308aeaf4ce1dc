package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// mustOpen opens dir and closes the Log when the test ends (unless the test
// closed it already).
func mustOpen(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendAll appends recs one at a time and checks each lands at the next position.
func appendAll(t testing.TB, l *Log, recs ...[]byte) {
	t.Helper()
	for _, r := range recs {
		want := l.Last() + 1
		pos, err := l.Append(context.Background(), r)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if pos != want {
			t.Fatalf("Append returned position %d, want %d", pos, want)
		}
	}
}

// readAll reads every retained record.
func readAll(t testing.TB, l *Log) []Record {
	t.Helper()
	recs, err := l.Read(1, 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return recs
}

// rec is the deterministic test record for position-independent id i.
func rec(i int) []byte { return fmt.Appendf(nil, "record-%04d", i) }

// positions lists the positions of recs.
func positions(recs []Record) []int64 {
	var ps []int64
	for _, r := range recs {
		ps = append(ps, r.Pos)
	}
	return ps
}

// seq returns lo, lo+1, …, hi.
func seq(lo, hi int64) []int64 {
	var ps []int64
	for p := lo; p <= hi; p++ {
		ps = append(ps, p)
	}
	return ps
}

// segFiles lists the segment file names in dir.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	return names
}

func TestAppendReadOrder(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	want := [][]byte{rec(1), {}, bytes.Repeat([]byte{0xff}, 5000), rec(4), {0}}
	appendAll(t, l, want...)
	got := readAll(t, l)
	if !slices.Equal(positions(got), seq(1, 5)) {
		t.Fatalf("positions %v", positions(got))
	}
	for i, r := range got {
		if !bytes.Equal(r.Data, want[i]) {
			t.Errorf("record %d = %q, want %q", r.Pos, r.Data, want[i])
		}
	}
	if l.Last() != 5 || l.Pending(2) != 3 || l.Pending(9) != 0 {
		t.Errorf("Last %d Pending(2) %d Pending(9) %d", l.Last(), l.Pending(2), l.Pending(9))
	}
	if len(l.ID()) != 32 {
		t.Errorf("ID %q", l.ID())
	}
}

func TestOpenPermissionsAndID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "spool")
	l := mustOpen(t, dir, Options{})
	id := l.ID()
	appendAll(t, l, rec(1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, name := range append(segFiles(t, dir), idFileName) {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	l = mustOpen(t, dir, Options{})
	if l.ID() != id {
		t.Errorf("ID changed across reopen: %s then %s", id, l.ID())
	}
}

func TestPositionsContinue(t *testing.T) {
	for _, tc := range []struct {
		name      string
		segBytes  int64
		trim      bool
		wantFirst int64 // first retained position after reopen
	}{
		{"reopen", 0, false, 1},
		{"reopen after trimming everything, one segment", 0, true, 1},
		{"reopen after trimming everything, many segments", 30, true, 5}, // one record per segment
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, Options{SegmentBytes: tc.segBytes})
			appendAll(t, l, rec(1), rec(2), rec(3), rec(4), rec(5))
			if tc.trim {
				if err := l.Trim(l.Last()); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, Options{SegmentBytes: tc.segBytes})
			if l.Last() != 5 {
				t.Fatalf("Last after reopen = %d, want 5", l.Last())
			}
			if got := positions(readAll(t, l)); !slices.Equal(got, seq(tc.wantFirst, 5)) {
				t.Fatalf("retained %v", got)
			}
			appendAll(t, l, rec(6)) // checks it lands at 6
			if tc.trim {
				if err := l.Trim(6); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, Options{SegmentBytes: tc.segBytes})
			appendAll(t, l, rec(7))
		})
	}
}

func TestSegmentRoll(t *testing.T) {
	dir := t.TempDir()
	frame := frameLen(len(rec(0)))
	l := mustOpen(t, dir, Options{SegmentBytes: 5 * frame})
	for i := 1; i <= 23; i++ {
		appendAll(t, l, rec(i))
	}
	big := bytes.Repeat([]byte("x"), int(10*frame)) // larger than a segment: gets one of its own
	appendAll(t, l, big, rec(25))
	want := []string{segName(1), segName(6), segName(11), segName(16), segName(21), segName(24), segName(25)}
	if got := segFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	// Every file is preallocated to the segment size, except that the
	// record larger than a segment extended its own.
	for _, name := range want {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		wantSize := 5 * frame
		if name == segName(24) {
			wantSize = frameLen(len(big))
		}
		if st.Size() != wantSize {
			t.Errorf("%s has %d bytes, want %d", name, st.Size(), wantSize)
		}
	}
	l.mu.Lock()
	for _, seg := range l.segs {
		if seg.first != 24 && seg.size > 5*frame {
			t.Errorf("%s holds %d bytes of records, limit %d", segName(seg.first), seg.size, 5*frame)
		}
	}
	l.mu.Unlock()
	got := readAll(t, l)
	if !slices.Equal(positions(got), seq(1, 25)) {
		t.Fatalf("positions %v", positions(got))
	}
	for _, r := range got {
		want := rec(int(r.Pos))
		if r.Pos == 24 {
			want = big
		}
		if !bytes.Equal(r.Data, want) {
			t.Errorf("record %d = %.20q…", r.Pos, r.Data)
		}
	}
}

// fileSize returns the size of the file name in dir, -1 if it does not exist.
func fileSize(t testing.TB, dir, name string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestPreallocated follows a segment's life: created full of zeros, written
// in place without growing, its successor prepared as SPARE once it is half
// full and renamed at the roll; Close removes an unused spare, and Open one
// left by a crash.
func TestPreallocated(t *testing.T) {
	const segBytes = 4096
	frame := frameLen(len(rec(0)))
	perSeg := int(segBytes / frame)
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: segBytes})
	if got := fileSize(t, dir, segName(1)); got != segBytes {
		t.Fatalf("new segment has %d bytes, want %d", got, segBytes)
	}
	for i := 1; i <= perSeg; i++ {
		appendAll(t, l, rec(i))
		if got := fileSize(t, dir, segName(1)); got != segBytes {
			t.Fatalf("after %d appends the segment has %d bytes, want %d", i, got, segBytes)
		}
		if half := int64(i)*frame < segBytes/2; half && fileSize(t, dir, spareFileName) >= 0 {
			t.Fatalf("spare made after %d appends, before the segment was half full", i)
		}
	}
	waitFor(t, "the spare is made", func() bool { return fileSize(t, dir, spareFileName) == segBytes })
	appendAll(t, l, rec(perSeg+1)) // does not fit: rolls
	next := int64(perSeg + 1)
	if got, want := segFiles(t, dir), []string{segName(1), segName(next)}; !slices.Equal(got, want) {
		t.Fatalf("segments %v, want %v", got, want)
	}
	if fileSize(t, dir, spareFileName) != -1 || fileSize(t, dir, segName(next)) != segBytes {
		t.Errorf("the roll did not take the spare")
	}
	checkSegFiles(t, l, segBytes)

	// Close removes a spare nobody used.
	for i := perSeg + 2; int64(i) <= next+int64(perSeg)/2; i++ {
		appendAll(t, l, rec(i))
	}
	waitFor(t, "the next spare is made", func() bool { return fileSize(t, dir, spareFileName) == segBytes })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fileSize(t, dir, spareFileName) != -1 {
		t.Errorf("Close left the spare")
	}

	// A spare left by a crash may be incomplete: Open removes it.
	if err := os.WriteFile(filepath.Join(dir, spareFileName), []byte("half a spare"), 0o600); err != nil {
		t.Fatal(err)
	}
	last := next + int64(perSeg)/2
	l = mustOpen(t, dir, Options{SegmentBytes: segBytes})
	if fileSize(t, dir, spareFileName) != -1 {
		t.Errorf("Open left the old spare")
	}
	if l.Last() != last || l.Stats().ZeroedOnOpen != 0 {
		t.Errorf("reopened: Last %d (want %d), stats %+v", l.Last(), last, l.Stats())
	}
	appendAll(t, l, rec(int(last+1)))
	if got := positions(readAll(t, l)); !slices.Equal(got, seq(1, last+1)) {
		t.Errorf("positions %v", got)
	}
}

// TestRollFailureKeepsLog: when the next segment cannot be made (the disk
// is full, here: a directory is in the spare's way), the appends that
// needed it fail, but nothing changed on disk, so the Log stays usable and
// the next roll succeeds once there is room.
func TestRollFailureKeepsLog(t *testing.T) {
	const segBytes = 4096
	frame := frameLen(len(rec(0)))
	perSeg := int(segBytes / frame)
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: segBytes})
	block := filepath.Join(dir, spareFileName)
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= perSeg; i++ {
		appendAll(t, l, rec(i))
	}
	_, err := l.Append(context.Background(), rec(perSeg+1))
	if err == nil || errors.Is(err, ErrFailed) {
		t.Fatalf("Append needing a roll with the spare blocked: %v, want a plain error", err)
	}
	if got := segFiles(t, dir); !slices.Equal(got, []string{segName(1)}) {
		t.Fatalf("segments %v after the failed roll", got)
	}
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, rec(perSeg+1)) // at perSeg+1: the failure used no position
	if got := segFiles(t, dir); !slices.Equal(got, []string{segName(1), segName(int64(perSeg + 1))}) {
		t.Fatalf("segments %v", got)
	}
	if got := positions(readAll(t, l)); !slices.Equal(got, seq(1, int64(perSeg+1))) {
		t.Errorf("positions %v", got)
	}
}

// TestSegmentBytesChange reopens a spool with a larger and then a smaller
// SegmentBytes: the active segment is extended to the larger size, and not
// shrunk for the smaller one, whose limit applies to the records it takes.
func TestSegmentBytesChange(t *testing.T) {
	dir := t.TempDir()
	frame := frameLen(len(rec(0)))
	n := 0
	step := func(segBytes int64, appends int, wantActive int64) {
		t.Helper()
		l := mustOpen(t, dir, Options{SegmentBytes: segBytes})
		for range appends {
			n++
			appendAll(t, l, rec(n))
		}
		checkSegFiles(t, l, min(segBytes, wantActive))
		l.mu.Lock()
		active := *l.segs[len(l.segs)-1]
		l.mu.Unlock()
		if got := fileSize(t, dir, segName(active.first)); got != wantActive {
			t.Errorf("SegmentBytes %d: active segment has %d bytes, want %d", segBytes, got, wantActive)
		}
		if appends > 0 && active.size > segBytes {
			t.Errorf("SegmentBytes %d: active segment holds %d bytes of records", segBytes, active.size)
		}
		if got := positions(readAll(t, l)); !slices.Equal(got, seq(1, int64(n))) {
			t.Errorf("SegmentBytes %d: positions %v", segBytes, got)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	step(10*frame, 3, 10*frame)
	step(20*frame, 3, 20*frame) // extended at Open
	step(4*frame, 0, 20*frame)  // kept as it is…
	step(4*frame, 5, 4*frame)   // …until the roll, to a new segment of the new size
}

func TestReadLimits(t *testing.T) {
	dir := t.TempDir()
	// Tiny segments: every record in its own file, so reads cross segments.
	l := mustOpen(t, dir, Options{SegmentBytes: 64})
	for i := 1; i <= 10; i++ {
		appendAll(t, l, rec(i)) // 11 bytes each
	}
	appendAll(t, l, bytes.Repeat([]byte("y"), 1000))
	for _, tc := range []struct {
		name                 string
		from                 int64
		maxRecords, maxBytes int
		want                 []int64
	}{
		{"all", 1, 0, 0, seq(1, 11)},
		{"from zero means from the start", 0, 0, 0, seq(1, 11)},
		{"negative from", -5, 3, 0, seq(1, 3)},
		{"max records", 4, 3, 0, seq(4, 6)},
		{"max bytes", 1, 0, 25, seq(1, 2)},
		{"max bytes exact", 1, 0, 33, seq(1, 3)},
		{"both limits, records first", 2, 2, 1000, seq(2, 3)},
		{"at least one record", 1, 0, 1, seq(1, 1)},
		{"oversized record alone", 11, 5, 10, seq(11, 11)},
		{"oversized record not added to others", 10, 5, 500, seq(10, 10)},
		{"last only", 11, 0, 0, seq(11, 11)},
		{"past the end", 12, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Read(tc.from, tc.maxRecords, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(positions(got), tc.want) {
				t.Errorf("Read(%d, %d, %d) = %v, want %v", tc.from, tc.maxRecords, tc.maxBytes, positions(got), tc.want)
			}
		})
	}
}

// TestReadSeek reads single records from the middle of a segment large
// enough to have many index entries.
func TestReadSeek(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	const n = 2000
	data := func(i int) []byte { return append(rec(i), bytes.Repeat([]byte{byte(i)}, 500)...) }
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				if _, err := l.Append(context.Background(), data(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	all := readAll(t, l)
	if len(all) != n {
		t.Fatalf("%d records, want %d", len(all), n)
	}
	if len(l.segs[0].index) < 10 {
		t.Fatalf("only %d index entries; the test should exercise the index", len(l.segs[0].index))
	}
	for _, from := range []int64{1, 2, 117, 118, 119, 500, 1024, 1999, 2000} {
		got, err := l.Read(from, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Pos != from || !bytes.Equal(got[0].Data, all[from-1].Data) {
			t.Errorf("Read(%d, 1, 0) = %v", from, positions(got))
		}
	}
}

func TestTrim(t *testing.T) {
	frame := frameLen(len(rec(0)))
	for _, tc := range []struct {
		through   int64
		wantSegs  []int64
		wantFirst int64
	}{
		{0, []int64{1, 4, 7, 10}, 1},
		{2, []int64{1, 4, 7, 10}, 1},
		{3, []int64{4, 7, 10}, 4},
		{5, []int64{4, 7, 10}, 4},
		{9, []int64{10}, 10},
		{10, []int64{10}, 10},  // the active segment stays
		{100, []int64{10}, 10}, // beyond Last: still only whole older segments
	} {
		t.Run(fmt.Sprint("through=", tc.through), func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, Options{SegmentBytes: 3 * frame})
			for i := 1; i <= 10; i++ {
				appendAll(t, l, rec(i))
			}
			if err := l.Trim(tc.through); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range tc.wantSegs {
				want = append(want, segName(f))
			}
			if got := segFiles(t, dir); !slices.Equal(got, want) {
				t.Errorf("segments %v, want %v", got, want)
			}
			if got := positions(readAll(t, l)); !slices.Equal(got, seq(tc.wantFirst, 10)) {
				t.Errorf("retained %v", got)
			}
			appendAll(t, l, rec(11))
		})
	}
}

func TestNotify(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	select {
	case <-l.Notify():
		t.Fatal("notified before any append")
	default:
	}
	appendAll(t, l, rec(1), rec(2))
	select {
	case <-l.Notify():
	default:
		t.Fatal("no notification after Append returned")
	}
	select {
	case <-l.Notify():
		t.Fatal("capacity is 1: two appends leave one notification")
	default:
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Appenders race with Close: each Append either succeeds and its record
	// must survive, or fails with ErrClosed.
	var mu sync.Mutex
	acked := map[int64][]byte{}
	var wg sync.WaitGroup
	started := make(chan struct{}, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				data := rec(g*100 + i)
				pos, err := l.Append(context.Background(), data)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[pos] = data
				mu.Unlock()
				if i == 0 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 4 {
		<-started
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	if _, err := l.Append(context.Background(), rec(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.Read(1, 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := l.Trim(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Trim after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}

	l = mustOpen(t, dir, Options{})
	got := readAll(t, l)
	if int64(len(got)) != l.Last() || len(got) < len(acked) {
		t.Fatalf("%d records, Last %d, %d acknowledged", len(got), l.Last(), len(acked))
	}
	for _, r := range got {
		if want, ok := acked[r.Pos]; ok && !bytes.Equal(r.Data, want) {
			t.Errorf("record %d = %q, want %q", r.Pos, r.Data, want)
		}
	}
	for pos := range acked {
		if pos > int64(len(got)) {
			t.Errorf("acknowledged position %d lost", pos)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{MaxRecord: 10})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		rec  []byte
		want error
	}{
		{"too large", context.Background(), make([]byte, 11), ErrTooLarge},
		{"cancelled", ctx, rec(1)[:5], context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := l.Append(tc.ctx, tc.rec); !errors.Is(err, tc.want) {
				t.Errorf("Append: %v, want %v", err, tc.want)
			}
		})
	}
	appendAll(t, l, make([]byte, 10)) // position 1: the failures used none
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, dir, Options{})
}

func TestOpenInvalidOptions(t *testing.T) {
	for _, opts := range []Options{{SegmentBytes: 10}, {SegmentBytes: -1}, {MaxRecord: -1}} {
		if l, err := Open(t.TempDir(), opts); err == nil {
			l.Close()
			t.Errorf("Open(%+v) succeeded", opts)
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	for _, tc := range []struct {
		name     string
		segBytes int64
	}{
		{"one segment", 0},
		{"rolling segments", 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), Options{SegmentBytes: tc.segBytes})
			const goroutines, each = 32, 200
			var mu sync.Mutex
			byPos := map[int64][]byte{}

			// A reader follows the appenders, checking that it only ever sees
			// durable, contiguous, correct records.
			readerDone := make(chan error, 1)
			stop := make(chan struct{}) // closed once the appenders are done
			go func() {
				next := int64(1)
				stopped := false
				for next <= goroutines*each {
					recs, err := l.Read(next, 100, 0)
					if err != nil {
						readerDone <- err
						return
					}
					if len(recs) == 0 && stopped {
						readerDone <- fmt.Errorf("reader stuck at position %d, Last %d", next, l.Last())
						return
					}
					last := l.Last()
					for _, r := range recs {
						if r.Pos != next || r.Pos > last {
							readerDone <- fmt.Errorf("read position %d, want %d (Last %d)", r.Pos, next, last)
							return
						}
						next++
					}
					if len(recs) == 0 {
						select {
						case <-l.Notify():
						case <-stop:
							stopped = true
						}
					}
				}
				readerDone <- nil
			}()

			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					prev := int64(0)
					for i := range each {
						data := fmt.Appendf(nil, "g%02d-i%03d-%s", g, i, bytes.Repeat([]byte{'p'}, g*7))
						pos, err := l.Append(context.Background(), data)
						if err != nil {
							t.Error(err)
							return
						}
						if pos <= prev {
							t.Errorf("goroutine %d: position %d after %d", g, pos, prev)
						}
						prev = pos
						mu.Lock()
						if _, dup := byPos[pos]; dup {
							t.Errorf("position %d returned twice", pos)
						}
						byPos[pos] = data
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			close(stop)
			if err := <-readerDone; err != nil {
				t.Fatal(err)
			}

			got := readAll(t, l)
			if !slices.Equal(positions(got), seq(1, goroutines*each)) {
				t.Fatalf("%d records, positions not 1..%d", len(got), goroutines*each)
			}
			seen := map[string]bool{}
			for _, r := range got {
				if !bytes.Equal(r.Data, byPos[r.Pos]) {
					t.Errorf("record %d = %q, Append returned that position for %q", r.Pos, r.Data, byPos[r.Pos])
				}
				if seen[string(r.Data)] {
					t.Errorf("record %q stored twice", r.Data)
				}
				seen[string(r.Data)] = true
			}
			st := l.Stats()
			if st.Records != goroutines*each || st.Syncs < 1 || st.Syncs > st.Records+int64(len(segFiles(t, l.dir))) {
				t.Errorf("stats %+v", st)
			}
			t.Logf("%d records in %d fsyncs", st.Records, st.Syncs)
		})
	}
}
