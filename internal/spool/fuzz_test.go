package spool

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

// FuzzRecover writes arbitrary bytes as a segment file, or as a tail after
// three valid records, and checks that Open either fails cleanly with
// ErrCorrupt or recovers only valid records (all three valid ones, in the
// tail case), leaves the file preallocated with only zeros after them, and
// that the recovered Log appends and reads.
func FuzzRecover(f *testing.F) {
	f.Add(build(1, 2, 3), false)
	f.Add(build(1, 2, 3)[:50], false)
	f.Add(damage(build(1, 2, 2, 2), 1), false)
	f.Add(zero(build(1, 1, 3), 1), false)
	f.Add([]byte{}, false)
	f.Add([]byte{magicV1, flagCommit, 0xff, 0xff, 0xff, 0x7f}, false)
	f.Add(make([]byte, 64), true)
	f.Add(build(4, 1, 2), true)
	f.Add(damage(build(4, 1, 2, 1), 0), true)
	f.Add(build(1, 3)[:40], true)
	f.Add([]byte("garbage"), true)
	f.Add(pad(build(1, 2, 3)), false)
	f.Add(pad(zero(build(1, 1, 3), 1)), false)
	f.Add(pad(damage(build(1, 2, 2, 2), 1)), false)
	f.Add(append(make([]byte, 100), "junk"...), true)
	f.Add(append(zero(build(4, 1, 2), 1), make([]byte, 200)...), true)
	f.Fuzz(func(t *testing.T, b []byte, asTail bool) {
		dir := t.TempDir()
		content, keep := b, 0
		if asTail {
			content, keep = append(build(1, 2, 1), b...), 3
		}
		writeSpool(t, dir, false, map[int64][]byte{1: content})
		l, err := Open(dir, Options{SegmentBytes: testSegBytes, MaxRecord: 1 << 16})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want a clean ErrCorrupt", err)
			}
			return
		}
		defer l.Close()
		checkSegFiles(t, l, testSegBytes)
		got, err := l.Read(1, 0, 0) // Read checks every CRC again
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if !slices.Equal(positions(got), seq(1, l.Last())) {
			t.Fatalf("positions %v, Last %d", positions(got), l.Last())
		}
		if len(got) < keep {
			t.Fatalf("only %d records kept, the first %d were valid", len(got), keep)
		}
		for _, r := range got[:keep] {
			if !bytes.Equal(r.Data, rec(int(r.Pos))) {
				t.Fatalf("valid record %d became %q", r.Pos, r.Data)
			}
		}
		next := l.Last() + 1
		pos, err := l.Append(context.Background(), []byte("after"))
		if err != nil || pos != next {
			t.Fatalf("Append = %d, %v; want %d", pos, err, next)
		}
		if got, err := l.Read(next, 0, 0); err != nil || len(got) != 1 || string(got[0].Data) != "after" {
			t.Fatalf("Read(%d) = %v, %v", next, got, err)
		}
	})
}
