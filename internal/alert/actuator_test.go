package alert

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"medserve/internal/store"
)

// webhook answers the statuses in order (the last one from then on) and
// keeps what it received.
type webhook struct {
	statuses []int
	n        atomic.Int32
	mu       sync.Mutex
	got      []Notification
	ctype    []string
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	i := int(w.n.Add(1)) - 1
	var n Notification
	_ = json.NewDecoder(r.Body).Decode(&n)
	w.mu.Lock()
	w.got = append(w.got, n)
	w.ctype = append(w.ctype, r.Header.Get("Content-Type"))
	w.mu.Unlock()
	rw.WriteHeader(w.statuses[min(i, len(w.statuses)-1)])
}

func TestActionsSend(t *testing.T) {
	n := Notification{Page: true, Status: "firing", Rule: "SafetyScoreLow", Severity: "critical", Summary: "s",
		Labels: map[string]string{"version": "m/v2"}, Value: 0.6, Threshold: 0.9, AlertID: 7, IncidentID: 3,
		Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name     string
		statuses []int
		wantErr  string
		requests int32
	}{
		{"delivered", []int{http.StatusNoContent}, "", 1},
		{"retried until delivered", []int{503, 502, 200}, "", 3},
		{"never delivered: an error after three tries", []int{500}, "status 500", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the retries back off for 1.5 s
			wh := &webhook{statuses: tc.statuses}
			srv := httptest.NewServer(wh)
			defer srv.Close()
			var logs []string
			a := &Actions{Webhook: srv.URL, Logf: func(f string, _ ...any) { logs = append(logs, f) }}
			err := a.Send(context.Background(), n)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Send = %v, want error %q", err, tc.wantErr)
			}
			if got := wh.n.Load(); got != tc.requests {
				t.Errorf("requests = %d, want %d", got, tc.requests)
			}
			wh.mu.Lock()
			defer wh.mu.Unlock()
			for i, g := range wh.got {
				if g.Rule != n.Rule || !g.Page || g.IncidentID != 3 || g.Labels["version"] != "m/v2" || !g.Time.Equal(n.Time) ||
					wh.ctype[i] != "application/json" {
					t.Errorf("request %d: %+v (%s)", i, g, wh.ctype[i])
				}
			}
			if len(logs) != 1 {
				t.Errorf("logged %d lines, want 1", len(logs))
			}
		})
	}

	t.Run("no webhook: logged only", func(t *testing.T) {
		logged := 0
		a := &Actions{Logf: func(string, ...any) { logged++ }}
		if err := a.Send(context.Background(), n); err != nil || logged != 1 {
			t.Errorf("Send = %v, logged %d", err, logged)
		}
	})

	t.Run("cancelled while backing off", func(t *testing.T) {
		wh := &webhook{statuses: []int{500}}
		srv := httptest.NewServer(wh)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for wh.n.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		start := time.Now()
		err := (&Actions{Webhook: srv.URL}).Send(ctx, n)
		if !errors.Is(err, context.Canceled) || time.Since(start) > 400*time.Millisecond {
			t.Errorf("Send = %v after %v, want context.Canceled at once", err, time.Since(start))
		}
	})
}

type fakeRegistry struct {
	prod    string
	prev    string
	canary  string
	retired []string
	err     error
}

func (r *fakeRegistry) Rollback(_ context.Context, actor, reason string) (string, error) {
	if r.err != nil {
		return "", r.err
	}
	if actor != "alert-engine" || reason == "" {
		return "", errors.New("actor or reason missing")
	}
	r.prod = r.prev
	return r.prod, nil
}

func (r *fakeRegistry) ProductionVersion() string { return r.prod }

func (r *fakeRegistry) ServingVersions() []string {
	if r.canary == "" {
		return []string{r.prod}
	}
	return []string{r.prod, r.canary}
}

func (r *fakeRegistry) Promote(_ context.Context, version, stage string, _ int, actor, reason string) error {
	if stage != "retired" || actor != "alert-engine" || reason == "" {
		return errors.New("unexpected promotion")
	}
	r.retired = append(r.retired, version)
	r.canary = ""
	return nil
}

