package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"medserve/internal/audit"
)

// Migration is one versioned schema migration embedded in a backend.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations returns the migrations in dir of fsys ordered by version;
// files are named NNNN_description.sql and versions must be unique. Both
// backends number their migrations alike, so one reader serves them.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]string{}
	for _, p := range names {
		base := path.Base(p)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", base)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, base, v)
		}
		seen[v] = base
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// RangePages implements audit.Storage's Range over a backend that reads
// events a page at a time: page returns at most pageSize events with
// from ≤ seq ≤ to in order. Each page is fully read before fn runs, so a
// walk over a long chain neither holds it all in memory nor keeps a
// connection or snapshot open while fn runs, and fn may call back into the
// store.
func RangePages(ctx context.Context, from, to int64, pageSize int, page func(ctx context.Context, from, to int64) ([]audit.Event, error), fn func(audit.Event) error) error {
	next := from
	for next <= to {
		events, err := page(ctx, next, to)
		if err != nil {
			return err
		}
		for _, e := range events {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(events) < pageSize {
			return nil
		}
		last := events[len(events)-1].Seq
		if last == to { // also avoids overflow when to is math.MaxInt64
			return nil
		}
		next = last + 1
	}
	return nil
}

// Audit query page sizes: AuditEvents returns DefaultAuditLimit events when
// the filter gives no limit and never more than MaxAuditLimit, so one call
// cannot pull the whole chain into memory.
const (
	DefaultAuditLimit = 1000
	MaxAuditLimit     = 10000
)

// AuditLimit is the page size AuditEvents uses for a filter's Limit.
func AuditLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultAuditLimit
	case n > MaxAuditLimit:
		return MaxAuditLimit
	}
	return n
}

// CeilMicro rounds t up to the next microsecond (t itself when already
// whole). Stored times have µs precision, so a bound with a finer fraction
// is compared as its ceiling: From ≤ time and time < To then select exactly
// the stored times they would select at full precision.
func CeilMicro(t time.Time) time.Time {
	c := t.Truncate(time.Microsecond)
	if c.Before(t) {
		c = c.Add(time.Microsecond)
	}
	return c
}

// CheckQuery reports a query record no backend may store. A query without
// a patient (no identifier was given) is kept with an empty pseudonym: it
// still counts for analytics and compliance, and joins no one's history.
func CheckQuery(q QueryRecord) error {
	if q.RequestID == "" {
		return errors.New("query without request id")
	}
	return nil
}

// PrepareEvents validates a batch's events and normalises them as
// audit.Chain.Append does, so events written through Write and through a
// Chain obey the same rules: Action is required, Outcome is ok, denied or
// error, an empty Actor becomes "anonymous", a zero Time becomes now, and
// times are truncated to the microsecond in UTC (databases keep µs, and the
// hash must be recomputable from the stored row). One bad event fails the
// whole batch. The input is not modified.
func PrepareEvents(events []audit.Event, now time.Time) ([]audit.Event, error) {
	out := make([]audit.Event, len(events))
	for i, e := range events {
		if strings.TrimSpace(e.Action) == "" {
			return nil, fmt.Errorf("event %d: without action", i)
		}
		switch e.Outcome {
		case audit.OutcomeOK, audit.OutcomeDenied, audit.OutcomeError:
		default:
			return nil, fmt.Errorf("event %d: invalid outcome %q", i, e.Outcome)
		}
		if e.Actor == "" {
			e.Actor = "anonymous"
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Time = e.Time.UTC().Truncate(time.Microsecond)
		out[i] = e
	}
	return out, nil
}

// LinkEvents chains events after the head (seq, hash): it sets each one's
// Seq, Prev and Hash in place. The caller holds the chain's head lock.
func LinkEvents(events []audit.Event, seq int64, hash string) {
	for i := range events {
		seq++
		events[i].Seq, events[i].Prev = seq, hash
		events[i].Hash = events[i].ComputeHash()
		hash = events[i].Hash
	}
}

// ErrExists reports that a backup or restore target already exists.
var ErrExists = errors.New("store: target file exists")

// Publish makes the finished file tmp visible as dst without ever replacing
// an existing dst: tmp is fsynced, hard-linked to dst (which fails if dst
// exists, with no window between check and create), removed, and the
// directory fsynced so the new name survives a crash. tmp and dst must be in
// the same directory. tmp is removed in every case.
func Publish(tmp, dst string) error {
	defer os.Remove(tmp)
	if err := SyncFile(tmp); err != nil {
		return err
	}
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", dst, ErrExists)
		}
		return fmt.Errorf("publish %s: %w", dst, err)
	}
	return SyncDir(filepath.Dir(dst))
}

// SyncFile fsyncs the file at p.
func SyncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}

// SyncDir fsyncs the directory dir, making renames and links in it durable.
func SyncDir(dir string) error {
	return SyncFile(dir)
}

// TempPath returns an unused name in dst's directory for building dst before
// it is published (a rename or link only stays atomic within one file system).
func TempPath(dst, pattern string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+pattern)
	if err != nil {
		return "", err
	}
	name := f.Name()
	f.Close()
	return name, nil
}

// DefaultListLimit is how many alerts or incidents a list returns when the
// caller gives no limit.
const DefaultListLimit = 100

// ListLimit is the number of rows Alerts and Incidents return for a limit.
func ListLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return n
}

// AlertStates returns the states an AlertFilter's State selects: nil for
// every state, pending and firing for "active", else the state itself.
func AlertStates(state string) []string {
	switch state {
	case "":
		return nil
	case "active":
		return []string{"pending", "firing"}
	}
	return []string{state}
}

// CheckAlert reports an alert no backend may store. The state matters to
// the store itself: the one-unresolved-alert-per-fingerprint rule counts
// every state but resolved, so a misspelt state would slip past it.
func CheckAlert(a Alert) error {
	switch {
	case a.Rule == "":
		return errors.New("alert without rule")
	case a.Fingerprint == "":
		return errors.New("alert without fingerprint")
	}
	switch a.State {
	case "pending", "firing", "resolved":
		return nil
	}
	return fmt.Errorf("alert state %q (want pending, firing or resolved)", a.State)
}

// LabelsJSON encodes alert labels as a JSON object ("{}" when there are none).
func LabelsJSON(labels map[string]string) (string, error) {
	if len(labels) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return "", fmt.Errorf("alert labels: %w", err)
	}
	return string(b), nil
}

// ParseLabels decodes stored alert labels; no labels is a nil map, so an
// alert read back equals the one written with nil or empty labels.
func ParseLabels(s string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("alert labels: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// OrEmptyObject returns s, or "{}" when s is blank: an incident without a
// report stores an empty JSON object.
func OrEmptyObject(s string) string {
	if strings.TrimSpace(s) == "" {
		return "{}"
	}
	return s
}
