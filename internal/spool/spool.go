// Package spool is a crash-safe, append-only local record log with group
// commit: the outbox of the inference server. Every answered request's query
// record and audit event is appended here, and Append returns only once the
// record is fsync'd, so the response can be sent knowing a kill -9 or a power
// cut cannot lose it. A background flusher Reads records, copies them into the
// database, and Trims the log; while the database is down the log just grows.
//
// # Positions
//
// Records get positions 1, 2, 3, … without gaps, in file order. A position is
// never given to two durable records, across restarts and trims: the active
// (last) segment is never deleted, and its name is its first position, so the
// next position always survives. The flusher can therefore use
// (ID, position) as an idempotency key in the database.
//
// # Group commit
//
// One writer goroutine owns the active file. Append queues a record and waits;
// the writer takes everything queued (up to maxBatchBytes), assigns positions,
// writes it with one write call and one fdatasync, then wakes all of those
// callers. While it waits for one fdatasync the next batch queues up, so with
// many concurrent appenders each one carries many records, and a lone
// appender pays exactly one. Positions are assigned by the writer, not at
// enqueue, so a failed write consumes none and a cancelled Append that the
// writer has not taken yet is simply dropped.
//
// # Files
//
// A segment file is a sequence of frames (see frame.go) named by its first
// position, followed by zeros: every segment is preallocated, written full
// of zeros to Options.SegmentBytes and fsync'd before it takes records (see
// prealloc.go), so that appends overwrite zeros in place and the cheap
// fdatasync makes them durable. The writer rolls to a new segment before a
// write that would take the active one's records past Options.SegmentBytes.
// Beside the segments the directory holds ID (the spool's identity), LOCK
// (an flock against a second process opening the same spool) and, while
// the next segment is being prepared, SPARE.
//
// # Recovery
//
// Open scans every segment. The zeros after the last valid frame are the
// end of the log. Older segments were fsync'd before the next was created,
// so any other damage there is corruption of acknowledged data and an
// error. In the last segment, non-zero bytes after the last valid frame are
// a torn write whose fsync never returned, so nothing there was
// acknowledged: they are overwritten with zeros (and fsync'd), which keeps
// the file preallocated — unless a later complete write follows the damage
// (see ackedAfter), which proves it hit acknowledged records. A last
// segment shorter than Options.SegmentBytes (written by an older version,
// or with a smaller SegmentBytes) is extended with zeros.
package spool

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Defaults applied to zero Options fields. A segment is zero-filled before
// use, so its size is also the write that a roll prepares in the
// background (about 10 ms for 16 MiB on a cloud SSD); 16 MiB is
// PostgreSQL's WAL segment size too.
const (
	DefaultSegmentBytes = 16 << 20
	DefaultMaxRecord    = 4 << 20
)

// maxBatchBytes caps one group commit so a deep queue does not turn into one
// huge write that delays its first caller; the rest waits for the next fsync.
const maxBatchBytes = 4 << 20

// File names beside the segments.
const (
	idFileName   = "ID"
	lockFileName = "LOCK"
)

// Errors callers can branch on. All others are wrapped I/O errors.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge rejects a record longer than Options.MaxRecord.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrCorrupt means the files hold damage that recovery must not paper over
	// because it may have destroyed acknowledged records.
	ErrCorrupt = errors.New("spool: corrupt")
	// ErrFailed means an fsync (or rollback) failed, so what is on disk is
	// unknown; the Log refuses further appends until it is reopened, which
	// recovers from the files.
	ErrFailed = errors.New("spool: failed, reopen to recover")
	// ErrLocked means another Log (in this or another process) has the directory open.
	ErrLocked = errors.New("spool: directory in use")
)

// Options configures a Log. Zero fields take the defaults.
type Options struct {
	// SegmentBytes is the size a segment file is preallocated to; the
	// writer rolls to a new segment when the next record would not fit in
	// what is left. A record larger than a whole segment gets a segment of
	// its own, which it extends. Default 16 MiB.
	SegmentBytes int64
	MaxRecord    int // largest accepted record in bytes (default 4 MiB)
}

// Record is one durable record.
type Record struct {
	Pos  int64
	Data []byte
}

// Stats are cumulative counters of a Log since Open, for metrics.
type Stats struct {
	Records      int64 // records made durable
	Syncs        int64 // fdatasyncs of segment data (one per group commit)
	Bytes        int64 // bytes of records written to segments, headers included
	ZeroedOnOpen int64 // bytes of torn tail that Open overwrote with zeros
}

