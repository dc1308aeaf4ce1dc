package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
)

// build encodes a segment starting at position first whose records (data
// rec(pos)) were written in write groups of the given sizes: the last frame
// of each group carries the commit flag, as the writer would leave it.
func build(first int64, groups ...int) []byte {
	var b []byte
	pos := first
	for _, n := range groups {
		for i := range n {
			var flags byte
			if i == n-1 {
				flags = flagCommit
			}
			b = appendFrame(b, pos, flags, rec(int(pos)))
			pos++
		}
	}
	return b
}

// recFrame is the size of a frame made by build.
var recFrame = int(frameLen(len(rec(0))))

// damage returns a copy of b with the data of its k-th frame (counting from
// 0, all frames made by build) flipped; zero returns a copy with that frame
// zeroed, like a page that never reached the disk.
func damage(b []byte, k int) []byte {
	b = bytes.Clone(b)
	b[k*recFrame+headerSize] ^= 0xff
	return b
}

func zero(b []byte, k int) []byte {
	b = bytes.Clone(b)
	clear(b[k*recFrame : (k+1)*recFrame])
	return b
}

// testSegBytes is the segment size of the recovery tests: small, so that
// preallocating is quick, but larger than any segment they build.
const testSegBytes = 4096

// pad returns b followed by zeros up to testSegBytes, as a preallocated
// segment file holds it.
func pad(b []byte) []byte {
	return append(bytes.Clone(b), make([]byte, testSegBytes-len(b))...)
}

