package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// span is the durable part of one segment that a Read scans.
type span struct {
	first int64      // the segment's first position (its name)
	start indexEntry // where scanning starts
	end   int64      // durable size: bytes past it may be mid-write
}

// Read returns durable records with Pos >= from, in position order: at most
// maxRecords of them and at most maxBytes of data, but always at least one if
// any exists, however large. A limit <= 0 means no limit. If from is below
// the oldest retained record (it was trimmed) Read starts at the oldest
// retained one. Read runs concurrently with Append and never returns a record
// whose fsync has not completed. The records' Data are fresh copies.
func (l *Log) Read(from int64, maxRecords int, maxBytes int) ([]Record, error) {
	l.trimMu.RLock()
	defer l.trimMu.RUnlock()

	// Snapshot what is durable now; later appends do not touch these bytes.
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	from = max(from, 1)
	if from > l.durable {
		l.mu.Unlock()
		return nil, nil
	}
	i := max(sort.Search(len(l.segs), func(i int) bool { return l.segs[i].first > from })-1, 0)
	spans := make([]span, 0, len(l.segs)-i)
	for j, s := range l.segs[i:] {
		sp := span{first: s.first, start: indexEntry{pos: s.first}, end: s.size}
		if j == 0 {
			sp.start = s.seek(from)
		}
		spans = append(spans, sp)
	}
	l.mu.Unlock()

	rd := reader{from: from, maxRecords: maxRecords, maxBytes: maxBytes}
	for _, sp := range spans {
		full, err := rd.readSpan(filepath.Join(l.dir, segName(sp.first)), sp)
		if err != nil {
			return rd.out, fmt.Errorf("spool: read %s: %w", segName(sp.first), err)
		}
		if full {
			break
		}
	}
	return rd.out, nil
}

// reader accumulates one Read's records across segments.
type reader struct {
	from                 int64
	maxRecords, maxBytes int
	out                  []Record
	bytes                int
	hb                   [headerSize]byte
}

// readSpan appends the records of sp with Pos >= rd.from to rd.out; full
// reports that a limit was reached. The bytes were verified when written or
// recovered, so any mismatch now is corruption on disk.
func (rd *reader) readSpan(path string, sp span) (full bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.NewSectionReader(f, sp.start.off, sp.end-sp.start.off), 64<<10)
	pos := sp.start.pos
	for off := sp.start.off; off < sp.end; pos++ {
		if _, err := io.ReadFull(br, rd.hb[:]); err != nil {
			return false, fmt.Errorf("header at %d: %w", off, err)
		}
		hd, ok := parseHeader(rd.hb[:])
		if !ok || hd.pos != pos || int64(hd.n) > sp.end-off-headerSize {
			return false, fmt.Errorf("%w: bad header at offset %d (want position %d)", ErrCorrupt, off, pos)
		}
		off += frameLen(int(hd.n))
		if hd.pos < rd.from {
			if _, err := br.Discard(int(hd.n)); err != nil {
				return false, fmt.Errorf("skip data of position %d: %w", hd.pos, err)
			}
			continue
		}
		if rd.maxRecords > 0 && len(rd.out) >= rd.maxRecords ||
			rd.maxBytes > 0 && len(rd.out) > 0 && rd.bytes+int(hd.n) > rd.maxBytes {
			return true, nil
		}
		data := make([]byte, hd.n)
		if _, err := io.ReadFull(br, data); err != nil {
			return false, fmt.Errorf("data of position %d: %w", hd.pos, err)
		}
		if frameCRC(rd.hb[:], data) != hd.crc {
			return false, fmt.Errorf("%w: checksum mismatch at position %d", ErrCorrupt, hd.pos)
		}
		rd.out = append(rd.out, Record{Pos: hd.pos, Data: data})
		rd.bytes += len(data)
	}
	return rd.maxRecords > 0 && len(rd.out) >= rd.maxRecords, nil
}

// Trim declares records with Pos <= through no longer needed (they are in
// the database) and deletes every segment file whose records all are. The
// active segment is never deleted, even when through covers all of it: its
// name carries the next position across a restart.
func (l *Log) Trim(through int64) error {
	l.trimMu.Lock()
	defer l.trimMu.Unlock()
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		if len(l.segs) < 2 || l.segs[1].first-1 > through {
			l.mu.Unlock()
			return nil
		}
		victim := l.segs[0].first
		l.mu.Unlock()

		// Oldest first, with a directory fsync after each removal, so that a
		// crash mid-Trim leaves a contiguous run of segments: Open treats a
		// gap as a lost segment.
		err := os.Remove(filepath.Join(l.dir, segName(victim)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spool: trim through %d: %w", through, err)
		}
		if err := syncDir(l.dir); err != nil {
			return fmt.Errorf("spool: trim through %d: %w", through, err)
		}
		l.mu.Lock()
		l.segs = slices.Delete(l.segs, 0, 1)
		l.mu.Unlock()
	}
}