// segFile is what the writer needs of the active segment; an interface only
// so that tests can inject write and fsync failures.
type segFile interface {
	io.WriterAt
	Datasync() error // fdatasync where available (see datasync), else fsync
	Truncate(size int64) error
	Close() error
}

// Log is an open spool. All methods are safe for concurrent use.
type Log struct {
	dir  string
	opts Options
	id   string
	lock *os.File

	// trimMu is held shared by Read while it reads segment files and
	// exclusively by Trim while it deletes them, so Read never finds a file
	// gone under it.
	trimMu sync.RWMutex

	mu      sync.Mutex
	queue   []*request // waiting for the writer, in arrival order
	closed  bool
	failed  error      // wraps ErrFailed; set once the on-disk state is unknown
	segs    []*segment // oldest first; the last is active
	durable int64      // last durable position; mirrored in last for lock-free reads

	last   atomic.Int64
	wake   chan struct{} // capacity 1: "the queue is not empty or closed changed"
	notify chan struct{} // capacity 1: "a record became durable"
	done   chan struct{} // closed when the writer has exited

	// Owned by the writer goroutine (set up by Open before it starts).
	active    segFile
	activeSeg *segment
	next      int64      // position of the next record written
	size      int64      // bytes of records in the active segment
	alloc     int64      // size of the active segment file, >= size
	spare     chan error // non-nil while a spare is prepared in the background; receives its outcome
	buf       []byte
	batch     []*request
	newIndex  []indexEntry
	wrap      func(*os.File) segFile

	quit chan struct{} // closed when the writer exits, to stop a spare's preparation

	records, syncs, bytes atomic.Int64
	zeroed                int64
}

// request is one Append waiting for the writer.
type request struct {
	data      []byte // a copy: the caller may reuse its slice once Append returns
	taken     bool   // guarded by Log.mu: the writer has it, so cancellation cannot withdraw it
	cancelled bool   // guarded by Log.mu: withdrawn before the writer took it
	pos       int64  // set by the writer before done is closed
	err       error
	done      chan struct{}
}

// Open opens the spool in dir, creating dir (0700) and the spool if needed,
// and recovers from a crash: a torn tail of the last segment is overwritten
// with zeros, damage that may have hit acknowledged records fails with
// ErrCorrupt. Open reads every segment once to verify it, and creating a
// spool writes its first segment full of zeros.
func Open(dir string, opts Options) (*Log, error) { return open(dir, opts, nil) }