// checkSegFiles checks the invariant of the active segment that recovery
// and the writer keep: it is preallocated to at least segBytes, and after
// its records there are only zeros.
func checkSegFiles(t testing.TB, l *Log, segBytes int64) {
	t.Helper()
	l.mu.Lock()
	active := *l.segs[len(l.segs)-1]
	l.mu.Unlock()
	name := segName(active.first)
	b, err := os.ReadFile(filepath.Join(l.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) < segBytes {
		t.Errorf("%s has %d bytes, want it preallocated to %d", name, len(b), segBytes)
	}
	if i := slices.IndexFunc(b[active.size:], func(c byte) bool { return c != 0 }); i >= 0 {
		t.Errorf("%s: non-zero byte at offset %d, after the last record (ending at %d)", name, active.size+int64(i), active.size)
	}
}

// writeSpool lays out a spool directory by hand: an ID file (unless noID)
// and the given segment files.
func writeSpool(t testing.TB, dir string, noID bool, segs map[int64][]byte) {
	t.Helper()
	if !noID {
		if err := os.WriteFile(filepath.Join(dir, idFileName), []byte("00112233445566778899aabbccddeeff\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for first, b := range segs {
		if err := os.WriteFile(filepath.Join(dir, segName(first)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoverCases(t *testing.T) {
	seg := func(pairs ...any) map[int64][]byte {
		m := map[int64][]byte{}
		for i := 0; i < len(pairs); i += 2 {
			m[int64(pairs[i].(int))] = pairs[i+1].([]byte)
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		segs    map[int64][]byte
		noID    bool
		extra   string // another file to create
		wantErr error
		want    []int64 // retained positions
		next    int64   // the next Append's position
	}{
		{name: "clean, two segments", segs: seg(1, build(1, 3), 4, build(4, 1, 1)), want: seq(1, 5), next: 6},
		{name: "preallocated, two segments", segs: seg(1, pad(build(1, 3)), 4, pad(build(4, 1, 1))), want: seq(1, 5), next: 6},
		{name: "preallocated, empty", segs: seg(1, pad(nil)), want: nil, next: 1},
		{name: "preallocated older segment: zeroed last record", segs: seg(1, pad(zero(build(1, 3), 2)), 4, pad(build(4, 1))), wantErr: ErrCorrupt},
		{name: "preallocated older segment: zeroed record before others", segs: seg(1, pad(zero(build(1, 3), 1)), 4, pad(build(4, 1))), wantErr: ErrCorrupt},
		{name: "preallocated older segment: junk after the zeros", segs: seg(1, append(build(1, 3), pad([]byte("junk"))...), 4, pad(build(4, 1))), wantErr: ErrCorrupt},
		{name: "corrupt record in the middle of an older segment", segs: seg(1, damage(build(1, 5), 1), 6, build(6, 2)), wantErr: ErrCorrupt},
		{name: "corrupt last record of an older segment", segs: seg(1, damage(build(1, 3), 2), 4, build(4, 1)), wantErr: ErrCorrupt},
		{name: "torn tail of an older segment", segs: seg(1, build(1, 3)[:3*recFrame-4], 4, build(4, 1)), wantErr: ErrCorrupt},
		{name: "wrong position in an older segment", segs: seg(1, append(build(1, 2), build(4, 1)...), 5, build(5, 1)), wantErr: ErrCorrupt},
		{name: "missing segment", segs: seg(1, build(1, 2), 5, build(5, 1)), wantErr: ErrCorrupt},
		{name: "last segment: damage followed by a later write", segs: seg(1, damage(build(1, 2, 2, 2), 1)), wantErr: ErrCorrupt},
		{name: "last segment: damage just before a later write", segs: seg(1, damage(build(1, 2, 2, 2), 2)), wantErr: ErrCorrupt},
		// A damaged commit frame of the next-to-last write looks exactly like
		// a torn final write (nothing shows where the groups split), so it is
		// zeroed: the documented limit of what recovery can prove.
		{name: "last segment: damaged commit frame before the final write", segs: seg(1, damage(build(1, 2, 2, 2), 3)), want: seq(1, 3), next: 4},
		{name: "last segment: damage in the final write", segs: seg(1, damage(build(1, 2, 3), 3)), want: seq(1, 3), next: 4},
		{name: "last segment: damaged first frame of the final write", segs: seg(1, damage(build(1, 2, 2), 2)), want: seq(1, 2), next: 3},
		{name: "last segment: hole in the final write", segs: seg(1, zero(build(1, 1, 3), 1)), want: seq(1, 1), next: 2},
		{name: "preallocated last segment: torn final write", segs: seg(1, pad(build(1, 2, 2)[:3*recFrame+5])), want: seq(1, 3), next: 4},
		{name: "preallocated last segment: hole in the final write", segs: seg(1, pad(zero(build(1, 1, 3), 1))), want: seq(1, 1), next: 2},
		{name: "preallocated last segment: only the end of the final write landed", segs: seg(1, pad(zero(zero(build(1, 1, 3), 1), 2))), want: seq(1, 1), next: 2},
		{name: "preallocated last segment: zeroed records before a later write", segs: seg(1, pad(zero(build(1, 2, 2, 2), 1))), wantErr: ErrCorrupt},
		{name: "preallocated last segment: junk far after the records", segs: seg(1, append(build(1, 2), pad(append(make([]byte, 1000), "junk"...))...)), want: seq(1, 2), next: 3},
		{name: "last segment: damaged commit frame of the final write", segs: seg(1, damage(build(1, 2, 2), 3)), want: seq(1, 3), next: 4},
		{name: "last segment: zero-filled tail", segs: seg(1, append(build(1, 2), make([]byte, 100)...)), want: seq(1, 2), next: 3},
		{name: "last segment: short header", segs: seg(1, append(build(1, 2), magicV1, 0, 1)), want: seq(1, 2), next: 3},
		{name: "last segment: garbage only", segs: seg(1, []byte("not a segment at all, just some text")), want: nil, next: 1},
		{name: "last segment: damage after older segments", segs: seg(1, build(1, 2), 3, damage(build(3, 1, 1), 1)), want: seq(1, 3), next: 4},
		{name: "empty last segment after a roll", segs: seg(1, build(1, 3), 4, []byte{}), want: seq(1, 3), next: 4},
		{name: "everything trimmed", segs: seg(7, []byte{}), want: nil, next: 7},
		{name: "older segments trimmed", segs: seg(10, build(10, 2)), want: seq(10, 11), next: 12},
		{name: "ID file missing", segs: seg(1, build(1, 1)), noID: true, wantErr: ErrCorrupt},
		{name: "unexpected segment name", segs: seg(1, build(1, 1)), extra: "42.seg", wantErr: ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSpool(t, dir, tc.noID, tc.segs)
			if tc.extra != "" {
				if err := os.WriteFile(filepath.Join(dir, tc.extra), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l, err := Open(dir, Options{SegmentBytes: testSegBytes})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			got := readAll(t, l)
			if !slices.Equal(positions(got), tc.want) {
				t.Fatalf("retained %v, want %v", positions(got), tc.want)
			}
			for _, r := range got {
				if !bytes.Equal(r.Data, rec(int(r.Pos))) {
					t.Errorf("record %d = %q", r.Pos, r.Data)
				}
			}
			if l.Last() != tc.next-1 {
				t.Errorf("Last %d, want %d", l.Last(), tc.next-1)
			}
			checkSegFiles(t, l, testSegBytes)
			pos, err := l.Append(context.Background(), rec(int(tc.next)))
			if err != nil || pos != tc.next {
				t.Fatalf("Append = %d, %v; want %d", pos, err, tc.next)
			}
			l.Close()
			l = mustOpen(t, dir, Options{SegmentBytes: testSegBytes})
			if st := l.Stats(); st.ZeroedOnOpen != 0 {
				t.Errorf("second reopen zeroed %d bytes", st.ZeroedOnOpen)
			}
			if got := positions(readAll(t, l)); !slices.Equal(got, append(tc.want, tc.next)) {
				t.Errorf("after reopen: %v", got)
			}
		})
	}
}

// fiveRecords makes a spool of five records appended one by one and returns
// its ID file, its segment's bytes (preallocated: zeros follow the records)
// and the offsets where the last record's frame starts and ends.
func fiveRecords(t *testing.T) (id, seg []byte, lastOff, end int) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: testSegBytes})
	for i := 1; i <= 5; i++ {
		appendAll(t, l, rec(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	id, err := os.ReadFile(filepath.Join(dir, idFileName))
	if err != nil {
		t.Fatal(err)
	}
	seg, err = os.ReadFile(filepath.Join(dir, segName(1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(seg) != testSegBytes {
		t.Fatalf("segment has %d bytes, want %d (preallocated)", len(seg), testSegBytes)
	}
	return id, seg, 4 * recFrame, 5 * recFrame
}

// checkRecovered opens a spool made from four good records plus a damaged
// fifth and checks the fifth is gone, the rest intact, the file
// preallocated and zero after them, and appends work.
func checkRecovered(t *testing.T, id, seg []byte, wantZeroed int64) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, idFileName), id, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, dir, Options{SegmentBytes: testSegBytes})
	got := readAll(t, l)
	if !slices.Equal(positions(got), seq(1, 4)) {
		t.Fatalf("retained %v, want 1..4", positions(got))
	}
	for _, r := range got {
		if !bytes.Equal(r.Data, rec(int(r.Pos))) {
			t.Errorf("record %d = %q", r.Pos, r.Data)
		}
	}
	if st := l.Stats(); st.ZeroedOnOpen != wantZeroed {
		t.Errorf("ZeroedOnOpen %d, want %d", st.ZeroedOnOpen, wantZeroed)
	}
	checkSegFiles(t, l, testSegBytes)
	appendAll(t, l, []byte("after recovery")) // at position 5
	if got, err := l.Read(5, 0, 0); err != nil || len(got) != 1 || string(got[0].Data) != "after recovery" {
		t.Fatalf("Read(5) = %v, %v", got, err)
	}
}

// nonZeroLen is the length of b up to and including its last non-zero byte.
func nonZeroLen(b []byte) int { return len(bytes.TrimRight(b, "\x00")) }

// TestTornTail tears the last record at every byte, as a crash during its
// write would: in a preallocated file the bytes it did not reach are still
// zero; in a file that grew with each write (as an older version wrote
// them) the file ends there. Recovery zeroes the torn bytes either way, and
// re-extends the short file.
func TestTornTail(t *testing.T) {
	id, seg, lastOff, end := fiveRecords(t)
	for cut := lastOff; cut < end; cut++ {
		torn := int64(nonZeroLen(seg[lastOff:cut]))
		t.Run(fmt.Sprint("zeros after cut=", cut), func(t *testing.T) {
			b := bytes.Clone(seg)
			clear(b[cut:end])
			checkRecovered(t, id, b, torn)
		})
		t.Run(fmt.Sprint("file ends at cut=", cut), func(t *testing.T) {
			checkRecovered(t, id, seg[:cut], torn)
		})
	}
}

// TestFlippedByte damages every byte of the last record in turn.
func TestFlippedByte(t *testing.T) {
	id, seg, lastOff, end := fiveRecords(t)
	for i := lastOff; i < end; i++ {
		for _, mask := range []byte{0x01, 0x80} {
			t.Run(fmt.Sprintf("byte=%d/mask=%#x", i, mask), func(t *testing.T) {
				b := bytes.Clone(seg)
				b[i] ^= mask
				checkRecovered(t, id, b, int64(nonZeroLen(b[lastOff:])))
			})
		}
	}
}

// faults makes the next few writes or fsyncs of a faultyFile fail. If gate
// is set, the next fsync signals entered and then waits for gate to close.
type faults struct {
	writes, syncs atomic.Int32
	gate, entered chan struct{}
}

var errInjected = errors.New("injected fault")

// faultyFile is a segment file whose writes and fsyncs fail on demand; a
// failed write still writes half its bytes, like a full disk mid-write.
type faultyFile struct {
	*os.File
	f *faults
}

func (ff faultyFile) WriteAt(b []byte, off int64) (int, error) {
	if ff.f.writes.Add(-1) >= 0 {
		n, _ := ff.File.WriteAt(b[:len(b)/2], off)
		return n, errInjected
	}
	return ff.File.WriteAt(b, off)
}

func (ff faultyFile) Datasync() error {
	if ff.f.gate != nil {
		select {
		case ff.f.entered <- struct{}{}:
		default:
		}
		<-ff.f.gate
	}
	if ff.f.syncs.Add(-1) >= 0 {
		return errInjected
	}
	return datasync(ff.File)
}

func openFaulty(t *testing.T, dir string) (*Log, *faults) {
	f := &faults{}
	l, err := open(dir, Options{SegmentBytes: testSegBytes}, func(file *os.File) segFile { return faultyFile{file, f} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, f
}

// TestWriteFailureRollsBack: a failed write (say a full disk) is undone, so
// the Log stays usable and the failed record's position goes to the next
// one. Undone means zeroed again where the file was preallocated, and cut
// off where the write extended it.
func TestWriteFailureRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		failed []byte
	}{
		{"in place", rec(99)},
		{"past the preallocated end", bytes.Repeat([]byte("x"), 3*testSegBytes)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, f := openFaulty(t, dir)
			appendAll(t, l, rec(1), rec(2), rec(3))
			f.writes.Store(1)
			if _, err := l.Append(context.Background(), tc.failed); !errors.Is(err, errInjected) || errors.Is(err, ErrFailed) {
				t.Fatalf("Append with failing write: %v", err)
			}
			for _, name := range segFiles(t, dir) {
				if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() != testSegBytes {
					t.Errorf("%s after the rollback: %v, %v; want %d bytes", name, st.Size(), err, testSegBytes)
				}
			}
			checkSegFiles(t, l, testSegBytes)
			appendAll(t, l, rec(4)) // lands at 4: position 4 was never durable
			check := func(l *Log) {
				got := readAll(t, l)
				if !slices.Equal(positions(got), seq(1, 4)) {
					t.Fatalf("positions %v", positions(got))
				}
				for _, r := range got {
					if !bytes.Equal(r.Data, rec(int(r.Pos))) {
						t.Errorf("record %d = %q", r.Pos, r.Data)
					}
				}
			}
			check(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, Options{SegmentBytes: testSegBytes})
			check(l)
			if st := l.Stats(); st.ZeroedOnOpen != 0 {
				t.Errorf("reopen zeroed %d bytes: the rollback left junk", st.ZeroedOnOpen)
			}
		})
	}
}

// TestSyncFailureFails: after a failed fsync nothing is known about the file,
// so the Log refuses appends until reopened, and reopening recovers.
func TestSyncFailureFails(t *testing.T) {
	dir := t.TempDir()
	l, f := openFaulty(t, dir)
	appendAll(t, l, rec(1), rec(2), rec(3))
	f.syncs.Store(1)
	_, err := l.Append(context.Background(), rec(4))
	if !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
		t.Fatalf("Append with failing fsync: %v", err)
	}
	if _, err := l.Append(context.Background(), rec(5)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after failed fsync: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, Options{SegmentBytes: testSegBytes})
	got := readAll(t, l)
	// Record 4 reached the page cache, so the reopened Log may keep it
	// (its Append reported failure: replaying it is harmless).
	if n := len(got); n < 3 || n > 4 || !slices.Equal(positions(got), seq(1, int64(n))) {
		t.Fatalf("after reopen: %v", positions(got))
	}
	for _, r := range got {
		if !bytes.Equal(r.Data, rec(int(r.Pos))) {
			t.Errorf("record %d = %q", r.Pos, r.Data)
		}
	}
	appendAll(t, l, rec(len(got)+1))
}

// TestAppendCancelWhileWaiting: an Append cancelled while its record is
// being written returns ctx.Err() but the record still lands; one cancelled
// while still queued is dropped and uses no position.
func TestAppendCancelWhileWaiting(t *testing.T) {
	l, f := openFaulty(t, t.TempDir())
	f.gate, f.entered = make(chan struct{}), make(chan struct{}, 1)

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := l.Append(ctxA, rec(1)); errA <- err }()
	<-f.entered // the writer took A and is in its fsync

	ctxB, cancelB := context.WithCancel(context.Background())
	errB := make(chan error, 1)
	go func() { _, err := l.Append(ctxB, rec(2)); errB <- err }()
	for queued := 0; queued == 0; { // B is queued behind the fsync
		l.mu.Lock()
		queued = len(l.queue)
		l.mu.Unlock()
		runtime.Gosched()
	}
	cancelA()
	cancelB()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("A: %v", err)
	}
	if err := <-errB; !errors.Is(err, context.Canceled) {
		t.Errorf("B: %v", err)
	}
	close(f.gate)

	pos, err := l.Append(context.Background(), rec(3))
	if err != nil || pos != 2 {
		t.Fatalf("Append = %d, %v; want 2 (A took 1, B none)", pos, err)
	}
	got := readAll(t, l)
	if len(got) != 2 || !bytes.Equal(got[0].Data, rec(1)) || !bytes.Equal(got[1].Data, rec(3)) {
		t.Errorf("records %v", got)
	}
}