// A failing canary is retired through the registry (by its bare version);
// production, or a version not serving, never is.
func TestActionsRetireCanary(t *testing.T) {
	reg := &fakeRegistry{prod: "m/v2", canary: "m/v3"}
	a := &Actions{Registry: reg}
	for _, v := range []string{"m/v2", "m/v9"} {
		if err := a.RetireCanary(context.Background(), v, "alert X"); err == nil {
			t.Errorf("RetireCanary(%s) succeeded: only a serving canary may be retired", v)
		}
	}
	if err := a.RetireCanary(context.Background(), "m/v3", "alert X"); err != nil || len(reg.retired) != 1 || reg.retired[0] != "v3" {
		t.Fatalf("RetireCanary(m/v3) = %v; retired %v", err, reg.retired)
	}
}

func TestActionsRollback(t *testing.T) {
	reg := &fakeRegistry{prod: "m/v2", prev: "m/v1"}
	a := &Actions{Registry: reg}
	from, to, err := a.Rollback(context.Background(), "alert X")
	if err != nil || from != "m/v2" || to != "m/v1" || a.Production() != "m/v1" {
		t.Errorf("Rollback = %s → %s, %v; production %s", from, to, err, a.Production())
	}
	reg.err = errors.New("no older validated version")
	from, to, err = a.Rollback(context.Background(), "alert Y")
	if err == nil || from != "m/v1" || to != "m/v1" {
		t.Errorf("failed Rollback = %s → %s, %v; want production unchanged and the error", from, to, err)
	}
}

type switches struct {
	oversight string
	caching   bool
	calls     int
}

func (s *switches) SetOversight(reason string) { s.oversight = reason; s.calls++ }
func (s *switches) SetCaching(on bool)         { s.caching = on }

func TestModeStateApply(t *testing.T) {
	tests := []struct {
		name           string
		cachingDefault bool
		modes          []store.Mode
		oversight      string
		caching        bool
		compliance     bool
	}{
		{"nothing set", false, nil, "", false, false},
		{"nothing set, cache configured", true, nil, "", true, false},
		{"oversight with its reason", false, []store.Mode{{Name: ModeOversight, Enabled: true, Reason: "alert AccuracyDegraded"}}, "alert AccuracyDegraded", false, false},
		{"oversight without a reason names who", false, []store.Mode{{Name: ModeOversight, Enabled: true, Actor: "admin-1"}}, "set by admin-1", false, false},
		{"oversight off", false, []store.Mode{{Name: ModeOversight, Enabled: false, Reason: "cleared"}}, "", false, false},
		{"caching switched on", false, []store.Mode{{Name: ModeCaching, Enabled: true}}, "", true, false},
		{"compliance on; unknown modes ignored", false, []store.Mode{{Name: ModeCompliance, Enabled: true}, {Name: "other", Enabled: true}}, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sw := &switches{oversight: "stale", caching: !tc.caching}
			m := NewModeState(nil, sw, tc.cachingDefault)
			m.Apply(tc.modes)
			if sw.oversight != tc.oversight || sw.caching != tc.caching || m.Compliance() != tc.compliance || sw.calls != 1 {
				t.Errorf("oversight %q caching %v compliance %v; want %q %v %v", sw.oversight, sw.caching, m.Compliance(),
					tc.oversight, tc.caching, tc.compliance)
			}
		})
	}
}

// Set stores a mode and applies it here at once; another replica's
// ModeState follows when it reads the store.
func TestModeStateSet(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	here, there := &switches{}, &switches{}
	a, b := NewModeState(db, here, false), NewModeState(db, there, false)
	if err := a.Set(ctx, store.Mode{Name: ModeOversight, Enabled: true, Reason: "review everything", Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	if here.oversight != "review everything" {
		t.Errorf("this replica's oversight = %q", here.oversight)
	}
	if there.oversight != "" {
		t.Error("the other replica changed before reading the store")
	}
	ms, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Apply(ms)
	if there.oversight != "review everything" {
		t.Errorf("other replica's oversight = %q", there.oversight)
	}
	if err := a.Set(ctx, store.Mode{Name: "", Enabled: true}); err == nil {
		t.Error("a mode without a name was stored")
	}
}
