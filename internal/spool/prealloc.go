package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Preallocation. Every segment file is written full of zeros to
// Options.SegmentBytes and fsync'd before its first record, so that a
// commit overwrites zeros in place: the file's size and block map never
// change, and the per-commit flush is an fdatasync of data pages only,
// with no journal commit of inode metadata. A frame's first byte is never
// zero (see frame.go), so the zeros after the last frame read as the end of
// the log.
//
// The writer does not stop for the zero-filling: once the active segment is
// half full it starts a background goroutine that prepares the next file
// under spareFileName, and a roll only renames that file to the new
// segment's name and fsyncs the directory. A segment name therefore only
// ever appears on a complete, durable file of zeros. The spare's name does
// not end in segSuffix, so Open never takes a spare a crash left behind for
// a segment; it removes it, since it may be incomplete.

// spareFileName is the next segment file while it is being prepared.
const spareFileName = "SPARE"

// zeroChunk is how many bytes writeZeros writes and nonZeroEnd reads at a
// time.
const zeroChunk = 256 << 10

// errStopped ends a preparation because the Log is closing.
var errStopped = errors.New("spool: closing")

// osFile is a segment file as the writer uses it in production.
type osFile struct{ *os.File }

// Datasync makes the data written so far durable; see datasync.
func (f osFile) Datasync() error { return datasync(f.File) }

// startSpare begins preparing the next segment file in the background.
// Called by the writer goroutine only, when l.spare is nil.
func (l *Log) startSpare() {
	ch := make(chan error, 1)
	l.spare = ch
	go func() { ch <- prepareSpare(l.dir, l.opts.SegmentBytes, l.quit) }()
}

// takeSpare returns once the spare file is ready: made in the background
// already, or made now if there was none or its preparation failed (it is
// retried once, here, because a transient failure must not fail a roll
// that could succeed). A failure leaves no spare and changes nothing else.
func (l *Log) takeSpare() error {
	if l.spare != nil {
		err := <-l.spare
		l.spare = nil
		if err == nil {
			return nil
		}
	}
	return prepareSpare(l.dir, l.opts.SegmentBytes, nil)
}

// dropSpare stops a preparation in progress and removes the spare file, so
// a closed spool does not keep an unused segment's worth of zeros. Called
// by the writer goroutine as it exits.
func (l *Log) dropSpare() {
	close(l.quit)
	if l.spare == nil {
		return
	}
	if err := <-l.spare; err == nil {
		_ = os.Remove(filepath.Join(l.dir, spareFileName)) // Open removes it otherwise
	}
	l.spare = nil
}

// installSpare renames the ready spare file to the segment whose first
// position is first, makes the new name durable, and opens it for the
// writer. It reopens the file rather than keeping the spare open so that
// the rename also works where open files cannot be renamed.
func (l *Log) installSpare(first int64) (segFile, error) {
	path := filepath.Join(l.dir, segName(first))
	if err := os.Rename(filepath.Join(l.dir, spareFileName), path); err != nil {
		return nil, err
	}
	if err := syncDir(l.dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return l.wrap(f), nil
}

// prepareSpare creates the spare file in dir, fills it with size zero bytes
// and fsyncs it. It gives up early when quit (nil for never) is closed. On
// failure it removes the file again.
func prepareSpare(dir string, size int64, quit <-chan struct{}) error {
	path := filepath.Join(dir, spareFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("prepare segment: %w", err)
	}
	err = writeZeros(f, 0, size, quit)
	if err == nil {
		// A full fsync: this one does change the size and the block map.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path) // best effort: Open removes a leftover spare
		return fmt.Errorf("prepare segment: %w", err)
	}
	return nil
}

// removeSpare deletes a spare file left by an earlier run.
func removeSpare(dir string) error {
	err := os.Remove(filepath.Join(dir, spareFileName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove leftover %s: %w", spareFileName, err)
	}
	return nil
}

// writeZeros writes zero bytes over [from, to) of f, a chunk at a time so
// that a whole segment needs little memory and quit (nil for never) is
// noticed between chunks.
func writeZeros(f io.WriterAt, from, to int64, quit <-chan struct{}) error {
	if to <= from {
		return nil
	}
	zeros := make([]byte, min(to-from, zeroChunk))
	for off := from; off < to; {
		select {
		case <-quit:
			return errStopped
		default:
		}
		n := min(to-off, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// nonZeroEnd returns the offset just past the last non-zero byte in
// [from, to) of f, or from if those bytes are all zero.
func nonZeroEnd(f io.ReaderAt, from, to int64) (int64, error) {
	if to <= from {
		return from, nil
	}
	buf := make([]byte, min(to-from, zeroChunk))
	zeros := make([]byte, len(buf))
	end := from
	for off := from; off < to; {
		b := buf[:min(to-off, int64(len(buf)))]
		if _, err := f.ReadAt(b, off); err != nil {
			return 0, fmt.Errorf("read at %d: %w", off, err)
		}
		if !bytes.Equal(b, zeros[:len(b)]) {
			end = off + int64(len(bytes.TrimRight(b, "\x00")))
		}
		off += int64(len(b))
	}
	return end, nil
}
