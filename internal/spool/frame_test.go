package spool

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// TestZeroIsNotAFrame: segments are preallocated with zeros, so no all-zero
// bytes may ever parse as a frame, or the end of the log would read as a
// record. The magic byte guarantees it (position 0 is refused as well).
func TestZeroIsNotAFrame(t *testing.T) {
	withPos := make([]byte, headerSize)
	binary.LittleEndian.PutUint64(withPos[10:18], 1)
	for _, tc := range []struct {
		name   string
		header []byte
	}{
		{"all zero", make([]byte, headerSize)},
		{"zero but a valid position", withPos},
		{"zero but the magic", append([]byte{magicV1}, make([]byte, headerSize-1)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if hd, ok := parseHeader(tc.header); ok {
				t.Errorf("parseHeader(% x) = %+v, ok", tc.header, hd)
			}
		})
	}
	zeros := make([]byte, 1024)
	for n := range len(zeros) + 1 {
		if hd, ok := frameAt(zeros[:n], 0, 0, math.MaxInt64); ok {
			t.Fatalf("frameAt(%d zero bytes) = %+v, ok", n, hd)
		}
	}
	seg := &segment{first: 7}
	res, err := scanSegment(bytes.NewReader(zeros), int64(len(zeros)), seg)
	if err != nil || !res.bad || seg.size != 0 || seg.last != 6 {
		t.Errorf("scan of zeros: %+v, %v; segment %+v", res, err, seg)
	}
	// And every frame written starts with a non-zero byte, whatever it holds.
	for _, data := range [][]byte{nil, {0}, make([]byte, 100)} {
		for _, flags := range []byte{0, flagCommit} {
			if b := appendFrame(nil, 1, flags, data); b[0] == 0 {
				t.Errorf("frame % x starts with zero", b[:headerSize])
			}
		}
	}
}
