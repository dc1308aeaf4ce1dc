package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"medserve/internal/record"
	"medserve/internal/store"
)

// spoolOnly records every entry durably but cannot reach the store (a
// database outage): Sync fails.
type spoolOnly struct{ recorded atomic.Int64 }

func (s *spoolOnly) Record(context.Context, record.Entry) error { s.recorded.Add(1); return nil }
func (s *spoolOnly) Sync(context.Context) error                 { return errors.New("store unreachable") }

type complianceModes struct{ on bool }

func (m *complianceModes) Compliance() bool                           { return m.on }
func (m *complianceModes) Set(context.Context, store.Mode) error      { return nil }
func (m *complianceModes) List(context.Context) ([]store.Mode, error) { return nil, nil }

// TestComplianceMode: normally an answer leaves once its audit entry is in
// the local spool, so a database outage does not stop care; in compliance
// mode it must be in the store, and without the store the answer is a 503.
func TestComplianceMode(t *testing.T) {
	deps := loadDeps(t)
	rec := &spoolOnly{}
	modes := &complianceModes{}
	deps.Recorder, deps.Modes = rec, modes
	h := NewServer(deps)
	ask := func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/v1/inference", strings.NewReader(`{"query":"headache"}`)))
		return w.Code
	}
	if code := ask(); code != http.StatusOK {
		t.Fatalf("store down, compliance mode off: %d, want 200 (the spool holds the entry)", code)
	}
	modes.on = true
	if code := ask(); code != http.StatusServiceUnavailable {
		t.Fatalf("store down, compliance mode on: %d, want 503", code)
	}
	if rec.recorded.Load() != 2 {
		t.Fatalf("%d entries recorded, want 2 (the refused answer is still audited)", rec.recorded.Load())
	}
}