// open is Open with a hook that wraps every segment file the writer uses,
// so that tests can inject write and fsync failures.
func open(dir string, opts Options, wrap func(*os.File) segFile) (*Log, error) {
	if wrap == nil {
		wrap = func(f *os.File) segFile { return osFile{f} }
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.MaxRecord == 0 {
		opts.MaxRecord = DefaultMaxRecord
	}
	if opts.SegmentBytes <= headerSize || opts.MaxRecord < 0 || int64(opts.MaxRecord) > math.MaxUint32 {
		return nil, fmt.Errorf("spool: open %s: invalid options %+v", dir, opts)
	}
	if err := makeDir(dir); err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	l := &Log{
		dir:    dir,
		opts:   opts,
		lock:   lock,
		wake:   make(chan struct{}, 1),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
		wrap:   wrap,
	}
	if err := l.load(); err != nil {
		if l.active != nil {
			l.active.Close()
		}
		lock.Close()
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	go l.run()
	return l, nil
}

// makeDir creates dir if missing and makes its entry durable in the parent.
func makeDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// load recovers the segments, opens the active one and sets up the ID.
func (l *Log) load() error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var firsts []int64
	for _, e := range entries {
		if first, ok := parseSegName(e.Name()); ok {
			firsts = append(firsts, first)
		} else if strings.HasSuffix(e.Name(), segSuffix) {
			return fmt.Errorf("%w: unexpected file %s", ErrCorrupt, e.Name())
		}
	}
	slices.Sort(firsts)
	if err := removeSpare(l.dir); err != nil {
		return err
	}

	if len(firsts) == 0 {
		// A new spool. Its ID is (re)made here even if an ID file exists:
		// without segments the positions restart at 1, so progress stored in
		// the database under an old ID must not apply to them. The ID is
		// made durable before the segment is created, so an existing segment
		// always has its ID beside it.
		if err := l.createID(); err != nil {
			return err
		}
		if err := syncDir(l.dir); err != nil {
			return err
		}
		if err := prepareSpare(l.dir, l.opts.SegmentBytes, nil); err != nil {
			return fmt.Errorf("create first segment: %w", err)
		}
		f, err := l.installSpare(1)
		if err != nil {
			return fmt.Errorf("create first segment: %w", err)
		}
		l.active, l.activeSeg, l.next, l.alloc = f, &segment{first: 1, last: 0}, 1, l.opts.SegmentBytes
		l.segs = []*segment{l.activeSeg}
		return nil
	}

	if l.id, err = readID(l.dir); err != nil {
		return err
	}
	next := firsts[0]
	for i, first := range firsts {
		name := segName(first)
		if first != next {
			return fmt.Errorf("%w: segment %s should start at position %d (a segment is missing)", ErrCorrupt, name, next)
		}
		isLast := i == len(firsts)-1
		flag := os.O_RDONLY
		if isLast {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(filepath.Join(l.dir, name), flag, 0)
		if err != nil {
			return err
		}
		seg := &segment{first: first}
		fileSize, err := l.recoverSegment(f, seg, isLast)
		if err == nil && isLast && fileSize < l.opts.SegmentBytes {
			// Best effort: if this fails (a full disk) appends extend the
			// file, which is correct, only slower, and the spool still
			// opens, so the flusher can drain and trim it.
			if zerr := writeZeros(f, fileSize, l.opts.SegmentBytes, nil); zerr == nil {
				fileSize = l.opts.SegmentBytes
			} else {
				fileSize, err = statSize(f)
			}
		}
		// A killed process leaves written but unsynced bytes in the page
		// cache, where the scan sees them as valid. Sync them (with the
		// zeros written above) before Read may hand them out: otherwise a
		// later power cut could drop records the database already has and
		// let their positions be reused.
		if err == nil && isLast {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("segment %s: %w", name, err)
		}
		l.segs = append(l.segs, seg)
		next = seg.last + 1
		if !isLast {
			if err := f.Close(); err != nil {
				return err
			}
			continue
		}
		l.active, l.activeSeg, l.next, l.size, l.alloc = l.wrap(f), seg, next, seg.size, fileSize
	}
	l.durable = l.next - 1
	l.last.Store(l.durable)
	// Also make durable a segment or ID entry whose creation was not yet
	// synced when the last process died.
	return syncDir(l.dir)
}

// statSize returns the size of f.
func statSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// recoverSegment scans one segment and returns its file size. Zeros after
// the last valid frame are the end of the log. Other damage in an older
// segment is an error; in the last one the torn tail is overwritten with
// zeros (the caller syncs) unless ackedAfter says it hides acknowledged
// records.
func (l *Log) recoverSegment(f *os.File, seg *segment, isLast bool) (int64, error) {
	size, err := statSize(f)
	if err != nil {
		return 0, err
	}
	res, err := scanSegment(f, size, seg)
	if err != nil || !res.bad {
		return size, err
	}
	// The scan stopped at seg.size. All zeros from there on is the
	// preallocated space: a clean end. Anything else is damage, even after
	// a stretch of zeros: a write is not persisted in order, so a torn one
	// can leave its first pages zero and later ones written.
	end, err := nonZeroEnd(f, seg.size, size)
	if err != nil || end == seg.size {
		return size, err
	}
	if !isLast {
		return 0, fmt.Errorf("%w: %s at offset %d of an older segment", ErrCorrupt, res.reason, seg.size)
	}
	// All of the rest, not only up to end: a valid frame can end in zeros.
	rest := make([]byte, size-seg.size)
	if _, err := f.ReadAt(rest, seg.size); err != nil {
		return 0, err
	}
	if ackedAfter(rest, seg.last) {
		return 0, fmt.Errorf("%w: %s at offset %d, and acknowledged records follow it", ErrCorrupt, res.reason, seg.size)
	}
	if err := writeZeros(f, seg.size, end, nil); err != nil {
		return 0, fmt.Errorf("zero torn tail: %w", err)
	}
	l.zeroed = end - seg.size
	return size, nil
}

// createID writes a new random ID. Write, fsync and rename make it appear
// whole or not at all.
func (l *Log) createID() error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	id := hex.EncodeToString(b[:])
	tmp := filepath.Join(l.dir, idFileName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create id: %w", err)
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(l.dir, idFileName))
	}
	if err != nil {
		return fmt.Errorf("create id: %w", err)
	}
	l.id = id
	return nil // the caller syncs the directory
}

// readID reads and checks the ID file of an existing spool.
func readID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, idFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: segments exist but the %s file is missing", ErrCorrupt, idFileName)
	}
	if err != nil {
		return "", err
	}
	id := string(bytes.TrimSpace(b))
	if raw, err := hex.DecodeString(id); err != nil || len(raw) != 16 {
		return "", fmt.Errorf("%w: malformed %s file", ErrCorrupt, idFileName)
	}
	return id, nil
}

