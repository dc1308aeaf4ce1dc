// Package cache is medserve's answer cache: cache classes with the seed's
// TTLs (SPEC section 9), a Level interface shared by the in-process L1 and
// the later Redis (L2) and store (L3) levels, and a Keyer that turns request
// parts into keyed-hash cache keys so that no patient identifier is ever
// stored or looked up in clear (SPEC section 8).
package cache

import (
	"context"
	"errors"
	"time"
)

// Class is a cache class with its TTL (SPEC section 9, from the seed).
type Class string

// Cache classes and their TTLs, from the seed's cache configuration.
const (
	PatientSummary     Class = "patient_summary"     // 3600 s
	ClinicalDecision   Class = "clinical_decision"   // 1800 s
	SymptomPatterns    Class = "symptom_patterns"    // 7200 s
	ComplianceAudit    Class = "compliance_audit"    // 900 s
	PerformanceMetrics Class = "performance_metrics" // 300 s
)

// TTL returns how long an entry of class c lives; an unknown class returns 0,
// which every level treats as "do not cache": a typo in a class name must
// never make an answer live forever.
func (c Class) TTL() time.Duration {
	// A switch rather than a map: no package-level mutable state, and the
	// compiler turns it into a few string compares.
	switch c {
	case PatientSummary:
		return 3600 * time.Second
	case ClinicalDecision:
		return 1800 * time.Second
	case SymptomPatterns:
		return 7200 * time.Second
	case ComplianceAudit:
		return 900 * time.Second
	case PerformanceMetrics:
		return 300 * time.Second
	}
	return 0
}

// Known reports whether c is one of the defined classes.
func (c Class) Known() bool { return c.TTL() > 0 }

// Level is one cache level (L1 here; Redis and the store later).
//
// Get returns (nil, false, nil) on a miss; an error means the level could not
// answer (for example Redis is down) and callers should treat it as a miss.
// Set with a class whose TTL is 0 stores nothing and is not an error.
// Slices returned by Get are read-only: a level may hand out its own storage.
type Level interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, class Class, val []byte) error
	Name() string // "l1", "l2", "l3"
}

// Observer receives cache events for metrics. Labels are level names only,
// never keys, so no PHI can reach a metric label.
type Observer interface {
	Hit(level string)
	Miss(level string)
	Evict(level string)
}

// ErrorObserver is an optional extension of Observer for the outer levels:
// an Observer that also implements it is told when a level could not answer
// or store (Redis down, a store error, a value that would not decrypt; the
// caller saw a miss) and when an asynchronous write was dropped because its
// queue was full. It is separate so that existing Observers keep compiling.
type ErrorObserver interface {
	LevelError(level string)
	WriteDropped(level string)
}

// ErrComputePanicked wraps a panic raised by a Do compute function; the panic
// is turned into an error because it happens on a goroutine shared by all
// waiters, where no caller could recover it.
var ErrComputePanicked = errors.New("cache: compute panicked")

// errComputeExited is returned when compute ended with runtime.Goexit (for
// example t.FailNow in a test) so that waiters are released, not hung.
var errComputeExited = errors.New("cache: compute exited without returning")
