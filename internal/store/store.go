// Package store defines medserve's storage interface and the records it
// keeps (SPEC §10). Implementations live in subpackages: sqlite (embedded,
// the default) and, later, postgres; both must pass the same behaviour.
package store

import (
	"context"
	"errors"
	"time"

	"medserve/internal/audit"
)

// ErrNotFound reports that a referenced record (e.g. the query a feedback is about) does not exist.
var ErrNotFound = errors.New("store: not found")

// QueryRecord is one answered query as kept for history and analytics.
//
// It holds no clear PHI: the patient is a keyed pseudonym, the query hash is
// keyed (HMAC), and the free text is sealed (encrypted) by the caller before
// it reaches the store, which treats TextSealed as an opaque string.
type QueryRecord struct {
	RequestID        string
	PatientPseudonym string
	Time             time.Time // kept with microsecond precision, returned in UTC
	Domain           string
	Urgency          string // critical, high, medium, low
	Acuity           int    // 1 (most urgent) … 5
	FindingsJSON     string // JSON array of findings ({"code":…,"negated":…}); "" means []
	DifferentialJSON string // JSON array of candidates, best first ({"icd10":…,"probability":…}); "" means []
	Confidence       float64
	QueryHash        string
	ResponseMS       float64
	ModelVersion     string
	CacheHit         bool
	TextSealed       string
}

// Feedback is a clinician's outcome report on one query; a later one for the same request replaces it.
//
// Comment is free text and may hold PHI: callers seal it as they seal
// QueryRecord.TextSealed.
type Feedback struct {
	RequestID              string
	TrueAcuity             int
	ConfirmedDiagnosis     string
	Disposition            string
	TreatmentEffectiveness *float64 // nil when not (yet) known
	Comment                string
	Time                   time.Time
}

// Summary is the seed's patient summary over the last year, merged across all pseudonyms given.
type Summary struct {
	Queries          int
	LastVisit        time.Time // zero when Queries == 0
	MostUrgentAcuity int       // lowest acuity level seen; 0 when Queries == 0
	Domains          []string  // distinct, sorted
}

// Store is medserve's persistent state; every implementation also holds the audit chain.
//
// Methods taking several pseudonyms match any of them, because a patient's
// pseudonym changes when the PHI key rotates and history must still join.
type Store interface {
	Migrate(ctx context.Context) error
	SaveQuery(ctx context.Context, q QueryRecord) error
	PatientHistory(ctx context.Context, pseudonyms []string, limit int) ([]QueryRecord, error) // newest first; limit ≤ 0 means all
	SaveFeedback(ctx context.Context, f Feedback) error                                        // replaces an earlier feedback for the same request; ErrNotFound for an unknown request
	PatientSummary(ctx context.Context, pseudonyms []string) (Summary, error)
	audit.Storage
	Close() error
}