// syncDir fsyncs a directory so that files created, renamed or removed in it
// survive a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// ID returns the spool's identity: 32 hex digits, random, created with the
// spool and kept in its directory. The database keys this spool's progress by it.
func (l *Log) ID() string { return l.id }

// Last returns the position of the last durable record, 0 if there never was one.
func (l *Log) Last() int64 { return l.last.Load() }

// Pending returns how many durable records have positions above after.
func (l *Log) Pending(after int64) int64 { return max(l.Last()-after, 0) }

// Notify returns a channel that receives after records become durable. It
// has capacity 1 and sends never block, so one receive may stand for many
// appends: a flusher sleeps on it and then Reads everything pending.
func (l *Log) Notify() <-chan struct{} { return l.notify }

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Records:      l.records.Load(),
		Syncs:        l.syncs.Load(),
		Bytes:        l.bytes.Load(),
		ZeroedOnOpen: l.zeroed,
	}
}

// Append writes rec and returns its position once it is durable (written and
// fsync'd). Concurrent Appends share fsyncs.
//
// If ctx ends first, Append returns ctx.Err() and the caller must treat the
// record as maybe written: if the writer had already taken it, it may still
// become durable and be Read and replayed (harmless; only one not yet taken is
// certainly dropped). On any other error the record was not made durable by
// this Log, though after ErrFailed a reopen may find it on disk.
func (l *Log) Append(ctx context.Context, rec []byte) (int64, error) {
	if len(rec) > l.opts.MaxRecord {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(rec), l.opts.MaxRecord)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &request{data: bytes.Clone(rec), done: make(chan struct{})}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return 0, ErrClosed
	case l.failed != nil:
		err := l.failed
		l.mu.Unlock()
		return 0, err
	}
	l.queue = append(l.queue, r)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}

	select {
	case <-r.done:
		return r.pos, r.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	if !r.taken {
		r.cancelled = true // the writer will skip it: definitely not written
		l.mu.Unlock()
		return 0, ctx.Err()
	}
	l.mu.Unlock()
	select {
	case <-r.done: // finished meanwhile: the real answer beats "unknown"
		return r.pos, r.err
	default:
		return 0, ctx.Err()
	}
}

// Close stops accepting appends, waits until every queued Append has its
// answer, and closes the files. Append, Read, Trim and Close then return
// ErrClosed; Last, Pending, ID and Stats keep answering.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	// Holding trimMu waits out a Read or Trim in progress before the lock is released.
	l.trimMu.Lock()
	defer l.trimMu.Unlock()
	err := l.active.Close()
	if lerr := l.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("spool: close %s: %w", l.dir, err)
	}
	return nil
}

// run is the writer goroutine: it takes queued requests and commits them,
// until Close has been called and the queue is empty.
func (l *Log) run() {
	defer close(l.done)
	defer l.dropSpare()
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.mu.Unlock()
			<-l.wake
			l.mu.Lock()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		batch := l.take()
		failed := l.failed
		l.mu.Unlock()
		if failed != nil {
			finish(batch, failed)
			continue
		}
		l.commit(batch)
	}
}

// take moves up to maxBatchBytes of queued requests (at least one) into
// l.batch, skipping cancelled ones. l.mu must be held.
func (l *Log) take() []*request {
	batch := l.batch[:0]
	n, bytes := 0, int64(0)
	for ; n < len(l.queue) && (n == 0 || bytes < maxBatchBytes); n++ {
		r := l.queue[n]
		if r.cancelled {
			continue
		}
		r.taken = true
		batch = append(batch, r)
		bytes += frameLen(len(r.data))
	}
	k := copy(l.queue, l.queue[n:])
	clear(l.queue[k:]) // drop references so finished requests can be collected
	l.queue = l.queue[:k]
	l.batch = batch
	return batch
}

// commit writes batch in as few write+fsync rounds as the segment size
// allows: normally one, two when the batch crosses a segment roll.
func (l *Log) commit(batch []*request) {
	for len(batch) > 0 {
		if l.size > 0 && l.size+frameLen(len(batch[0].data)) > l.opts.SegmentBytes {
			if err := l.roll(); err != nil {
				finish(batch, err)
				return
			}
		}
		n, bytes := 1, frameLen(len(batch[0].data))
		for n < len(batch) && l.size+bytes+frameLen(len(batch[n].data)) <= l.opts.SegmentBytes {
			bytes += frameLen(len(batch[n].data))
			n++
		}
		if err := l.write(batch[:n]); err != nil {
			finish(batch, err)
			return
		}
		batch = batch[n:]
		if l.spare == nil && l.size >= l.opts.SegmentBytes/2 {
			l.startSpare() // ready long before the roll needs it
		}
	}
}

