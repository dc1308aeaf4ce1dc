package spool

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"sort"
)

// segment is one file of the log. Its fields are guarded by Log.mu; the file
// bytes below size are durable and never change again.
type segment struct {
	first int64        // position of its first record, also its file name
	last  int64        // last durable position in it; first-1 while empty
	size  int64        // durable bytes of frames; zeros follow them in the file
	index []indexEntry // sparse: the first record, then one every indexStride bytes
}

// indexEntry says that the record at pos starts at byte off of its segment.
type indexEntry struct{ pos, off int64 }

// indexStride bounds how far Read scans from an index entry to the first
// record it wants, while keeping the index tiny (16 bytes per 64 KiB, so a
// 1 GiB backlog costs 256 KiB of memory).
const indexStride = 64 << 10

// addIndex records that pos starts at off if off is far enough from the
// previous entry.
func (s *segment) addIndex(pos, off int64) {
	if n := len(s.index); n == 0 || off-s.index[n-1].off >= indexStride {
		s.index = append(s.index, indexEntry{pos, off})
	}
}

// seek returns the latest indexed record at or before from, where a scan for
// from can start.
func (s *segment) seek(from int64) indexEntry {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].pos > from })
	if i == 0 {
		return indexEntry{pos: s.first, off: 0}
	}
	return s.index[i-1]
}

// scanResult is what scanSegment found.
type scanResult struct {
	bad    bool   // the bytes from seg.size on are not a whole, valid frame (zeros included)
	reason string // why, when bad
}

// scanSegment reads the frames of a segment file of the given size from the
// start, checking each one's CRC and that positions run seg.first,
// seg.first+1, …; it fills seg's last, size and index with the valid prefix
// and stops at the first frame that is short, malformed, out of sequence or
// fails its CRC. Only I/O failures are errors; damage is reported in the
// result because what it means depends on which segment this is, and on
// whether the bytes from seg.size on are the preallocated zeros (the usual
// end of a segment, reported as bad like any other header that does not
// parse).
func scanSegment(f io.ReaderAt, size int64, seg *segment) (scanResult, error) {
	seg.last, seg.size, seg.index = seg.first-1, 0, nil
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 256<<10)
	var hb [headerSize]byte
	scratch := make([]byte, 32<<10)
	for off := int64(0); off < size; {
		rest := size - off
		if rest < headerSize {
			return scanResult{true, fmt.Sprintf("short header (%d bytes)", rest)}, nil
		}
		if _, err := io.ReadFull(br, hb[:]); err != nil {
			return scanResult{}, fmt.Errorf("read header at %d: %w", off, err)
		}
		hd, ok := parseHeader(hb[:])
		switch {
		case !ok:
			return scanResult{true, "malformed header"}, nil
		case hd.pos != seg.last+1:
			return scanResult{true, fmt.Sprintf("position %d, want %d", hd.pos, seg.last+1)}, nil
		case int64(hd.n) > rest-headerSize:
			return scanResult{true, fmt.Sprintf("short data (%d of %d bytes)", rest-headerSize, hd.n)}, nil
		}
		// Stream the data through the CRC instead of buffering it: a
		// corrupt length may claim most of the file.
		c := crc32.Update(0, castagnoli, hb[0:6])
		c = crc32.Update(c, castagnoli, hb[10:18])
		for left := int(hd.n); left > 0; {
			chunk := scratch[:min(left, len(scratch))]
			if _, err := io.ReadFull(br, chunk); err != nil {
				return scanResult{}, fmt.Errorf("read data at %d: %w", off, err)
			}
			c = crc32.Update(c, castagnoli, chunk)
			left -= len(chunk)
		}
		if c != hd.crc {
			return scanResult{true, "checksum mismatch"}, nil
		}
		seg.addIndex(hd.pos, off)
		off += frameLen(int(hd.n))
		seg.last, seg.size = hd.pos, off
	}
	return scanResult{}, nil
}

// ackedAfter reports whether rest, the bytes after the first damaged frame of
// the last segment, prove that the damage hit acknowledged records rather
// than a torn final write.
//
// Every write+fsync ends with a frame flagged flagCommit, and the next write
// starts only after that fsync returned. A torn write is always the last
// one, so nothing valid can follow its commit frame. Hence a valid commit
// frame followed directly by the next position means the damaged bytes
// before it were fsync'd and acknowledged: zeroing would lose them, so
// Open must fail instead. (Damage inside the very last write group with no
// later write is indistinguishable from a torn write and is zeroed.)
//
// Candidates must have positions just above lastGood, which rules out stale
// frames of older files.
func ackedAfter(rest []byte, lastGood int64) bool {
	lo, hi := lastGood+1, lastGood+1+int64(len(rest)/headerSize)
	for p := 0; ; p++ {
		i := bytes.IndexByte(rest[p:], magicV1)
		if i < 0 {
			return false
		}
		p += i
		hd, ok := frameAt(rest, p, lo, hi)
		if !ok || hd.flags&flagCommit == 0 {
			continue
		}
		next, ok := frameAt(rest, p+int(frameLen(int(hd.n))), lo, hi)
		if ok && next.pos == hd.pos+1 {
			return true
		}
	}
}
