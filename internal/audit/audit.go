// Package audit keeps the tamper-evident audit log of PHI access (SPEC §8).
//
// Events form a hash chain: each event's Hash covers its own content and the
// previous event's Hash, so altering, removing, inserting or reordering any
// entry breaks verification. Because someone with database access could
// rewrite the whole chain consistently, or cut off its tail, signed
// checkpoints (count and head hash) are also kept outside the database and
// checked by Verify.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Genesis is the Prev of the first event: 64 hex zeros.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// canonicalVersion prefixes the hashed bytes so a future encoding can never
// collide with this one.
const canonicalVersion = "medserve-audit-event-v1"

// Outcomes accepted by Chain.Append.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeError  = "error"
)

// ErrConflict reports that an append did not extend the current head (another appender got there first).
var ErrConflict = errors.New("audit: append does not extend the head")

// Event is one audit event. Seq and Prev/Hash are set by the chain.
type Event struct {
	Seq       int64     `json:"seq"`               // 1, 2, 3 … without gaps
	Time      time.Time `json:"time"`              // UTC, truncated to microseconds (databases keep µs)
	Actor     string    `json:"actor"`             // "anonymous" until authentication exists
	Role      string    `json:"role"`              // clinician, service, auditor, admin
	Action    string    `json:"action"`            // e.g. "inference", "patient.history.read", "audit.verify"
	Resource  string    `json:"resource"`          // what was read or written
	Patient   string    `json:"patient,omitempty"` // a pseudonym, never a clear identifier
	RequestID string    `json:"request_id,omitempty"`
	Outcome   string    `json:"outcome"` // "ok", "denied", "error"
	Reason    string    `json:"reason,omitempty"`
	Prev      string    `json:"prev"` // hex hash of the previous event (Genesis for the first)
	Hash      string    `json:"hash"` // hex SHA-256 of Canonical()
}

// Canonical returns the deterministic bytes the hash covers (length-prefixed fields in a fixed order, time as RFC3339Nano UTC).
//
// Every field except Hash is included, Prev too, so the hash binds the event
// to its predecessor. Each string is preceded by its 4-byte big-endian
// length, so bytes cannot move across a field boundary ("ab","c" ≠ "a","bc").
func (e *Event) Canonical() []byte {
	fields := [...]string{
		canonicalVersion,
		e.Time.UTC().Format(time.RFC3339Nano),
		e.Actor, e.Role, e.Action, e.Resource, e.Patient,
		e.RequestID, e.Outcome, e.Reason, e.Prev,
	}
	n := 8
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = appendString(b, fields[0])
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	for _, f := range fields[1:] {
		b = appendString(b, f)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// ComputeHash returns the hex SHA-256 of e.Canonical(), the value e.Hash must hold.
func (e *Event) ComputeHash() string {
	sum := sha256.Sum256(e.Canonical())
	return hex.EncodeToString(sum[:])
}

// Storage persists a chain.
//
// Append must store events in order and atomically with respect to other
// appenders (the database implementation locks the head in a transaction).
// Range returns events with from ≤ seq ≤ to in order.
type Storage interface {
	Head(ctx context.Context) (seq int64, hash string, err error) // 0, Genesis when empty
	Append(ctx context.Context, e Event) error                    // e.Seq == head+1 and e.Prev == head hash, else ErrConflict
	Range(ctx context.Context, from, to int64, fn func(Event) error) error
}

// maxAttempts bounds retries on ErrConflict. Each conflict means another
// replica appended successfully, so progress is made overall; the bound only
// stops a pathological livelock from hanging a request. (The recorder
// chains inside the store's transaction and never retries; Chain is for
// direct appends, where a loaded machine showed 32 too few.)
const maxAttempts = 200

// Chain appends events to a Storage, computing Seq, Prev and Hash.
//
// It serialises appends within the process with a mutex and retries on
// ErrConflict (another replica appended first) a bounded number of times.
type Chain struct {
	mu  sync.Mutex
	s   Storage
	now func() time.Time
}

// NewChain returns a Chain over s; now supplies event times (time.Now when nil).
func NewChain(s Storage, now func() time.Time) *Chain {
	if now == nil {
		now = time.Now
	}
	return &Chain{s: s, now: now}
}

// Append stores e as the next event and returns it as stored.
//
// A zero Time is set from the clock; a non-zero one is kept, because events
// replayed from a replica's spool keep their original timestamps (SPEC §12).
// An empty Actor becomes "anonymous". Action is required and Outcome must be
// one of ok, denied, error, so the log never holds events nobody can read.
func (c *Chain) Append(ctx context.Context, e Event) (Event, error) {
	if strings.TrimSpace(e.Action) == "" {
		return Event{}, errors.New("audit: event without action")
	}
	switch e.Outcome {
	case OutcomeOK, OutcomeDenied, OutcomeError:
	default:
		return Event{}, fmt.Errorf("audit: invalid outcome %q", e.Outcome)
	}
	if e.Actor == "" {
		e.Actor = "anonymous"
	}
	if e.Time.IsZero() {
		e.Time = c.now()
	}
	// Databases keep microseconds; truncating here makes the hash computed
	// now equal to the hash recomputed from the stored row later.
	e.Time = e.Time.UTC().Truncate(time.Microsecond)

	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return Event{}, err
		}
		seq, head, err := c.s.Head(ctx)
		if err != nil {
			return Event{}, fmt.Errorf("audit: head: %w", err)
		}
		e.Seq, e.Prev = seq+1, head
		e.Hash = e.ComputeHash()
		err = c.s.Append(ctx, e)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, ErrConflict) {
			return Event{}, fmt.Errorf("audit: append: %w", err)
		}
		// Jittered backoff so two replicas that collided do not collide again
		// in lock step.
		d := time.Duration(rand.N(int64(attempt+1))) * 50 * time.Microsecond
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-time.After(d):
		}
	}
	return Event{}, fmt.Errorf("audit: %d attempts: %w", maxAttempts, ErrConflict)
}

// Memory is an in-memory Storage (tests; also shows the contract).
type Memory struct {
	mu     sync.RWMutex
	events []Event
}

// NewMemory returns an empty in-memory Storage.
func NewMemory() *Memory { return &Memory{} }

// Head returns the last event's seq and hash, or 0 and Genesis when empty.
func (m *Memory) Head(ctx context.Context) (int64, string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.events) == 0 {
		return 0, Genesis, nil
	}
	last := m.events[len(m.events)-1]
	return last.Seq, last.Hash, nil
}

// Append stores e if it extends the head, else returns ErrConflict.
func (m *Memory) Append(ctx context.Context, e Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seq, head := int64(0), Genesis
	if n := len(m.events); n > 0 {
		seq, head = m.events[n-1].Seq, m.events[n-1].Hash
	}
	if e.Seq != seq+1 || e.Prev != head {
		return ErrConflict
	}
	m.events = append(m.events, e)
	return nil
}

// Range calls fn for each stored event with from ≤ Seq ≤ to, in storage order.
//
// Storage order (not a sort by Seq) is deliberate: tests tamper with the
// slice directly and Verify must see exactly what is stored. The events are
// copied first so fn may call back into m.
func (m *Memory) Range(ctx context.Context, from, to int64, fn func(Event) error) error {
	m.mu.RLock()
	evs := make([]Event, 0, len(m.events))
	for _, e := range m.events {
		if e.Seq >= from && e.Seq <= to {
			evs = append(evs, e)
		}
	}
	m.mu.RUnlock()
	for _, e := range evs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