// write appends chunk to the active segment with one write and one
// fdatasync, publishes it and wakes its callers.
//
// If the write fails the bytes it may have written are zeroed again and
// anything it appended past the preallocated end is cut off, so the
// positions were never used and the Log stays usable. If the fsync fails the
// state of the file is unknown (a failed fsync may have dropped dirty
// pages), so the Log fails for good and only a reopen, which re-reads the
// files, can recover.
func (l *Log) write(chunk []*request) error {
	buf := l.buf[:0]
	idx := l.newIndex[:0]
	for i, r := range chunk {
		var flags byte
		if i == len(chunk)-1 {
			flags = flagCommit
		}
		idx = append(idx, indexEntry{pos: l.next + int64(i), off: l.size + int64(len(buf))})
		buf = appendFrame(buf, l.next+int64(i), flags, r.data)
	}
	l.buf, l.newIndex = buf, idx
	end := l.size + int64(len(buf))
	if _, err := l.active.WriteAt(buf, l.size); err != nil {
		err = fmt.Errorf("spool: write segment %s: %w", segName(l.activeSeg.first), err)
		if rerr := l.undoWrite(end); rerr != nil {
			return l.fail(errors.Join(err, fmt.Errorf("roll back: %w", rerr)))
		}
		return err
	}
	if err := l.active.Datasync(); err != nil {
		return l.fail(fmt.Errorf("fsync segment %s: %w", segName(l.activeSeg.first), err))
	}
	l.syncs.Add(1)
	l.records.Add(int64(len(chunk)))
	l.bytes.Add(int64(len(buf)))
	l.size = end
	l.alloc = max(l.alloc, end)
	l.next += int64(len(chunk))

	l.mu.Lock()
	for _, e := range idx {
		l.activeSeg.addIndex(e.pos, e.off)
	}
	l.activeSeg.size = l.size
	l.activeSeg.last = l.next - 1
	l.durable = l.next - 1
	l.last.Store(l.durable)
	l.mu.Unlock()

	// Notify before waking the callers, so that when an Append returns its
	// notification is already pending.
	select {
	case l.notify <- struct{}{}:
	default:
	}
	for i, r := range chunk {
		r.pos = idx[i].pos
		close(r.done)
	}
	if cap(l.buf) > 2*maxBatchBytes {
		l.buf = nil // one huge record should not pin its buffer forever
	}
	return nil
}

// undoWrite restores the active segment after a failed write that was to
// end at end: it cuts off what the write appended past the preallocated
// size and zeroes what it may have overwritten below it, then syncs. The
// sync matters: a crash must not bring back a complete frame of the failed
// write once its positions are reused, and the zeros after the last frame
// must stay zeros, or recovery would take them for a torn write.
func (l *Log) undoWrite(end int64) error {
	if end > l.alloc {
		if err := l.active.Truncate(l.alloc); err != nil {
			return err
		}
		end = l.alloc
	}
	if err := writeZeros(l.active, l.size, end, nil); err != nil {
		return err
	}
	return l.active.Datasync()
}

// roll makes the spare file the new segment, named by the next position,
// and makes it active. The old segment is complete and fsync'd by now.
//
// If the spare cannot be made (most likely the disk is full) nothing has
// changed, so only the records that needed the new segment fail: the Log
// stays usable and the next roll tries again, after the flusher has
// trimmed. A failure after that is fatal like a failed fsync: the
// directory is in an unknown state.
func (l *Log) roll() error {
	if err := l.takeSpare(); err != nil {
		return fmt.Errorf("spool: roll to segment %s: %w", segName(l.next), err)
	}
	f, err := l.installSpare(l.next)
	if err != nil {
		return l.fail(fmt.Errorf("roll to segment %s: %w", segName(l.next), err))
	}
	old := l.active
	seg := &segment{first: l.next, last: l.next - 1}
	l.mu.Lock()
	l.segs = append(l.segs, seg)
	l.mu.Unlock()
	l.active, l.activeSeg, l.size, l.alloc = f, seg, 0, l.opts.SegmentBytes
	// The old file was fsync'd after its last write, so a close error
	// cannot mean lost data.
	_ = old.Close()
	return nil
}

// fail puts the Log into the failed state and returns the error to report.
func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	}
	return l.failed
}

// finish answers every request in rs with err.
func finish(rs []*request, err error) {
	for _, r := range rs {
		r.err = err
		close(r.done)
	}
}
