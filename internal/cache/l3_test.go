package cache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// memTable is an in-memory Table, as the store implements it.
type memTable struct {
	mu   sync.Mutex
	rows map[string]memRow
	err  error
}

type memRow struct {
	class   string
	val     []byte
	expires time.Time
}

func newMemTable() *memTable { return &memTable{rows: map[string]memRow{}} }

func (m *memTable) CacheGet(_ context.Context, key string, now time.Time) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, false, m.err
	}
	r, ok := m.rows[key]
	if !ok || !now.Before(r.expires) {
		return nil, false, nil
	}
	return append([]byte(nil), r.val...), true, nil
}

func (m *memTable) CachePut(_ context.Context, key, class string, val []byte, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.rows[key] = memRow{class: class, val: append([]byte(nil), val...), expires: expires}
	return nil
}

func (m *memTable) row(key string) (memRow, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rows[key]
	return r, ok
}

func (m *memTable) setErr(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

func TestL3SetGetExpiry(t *testing.T) {
	clock := newFakeClock()
	tab := newMemTable()
	l := NewL3(tab, clock.Now)
	ctx := context.Background()
	if l.Name() != "l3" {
		t.Fatalf("Name = %q", l.Name())
	}
	for _, class := range []Class{PatientSummary, ClinicalDecision, SymptomPatterns, ComplianceAudit, PerformanceMetrics} {
		key := "k-" + string(class)
		if err := l.Set(ctx, key, class, []byte("v")); err != nil {
			t.Fatal(err)
		}
		r, ok := tab.row(key)
		if !ok || r.class != string(class) || !r.expires.Equal(clock.Now().Add(class.TTL())) {
			t.Fatalf("%s: row = %+v, %v; want class %s expiring at now+%v", class, r, ok, class, class.TTL())
		}
	}
	if v, ok, err := l.Get(ctx, "k-clinical_decision"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := l.Get(ctx, "absent"); err != nil || ok {
		t.Fatalf("Get(absent) = %v, %v; want a miss", ok, err)
	}
	clock.Advance(ClinicalDecision.TTL())
	if _, ok, err := l.Get(ctx, "k-clinical_decision"); err != nil || ok {
		t.Fatalf("Get after TTL = %v, %v; want a miss", ok, err)
	}
	if _, ok, _ := l.Get(ctx, "k-symptom_patterns"); !ok {
		t.Fatal("longer-lived class expired early")
	}
}

func TestL3UnknownClassNotStored(t *testing.T) {
	tab := newMemTable()
	l := NewL3(tab, nil)
	if err := l.Set(context.Background(), "k", Class("clinical_decisions"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, ok := tab.row("k"); ok {
		t.Fatal("unknown class stored")
	}
}

func TestL3ErrorsWrapped(t *testing.T) {
	tab := newMemTable()
	l := NewL3(tab, nil)
	boom := errors.New("database is locked")
	tab.setErr(boom)
	if _, ok, err := l.Get(context.Background(), "k"); !errors.Is(err, boom) || ok {
		t.Fatalf("Get = %v, %v; want wrapped error", ok, err)
	}
	if err := l.Set(context.Background(), "k", ClinicalDecision, []byte("v")); !errors.Is(err, boom) {
		t.Fatalf("Set = %v; want wrapped error", err)
	}
}
