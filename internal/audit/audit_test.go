package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKey is derived from a fixed seed so failures reproduce.
func testKey(seed byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv.Public().(ed25519.PublicKey), priv
}

// fakeClock returns strictly increasing times with sub-microsecond parts, so truncation is exercised.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(1500 * time.Nanosecond)
		return t
	}
}

func sampleEvent(i int) Event {
	return Event{
		Actor: fmt.Sprintf("user-%d", i%7), Role: "clinician", Action: "patient.history.read",
		Resource: fmt.Sprintf("/v1/patients/p%d/history", i%13), Patient: fmt.Sprintf("ps_%04d", i%13),
		RequestID: fmt.Sprintf("req-%d", i), Outcome: OutcomeOK, Reason: "treatment",
	}
}

func buildChain(t testing.TB, n int) *Memory {
	t.Helper()
	m := NewMemory()
	c := NewChain(m, fakeClock())
	for i := 1; i <= n; i++ {
		if _, err := c.Append(context.Background(), sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// clone gives each tamper case a fresh copy of the chain.
func clone(m *Memory) *Memory {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return &Memory{events: append([]Event(nil), m.events...)}
}

// rehash recomputes a tampered event's hash, as an attacker with database access would.
func rehash(e *Event) { e.Hash = e.ComputeHash() }

func TestAppendSetsFields(t *testing.T) {
	m := NewMemory()
	c := NewChain(m, fakeClock())
	e, err := c.Append(context.Background(), Event{Action: "inference", Outcome: OutcomeOK})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 || e.Prev != Genesis || e.Actor != "anonymous" || e.Hash != e.ComputeHash() {
		t.Fatalf("first event %+v", e)
	}
	if e.Time.Location() != time.UTC || e.Time.Nanosecond()%1000 != 0 {
		t.Fatalf("time not UTC µs: %v", e.Time)
	}
	// A spooled event keeps its original time (SPEC §12).
	orig := time.Date(2024, 1, 2, 3, 4, 5, 6789, time.UTC)
	e2, err := c.Append(context.Background(), Event{Action: "inference", Outcome: OutcomeOK, Time: orig})
	if err != nil {
		t.Fatal(err)
	}
	if !e2.Time.Equal(orig.Truncate(time.Microsecond)) || e2.Seq != 2 || e2.Prev != e.Hash {
		t.Fatalf("second event %+v", e2)
	}
	for _, bad := range []Event{{Outcome: OutcomeOK}, {Action: "x", Outcome: "maybe"}} {
		if _, err := c.Append(context.Background(), bad); err == nil {
			t.Fatalf("accepted %+v", bad)
		}
	}
	if err := m.Append(context.Background(), Event{Seq: 5, Prev: e2.Hash}); !errors.Is(err, ErrConflict) {
		t.Fatalf("memory accepted a gap: %v", err)
	}
}

func TestVerifyTamper(t *testing.T) {
	ctx := context.Background()
	pub, priv := testKey(1)
	keys := map[string]ed25519.PublicKey{"k1": pub}
	signer := NewSigner("k1", priv)
	base := buildChain(t, 100)
	at := func(m *Memory, seq int64) Event { return m.events[seq-1] }
	cpAt := func(m *Memory, seq int64) Checkpoint {
		return signer.Sign(seq, at(m, seq).Hash, time.Unix(1700000000, 0))
	}

	type want struct {
		seq  int64
		kind string
	}
	cases := []struct {
		name   string
		tamper func(m *Memory) []Checkpoint
		want   []want // exactly these problems, in order
		events int64
	}{
		{"intact", func(m *Memory) []Checkpoint { return []Checkpoint{cpAt(m, 50), cpAt(m, 100)} }, nil, 100},
		{"altered field", func(m *Memory) []Checkpoint {
			m.events[49].Reason = "curiosity"
			return nil
		}, []want{{50, KindAltered}}, 100},
		{"altered and rehashed", func(m *Memory) []Checkpoint {
			m.events[49].Actor = "someone-else"
			rehash(&m.events[49])
			return nil
		}, []want{{51, KindBrokenLink}}, 100},
		{"deleted 50", func(m *Memory) []Checkpoint {
			m.events = append(m.events[:49], m.events[50:]...)
			return nil
		}, []want{{51, KindGap}, {51, KindBrokenLink}}, 99},
		{"inserted forgery", func(m *Memory) []Checkpoint {
			// The forgery links correctly to event 50 and hashes correctly itself;
			// it is the real event 51 after it that exposes it.
			f := sampleEvent(999)
			f.Seq, f.Prev, f.Time = 51, at(m, 50).Hash, at(m, 50).Time
			rehash(&f)
			m.events = append(m.events[:50], append([]Event{f}, m.events[50:]...)...)
			return nil
		}, []want{{51, KindGap}, {51, KindBrokenLink}}, 101},
		{"swapped 10 and 11", func(m *Memory) []Checkpoint {
			m.events[9], m.events[10] = m.events[10], m.events[9]
			return nil
		}, []want{{10, KindGap}, {10, KindBrokenLink}, {11, KindGap}, {11, KindBrokenLink}, {12, KindGap}, {12, KindBrokenLink}}, 100},
		{"truncated after checkpoint 95", func(m *Memory) []Checkpoint {
			cps := []Checkpoint{cpAt(m, 95)}
			m.events = m.events[:90]
			return cps
		}, []want{{95, KindTruncated}}, 90},
		{"rewritten from 40 after checkpoint 60", func(m *Memory) []Checkpoint {
			cps := []Checkpoint{cpAt(m, 30), cpAt(m, 60)}
			// The attacker rewrites 40..100 consistently and signs a new
			// checkpoint with a key of their own under our key id.
			for i := 39; i < len(m.events); i++ {
				m.events[i].Reason = "rewritten"
				m.events[i].Prev = m.events[i-1].Hash
				rehash(&m.events[i])
			}
			_, forged := testKey(9)
			return append(cps, NewSigner("k1", forged).Sign(100, m.events[99].Hash, time.Now()))
		}, []want{{60, KindCheckpointMismatch}, {100, KindCheckpointInvalid}}, 100},
		{"unknown key id", func(m *Memory) []Checkpoint {
			_, other := testKey(2)
			return []Checkpoint{NewSigner("k2", other).Sign(10, at(m, 10).Hash, time.Now())}
		}, []want{{10, KindCheckpointInvalid}}, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := clone(base)
			cps := tc.tamper(m)
			r, err := Verify(ctx, m, cps, keys)
			if err != nil {
				t.Fatal(err)
			}
			if r.Events != tc.events {
				t.Errorf("events = %d, want %d", r.Events, tc.events)
			}
			if r.OK != (len(tc.want) == 0) {
				t.Errorf("OK = %v with problems %+v", r.OK, r.Problems)
			}
			if len(r.Problems) != len(tc.want) {
				t.Fatalf("problems = %+v, want %v", r.Problems, tc.want)
			}
			for i, w := range tc.want {
				if p := r.Problems[i]; p.Seq != w.seq || p.Kind != w.kind {
					t.Errorf("problem %d = %+v, want %v", i, p, w)
				}
			}
			if tc.name == "intact" {
				if r.Head != at(m, 100).Hash || r.CheckpointsChecked != 2 {
					t.Errorf("head %s checked %d", r.Head, r.CheckpointsChecked)
				}
			}
		})
	}
}

func TestVerifyEmpty(t *testing.T) {
	pub, priv := testKey(1)
	cp := NewSigner("k1", priv).Sign(0, Genesis, time.Now())
	r, err := Verify(context.Background(), NewMemory(), []Checkpoint{cp}, map[string]ed25519.PublicKey{"k1": pub})
	if err != nil || !r.OK || r.Head != Genesis || r.Events != 0 {
		t.Fatalf("%+v %v", r, err)
	}
}

func checkValid(t *testing.T, m *Memory, n int64) {
	t.Helper()
	r, err := Verify(context.Background(), m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Events != n {
		t.Fatalf("report %+v, want %d events OK", r, n)
	}
	for i, e := range m.events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

func TestConcurrentAppend(t *testing.T) {
	m := NewMemory()
	c := NewChain(m, nil)
	const workers, per = 16, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				if _, err := c.Append(context.Background(), sampleEvent(w*per+i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	checkValid(t, m, workers*per)
}

// conflictOnce injects ErrConflict on every other Append so the retry path
// runs deterministically, not only when the scheduler happens to interleave.
type conflictOnce struct {
	*Memory
	mu    sync.Mutex
	calls int
}

func (c *conflictOnce) Append(ctx context.Context, e Event) error {
	c.mu.Lock()
	c.calls++
	odd := c.calls%2 == 1
	c.mu.Unlock()
	if odd {
		return ErrConflict
	}
	return c.Memory.Append(ctx, e)
}

func TestConflictRetry(t *testing.T) {
	// Two Chains (two replicas) over one store race for the head.
	m := NewMemory()
	chains := []*Chain{NewChain(m, nil), NewChain(m, nil)}
	const per = 200
	var wg sync.WaitGroup
	for _, c := range chains {
		for w := range 4 {
			wg.Go(func() {
				for i := range per {
					if _, err := c.Append(context.Background(), sampleEvent(w*per+i)); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	checkValid(t, m, 2*4*per)

	// Forced conflicts: every event still lands exactly once.
	fc := &conflictOnce{Memory: NewMemory()}
	c := NewChain(fc, nil)
	for i := range 10 {
		if _, err := c.Append(context.Background(), sampleEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	checkValid(t, fc.Memory, 10)

	// A store that always conflicts gives up with ErrConflict instead of hanging.
	always := &alwaysConflict{}
	if _, err := NewChain(always, nil).Append(context.Background(), sampleEvent(1)); !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	if always.n != maxAttempts {
		t.Fatalf("attempts = %d", always.n)
	}
}

type alwaysConflict struct{ n int }

func (a *alwaysConflict) Head(context.Context) (int64, string, error) { return 0, Genesis, nil }
func (a *alwaysConflict) Append(context.Context, Event) error         { a.n++; return ErrConflict }
func (a *alwaysConflict) Range(context.Context, int64, int64, func(Event) error) error {
	return nil
}

func TestCanonicalBoundaries(t *testing.T) {
	base := sampleEvent(1)
	base.Time = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := base, base
	a.Actor, a.Role = "ab", "c"
	b.Actor, b.Role = "a", "bc"
	if bytes.Equal(a.Canonical(), b.Canonical()) || a.ComputeHash() == b.ComputeHash() {
		t.Fatal("field boundary can be shifted")
	}
	// Same instant in another zone hashes the same: the encoding is UTC.
	c := base
	c.Time = base.Time.In(time.FixedZone("X", -5*3600))
	if !bytes.Equal(base.Canonical(), c.Canonical()) {
		t.Fatal("canonical depends on time zone")
	}
	// Hash is not covered (it is the output), every other field is.
	d := base
	d.Hash = "x"
	if !bytes.Equal(base.Canonical(), d.Canonical()) {
		t.Fatal("canonical covers Hash")
	}
	mutations := []func(*Event){
		func(e *Event) { e.Seq++ }, func(e *Event) { e.Time = e.Time.Add(time.Microsecond) },
		func(e *Event) { e.Actor += "x" }, func(e *Event) { e.Role += "x" }, func(e *Event) { e.Action += "x" },
		func(e *Event) { e.Resource += "x" }, func(e *Event) { e.Patient += "x" }, func(e *Event) { e.RequestID += "x" },
		func(e *Event) { e.Outcome += "x" }, func(e *Event) { e.Reason += "x" }, func(e *Event) { e.Prev += "x" },
	}
	for i, mut := range mutations {
		e := base
		mut(&e)
		if bytes.Equal(base.Canonical(), e.Canonical()) {
			t.Errorf("mutation %d not covered", i)
		}
	}
}

func TestCheckpointSignature(t *testing.T) {
	pub, priv := testKey(1)
	otherPub, _ := testKey(2)
	s := NewSigner("k1", priv)
	cp := s.Sign(42, "ab"+Genesis[2:], time.Date(2025, 5, 5, 5, 5, 5, 5, time.FixedZone("Y", 7200)))
	if err := VerifyCheckpoint(cp, pub); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(c *Checkpoint){
		"seq":  func(c *Checkpoint) { c.Seq++ },
		"head": func(c *Checkpoint) { c.Head = Genesis },
		"time": func(c *Checkpoint) { c.Time = c.Time.Add(time.Nanosecond) },
		"sig":  func(c *Checkpoint) { c.Sig = "A" + c.Sig[1:] },
		"b64":  func(c *Checkpoint) { c.Sig = "!!" },
	}
	for name, mut := range cases {
		c := cp
		mut(&c)
		if VerifyCheckpoint(c, pub) == nil {
			t.Errorf("tampered %s verifies", name)
		}
	}
	if VerifyCheckpoint(cp, otherPub) == nil {
		t.Error("verifies with another key")
	}
	if VerifyCheckpoint(cp, pub[:5]) == nil {
		t.Error("verifies with a short key")
	}
}

func TestCheckpointFile(t *testing.T) {
	pub, priv := testKey(1)
	s := NewSigner("k1", priv)
	path := filepath.Join(t.TempDir(), "audit.checkpoints")
	f, err := OpenCheckpointFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Checkpoint{s.Sign(1, Genesis, time.Now()), s.Sign(2, "ff"+Genesis[2:], time.Now())}
	for _, cp := range want {
		if err := f.Write(cp); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	// Reopening appends rather than truncating.
	f, err = OpenCheckpointFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, s.Sign(3, Genesis, time.Now()))
	if err := f.Write(want[2]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := ReadCheckpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d checkpoints", len(got))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].Head != want[i].Head || !got[i].Time.Equal(want[i].Time) ||
			got[i].KeyID != want[i].KeyID || got[i].Sig != want[i].Sig {
			t.Errorf("checkpoint %d: %+v != %+v", i, got[i], want[i])
		}
		if err := VerifyCheckpoint(got[i], pub); err != nil {
			t.Errorf("checkpoint %d after round trip: %v", i, err)
		}
	}

	// A torn final line (crash mid-write) is skipped; corruption elsewhere is an error.
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(data, `{"seq":4,"he`...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadCheckpoints(path); err != nil || len(got) != 3 {
		t.Fatalf("torn tail: %d %v", len(got), err)
	}
	if err := os.WriteFile(path, append([]byte("garbage\n"), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCheckpoints(path); err == nil {
		t.Fatal("corrupt line accepted")
	}

	// A looser existing file is tightened on open.
	loose := filepath.Join(t.TempDir(), "loose")
	if err := os.WriteFile(loose, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err = OpenCheckpointFile(loose)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if st, _ := os.Stat(loose); st.Mode().Perm() != 0o600 {
		t.Fatalf("loose mode %v", st.Mode().Perm())
	}
}

// decodeCanonical parses Canonical's output back into fields; if it always
// recovers the original fields, the encoding is injective.
func decodeCanonical(b []byte) (seq int64, fields []string, ok bool) {
	next := func() (string, bool) {
		if len(b) < 4 {
			return "", false
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			return "", false
		}
		s := string(b[4 : 4+n])
		b = b[4+n:]
		return s, true
	}
	v, ok := next()
	if !ok || v != canonicalVersion || len(b) < 8 {
		return 0, nil, false
	}
	seq = int64(binary.BigEndian.Uint64(b))
	b = b[8:]
	for len(b) > 0 {
		s, ok := next()
		if !ok {
			return 0, nil, false
		}
		fields = append(fields, s)
	}
	return seq, fields, true
}

func FuzzCanonical(f *testing.F) {
	f.Add(int64(1), int64(1700000000123456000), "anonymous", "clinician", "inference", "/v1/query", "", "req-1", "ok", "", Genesis)
	f.Fuzz(func(t *testing.T, seq, nanos int64, actor, role, action, resource, patient, reqID, outcome, reason, prev string) {
		mk := func() Event {
			return Event{Seq: seq, Time: time.Unix(0, nanos), Actor: actor, Role: role, Action: action, Resource: resource,
				Patient: patient, RequestID: reqID, Outcome: outcome, Reason: reason, Prev: prev}
		}
		a, b := mk(), mk()
		ca := a.Canonical()
		if !bytes.Equal(ca, b.Canonical()) || a.ComputeHash() != b.ComputeHash() {
			t.Fatal("equal events, different bytes")
		}
		gotSeq, fields, ok := decodeCanonical(ca)
		want := []string{a.Time.UTC().Format(time.RFC3339Nano), actor, role, action, resource, patient, reqID, outcome, reason, prev}
		if !ok || gotSeq != seq || len(fields) != len(want) {
			t.Fatalf("cannot decode: %v %d %q", ok, gotSeq, fields)
		}
		for i := range want {
			if fields[i] != want[i] {
				t.Fatalf("field %d = %q, want %q", i, fields[i], want[i])
			}
		}
	})
}

func BenchmarkAppendMemory(b *testing.B) {
	c := NewChain(NewMemory(), nil)
	e := sampleEvent(1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify10k(b *testing.B) {
	m := buildChain(b, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := Verify(ctx, m, nil, nil)
		if err != nil || !r.OK {
			b.Fatal(r, err)
		}
	}
}

// FuzzParsePublicKeys: any input is either a key map of 32-byte keys or an error, never a panic.
func FuzzParsePublicKeys(f *testing.F) {
	for _, s := range []string{"", "a1:" + strings.Repeat("A", 43) + "=", "a:b,c:d", ",,,", "id:", ":AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := ParsePublicKeys(s)
		if err != nil {
			return
		}
		for id, k := range keys {
			if id == "" || len(k) != 32 {
				t.Fatalf("%q: key %q of %d bytes", s, id, len(k))
			}
		}
	})
}

func TestWebhookDeliversCheckpoints(t *testing.T) {
	got := make(chan Checkpoint, 4)
	fails := 1 // the first delivery fails: the sender retries
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var cp Checkpoint
		if err := json.NewDecoder(r.Body).Decode(&cp); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook body: %v", err)
		}
		got <- cp
	}))
	defer srv.Close()
	_, priv, _ := ed25519.GenerateKey(nil)
	s := NewSigner("a1", priv)
	w := NewWebhook(srv.URL, t.Logf)
	want := s.Sign(7, strings.Repeat("ab", 32), time.Now())
	if err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	w.Close() // sends what is queued, retries included
	select {
	case cp := <-got:
		if cp.Seq != 7 || cp.Sig != want.Sig || cp.KeyID != "a1" {
			t.Fatalf("received %+v, want %+v", cp, want)
		}
	default:
		t.Fatal("checkpoint not delivered")
	}
}
