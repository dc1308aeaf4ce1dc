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

// ErrConflict reports a write that would break a uniqueness rule (e.g. a
// second unresolved alert for one fingerprint).
var ErrConflict = errors.New("store: conflict")

// QueryRecord is one answered query as kept for history and analytics.
//
// It holds no clear PHI: the patient is a keyed pseudonym, the query hash is
// keyed (HMAC), and the free text is sealed (encrypted) by the caller before
// it reaches the store, which treats TextSealed as an opaque string.
type QueryRecord struct {
	RequestID         string
	PatientPseudonym  string
	Time              time.Time // kept with microsecond precision, returned in UTC
	Domain            string
	Urgency           string // critical, high, medium, low
	Acuity            int    // 1 (most urgent) … 5
	FindingsJSON      string // JSON array of findings ({"code":…,"negated":…}); "" means []
	DifferentialJSON  string // JSON array of candidates, best first ({"icd10":…,"probability":…}); "" means []
	Confidence        float64
	QueryHash         string
	ResponseMS        float64
	ModelVersion      string
	CacheHit          bool
	TextSealed        string
	PatientSealed     string // the clear patient identifier, sealed (AES-GCM) by the caller; "" when not kept
	InteractionAlerts int    // drug-interaction alerts in the answer (for detection rates from feedback)
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
	InteractionConfirmed   *bool    // nil when not assessed; true: the patient had a clinically relevant interaction
	Comment                string
	Time                   time.Time
}

// Outcome is one feedback joined to the answer it is about: what the
// live clinical metrics (SPEC §11) are computed from.
type Outcome struct {
	RequestID            string
	AnsweredAt           time.Time // the query's time
	FeedbackAt           time.Time // the feedback's time (windows select on it)
	ModelVersion         string    // "name/version" as answered
	Domain               string
	Acuity               int // predicted
	TrueAcuity           int
	FindingsJSON         string // the answer's stored findings, as in QueryRecord
	TopDiagnosis         string
	ConfirmedDiagnosis   string
	InteractionAlerts    int
	InteractionConfirmed *bool
}

// Alert is one alert instance of a rule (SPEC §11): pending while its
// condition holds for less than the rule's for-duration, firing after,
// resolved when the condition clears. At most one unresolved alert exists
// per Fingerprint (rule + labels), so re-evaluating never duplicates one.
type Alert struct {
	ID          int64
	Rule        string
	Fingerprint string
	Severity    string            // info, warning, critical
	State       string            // pending, firing, resolved
	Labels      map[string]string // e.g. version, domain
	Summary     string
	Value       float64
	Threshold   float64
	StartedAt   time.Time  // condition first seen (pending)
	FiredAt     *time.Time // nil until firing
	ResolvedAt  *time.Time // nil until resolved
	UpdatedAt   time.Time  // last evaluation that touched it
	IncidentID  int64      // 0 when no incident was opened
}

// AlertFilter selects alerts; zero fields do not filter.
type AlertFilter struct {
	State string    // pending, firing, resolved, or "active" for pending+firing
	Since time.Time // StartedAt ≥ Since
	Limit int       // ≤ 0: 100
}

// Incident is what an alert that acts leaves behind: its report (JSON: what
// fired, the metrics at the time, the actions taken, the model versions).
type Incident struct {
	ID       int64
	AlertID  int64
	Rule     string
	Title    string
	Severity string
	Status   string // open, closed
	Report   string // JSON document
	OpenedAt time.Time
	ClosedAt *time.Time
}

// Mode is a cluster-wide operating mode set by the alert engine or an admin:
// "oversight" (every answer review_required), "compliance", "caching".
type Mode struct {
	Name      string
	Enabled   bool
	Reason    string
	Actor     string
	UpdatedAt time.Time
}

// MonitorCount is one replica's figure for one time bucket: counters
// (answers, red-flag misses, latency histogram counts, cache hits, input
// bins for drift) and gauges (memory, CPU). A replica writes the cumulative
// value of its current bucket; writing again replaces it.
type MonitorCount struct {
	Replica string
	Bucket  time.Time // start of the bucket (the caller truncates)
	Version string    // "" for figures not per model version
	Domain  string    // "" for figures not per domain
	Name    string
	Value   float64
}

// MonitorTotal is the sum and the maximum of one figure over every replica
// and bucket in a window.
type MonitorTotal struct {
	Version, Domain, Name string
	Sum, Max              float64
}

// Reconciliation is the compliance check (SPEC §11): stored queries in a
// window and how many of them lack an audit event with the same request id.
type Reconciliation struct {
	Queries   int64
	Unaudited int64
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

	// Monitoring and alerts (step 8).
	// Outcomes returns feedback given at or after since joined to its
	// query, oldest feedback first.
	Outcomes(ctx context.Context, since time.Time) ([]Outcome, error)
	// SaveAlert inserts an alert (ID 0) or updates one by ID, returning
	// it with its ID. Inserting a second unresolved alert for a
	// fingerprint is an error (ErrConflict).
	SaveAlert(ctx context.Context, a Alert) (Alert, error)
	// Alerts returns matching alerts, newest StartedAt first.
	Alerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// SaveIncident inserts (ID 0) or updates an incident and returns it.
	SaveIncident(ctx context.Context, in Incident) (Incident, error)
	Incident(ctx context.Context, id int64) (Incident, error)     // ErrNotFound
	Incidents(ctx context.Context, limit int) ([]Incident, error) // newest first; limit ≤ 0: 100
	SetMode(ctx context.Context, m Mode) error
	Modes(ctx context.Context) ([]Mode, error) // every mode ever set, by name
	// SaveMonitorCounts upserts a replica's bucket figures (replacing the
	// value) in one transaction.
	SaveMonitorCounts(ctx context.Context, cs []MonitorCount) error
	// MonitorTotals sums (and maxes) figures over buckets at or after since,
	// grouped by version, domain and name.
	MonitorTotals(ctx context.Context, since time.Time) ([]MonitorTotal, error)
	// DeleteMonitorCountsBefore drops buckets older than t.
	DeleteMonitorCountsBefore(ctx context.Context, t time.Time) (int64, error)
	// Reconcile counts queries with from ≤ time < to and those of them
	// with no audit event carrying their request id.
	Reconcile(ctx context.Context, from, to time.Time) (Reconciliation, error)

	Close() error
}
