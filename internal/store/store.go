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
	PatientSealed    string // the clear patient identifier, sealed (AES-GCM) by the caller; "" when not kept
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

// Batch is what the recorder writes in one transaction: the query records
// and audit events taken from one replica's spool, and how far into that
// spool they reach.
//
// Write applies a batch atomically: queries are inserted (a request id
// already stored is skipped, so a replay cannot fail on its own earlier
// write), events are chained after the current head in the order given
// (Seq, Prev and Hash are assigned by the store while it holds the chain's
// head lock; the events' Time is kept), and Progress(Source) becomes
// Through. Either all of it is stored or none of it.
type Batch struct {
	Source  string // the spool the entries come from (one per replica)
	Through int64  // spool position of the batch's last entry
	Queries []QueryRecord
	Events  []audit.Event
}

// AuditFilter selects audit events; zero fields do not filter.
type AuditFilter struct {
	Actor     string
	Action    string
	RequestID string
	Outcome   string
	Patients  []string  // pseudonyms: an event naming any of them matches
	From, To  time.Time // From ≤ time < To
	AfterSeq  int64     // events with Seq > AfterSeq (paging)
	Limit     int       // at most this many (≤ 0: 1000)
}

// APIKey is a stored API key. Only a hash of its secret is kept; the
// secret itself is shown once, when the key is created.
type APIKey struct {
	ID         string     // public id: in the token, in lists and in audit events
	SecretHash string     // hex SHA-256 of the secret (256 random bits: a guess cannot reverse it)
	Role       string     // clinician, service, auditor, admin
	Name       string     // a label for people ("integration engine, ward 3")
	Limits     string     // per-key rate-limit overrides, e.g. "inference=600/min burst 100"; "" = the zones' defaults
	CreatedAt  time.Time  // µs precision, UTC
	RevokedAt  *time.Time // nil while the key is valid
}

// ModelRecord is one model version in the registry (SPEC section 12: the
// registry and the stages live in the store, the files in a shared model directory).
type ModelRecord struct {
	Name, Version string
	Path          string // the version's directory, relative to the model directory
	SHA256        string // the manifest's SHA-256: a changed file is a different version
	Stage         string // candidate, shadow, canary, production, retired
	Percent       int    // canary share of traffic, 0–100 (0 unless Stage is canary)
	Validated     bool   // its stored validation report passes the gate
	CreatedAt     time.Time
}

// Promotion is one change of a version's stage, with who and why.
type Promotion struct {
	Name, Version, From, To string
	Percent                 int
	Actor, Reason           string
	Time                    time.Time
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

	// Write stores a recorder batch atomically and returns its events as chained.
	Write(ctx context.Context, b Batch) ([]audit.Event, error)
	// Progress is the Through of the last batch written for source; 0 when none.
	Progress(ctx context.Context, source string) (int64, error)
	// AuditEvents returns matching events in Seq order.
	AuditEvents(ctx context.Context, f AuditFilter) ([]audit.Event, error)
	// DeleteQueriesBefore deletes query records (and their findings and
	// feedback) older than t and returns how many queries it deleted. Audit
	// events are never deleted.
	DeleteQueriesBefore(ctx context.Context, t time.Time) (int64, error)

	// The L3 cache: opaque values (sealed by the caller) under keyed-hash keys.
	CacheGet(ctx context.Context, key string, now time.Time) ([]byte, bool, error) // an expired entry is a miss
	CachePut(ctx context.Context, key, class string, val []byte, expires time.Time) error
	CacheSweep(ctx context.Context, now time.Time) (int64, error) // deletes expired entries

	// RefreshViews recomputes the summary views (a no-op where they are plain views).
	RefreshViews(ctx context.Context) error
	// Singleton runs fn if no other process is running the job called name
	// (a PostgreSQL advisory lock held for fn's duration; within one
	// process for SQLite, which one process owns) and reports whether it ran.
	Singleton(ctx context.Context, name string, fn func(ctx context.Context) error) (ran bool, err error)
	// Backup writes a consistent copy of the whole store to path while it
	// keeps serving. Each backend has a Restore function that loads one.
	Backup(ctx context.Context, path string) error

	// API keys (step 6). CreateAPIKey fails on a duplicate id; APIKey and
	// RevokeAPIKey return ErrNotFound for an unknown id; revoking twice
	// keeps the first revocation time. ListAPIKeys is ordered by CreatedAt.
	CreateAPIKey(ctx context.Context, k APIKey) error
	APIKey(ctx context.Context, id string) (APIKey, error)
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error

	// Model registry (step 7). RegisterModel inserts a version as a
	// candidate unless (name, version) exists, and returns the stored
	// record either way (an existing one keeps its stage); a stored record
	// whose SHA256 differs is an error (a version's files never change).
	// SetStage moves a version to a stage in one transaction with its
	// Promotion record; moving one to production moves the version that
	// was in production to retired (also recorded), so at most one version
	// of a name is in production; likewise at most one canary and one shadow.
	// ErrNotFound for an unknown version. Models lists a name's versions by
	// creation; Promotions a name's history, oldest first.
	RegisterModel(ctx context.Context, m ModelRecord) (ModelRecord, error)
	Models(ctx context.Context, name string) ([]ModelRecord, error)
	SetStage(ctx context.Context, name, version, stage string, percent int, actor, reason string, at time.Time) error
	Promotions(ctx context.Context, name string) ([]Promotion, error)

	Close() error
}
