package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Frame layout, little-endian, one per record:
//
//	[0]      magic/version (magicV1)
//	[1]      flags (flagCommit marks the last frame of one write+fsync)
//	[2:6]    data length, uint32
//	[6:10]   CRC-32C over bytes [0:6], [10:18] and the data
//	[10:18]  position, uint64
//	[18:]    data
//
// The CRC covers the whole header except itself, not only position and data,
// so a flipped flag or length bit is caught as well.
//
// An all-zero header is never a valid frame: the magic is non-zero (and
// position 0 is never used either). Segments are preallocated with zeros,
// so this is what makes the zeros after the last frame read as the end of
// the log rather than as a record. Every future frame version must keep a
// non-zero first byte.
const (
	headerSize = 18
	magicV1    = 0xC5
	flagCommit = 1 << 0
	knownFlags = flagCommit
)

// Compile-time check that the magic is not zero (the constant would overflow).
const _ uint8 = magicV1 - 1

// segSuffix ends every segment file name; the stem is the first position,
// zero-padded to 20 digits so that name order is position order.
const segSuffix = ".seg"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is a decoded frame header.
type header struct {
	flags byte
	n     uint32 // data length
	crc   uint32
	pos   int64
}

// frameLen is the on-disk size of a record of n data bytes.
func frameLen(n int) int64 { return headerSize + int64(n) }

// appendFrame appends the encoded frame of one record to dst.
func appendFrame(dst []byte, pos int64, flags byte, data []byte) []byte {
	var h [headerSize]byte
	h[0] = magicV1
	h[1] = flags
	binary.LittleEndian.PutUint32(h[2:6], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[10:18], uint64(pos))
	binary.LittleEndian.PutUint32(h[6:10], frameCRC(h[:], data))
	dst = append(dst, h[:]...)
	return append(dst, data...)
}

// frameCRC is the checksum stored in h[6:10] of a frame with header h and data.
func frameCRC(h []byte, data []byte) uint32 {
	c := crc32.Update(0, castagnoli, h[0:6])
	c = crc32.Update(c, castagnoli, h[10:18])
	return crc32.Update(c, castagnoli, data)
}

// parseHeader decodes h; ok is false when the magic or flags cannot belong to
// a frame this version wrote, which callers treat like a checksum failure.
func parseHeader(h []byte) (hd header, ok bool) {
	if len(h) < headerSize || h[0] != magicV1 || h[1]&^knownFlags != 0 {
		return header{}, false
	}
	pos := binary.LittleEndian.Uint64(h[10:18])
	if pos == 0 || pos > 1<<62 {
		return header{}, false
	}
	return header{
		flags: h[1],
		n:     binary.LittleEndian.Uint32(h[2:6]),
		crc:   binary.LittleEndian.Uint32(h[6:10]),
		pos:   int64(pos),
	}, true
}

// frameAt reports the frame that starts at b[p] if it is complete, passes its
// CRC and has a position in [lo, hi]. It never reads outside b.
func frameAt(b []byte, p int, lo, hi int64) (hd header, ok bool) {
	if p < 0 || len(b)-p < headerSize {
		return header{}, false
	}
	hd, ok = parseHeader(b[p : p+headerSize])
	if !ok || hd.pos < lo || hd.pos > hi || uint64(hd.n) > uint64(len(b)-p-headerSize) {
		return header{}, false
	}
	data := b[p+headerSize : p+headerSize+int(hd.n)]
	if frameCRC(b[p:p+headerSize], data) != hd.crc {
		return header{}, false
	}
	return hd, true
}

// segName is the file name of the segment whose first position is first.
func segName(first int64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first position encoded in a segment file name;
// ok is false for any other name.
func parseSegName(name string) (first int64, ok bool) {
	stem, found := strings.CutSuffix(name, segSuffix)
	if !found || len(stem) != 20 {
		return 0, false
	}
	for _, c := range stem {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(stem, 10, 64)
	if err != nil || v < 1 {
		return 0, false
	}
	return v, true
}
