package cache

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"medserve/internal/phi"
)

func testKeyring(t testing.TB, id string, b byte) *phi.Keyring {
	t.Helper()
	kr, err := phi.NewKeyring(phi.Key{ID: id, Secret: bytes.Repeat([]byte{b}, phi.SecretSize)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

const secretAnswer = `{"a":{"acuity":2,"note":"chest pain, troponin 0.9"}}`

func TestSealedRoundTripAndAtRest(t *testing.T) {
	inner := newFakeLevel("l2")
	s := NewSealed(inner, testKeyring(t, "c1", 1))
	ctx := context.Background()
	if s.Name() != "l2" {
		t.Fatalf("Name = %q", s.Name())
	}
	if err := s.Set(ctx, "k", ClinicalDecision, []byte(secretAnswer)); err != nil {
		t.Fatal(err)
	}
	raw, _ := inner.value("k")
	if raw == "" || bytes.Contains([]byte(raw), []byte("troponin")) || raw == secretAnswer {
		t.Fatalf("stored value is not sealed: %q", raw)
	}
	v, ok, err := s.Get(ctx, "k")
	if err != nil || !ok || string(v) != secretAnswer {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := s.Get(ctx, "absent"); ok || err != nil {
		t.Fatalf("Get(absent) = %v, %v; want a plain miss", ok, err)
	}
}

func TestSealedValueThatDoesNotOpenIsAMiss(t *testing.T) {
	ctx := context.Background()
	kr := testKeyring(t, "c1", 1)
	inner := newFakeLevel("l2")
	s := NewSealed(inner, kr)
	if err := s.Set(ctx, "k1", ClinicalDecision, []byte(secretAnswer)); err != nil {
		t.Fatal(err)
	}
	sealed, _ := inner.value("k1")
	other, _ := NewSealed(newFakeLevel("l2"), testKeyring(t, "c2", 2)).sealer.Seal([]byte(secretAnswer), sealAD("k5"))

	tests := []struct {
		name, key, stored string
	}{
		{"moved to another key", "k2", sealed},
		{"tampered", "k3", sealed[:len(sealed)-2] + "AA"},
		{"not sealed at all", "k4", secretAnswer},
		{"sealed under an unknown key", "k5", other},
		{"empty", "k6", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner.put(tt.key, tt.stored)
			v, ok, err := s.Get(ctx, tt.key)
			if ok || v != nil || !errors.Is(err, ErrUnsealable) {
				t.Fatalf("Get = %q, %v, %v; want a miss with ErrUnsealable", v, ok, err)
			}
		})
	}

	// In a Tiered cache such a value is a miss, counted as an error, and
	// the recomputed answer replaces it.
	obs := newLevelObserver()
	c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{s}, TieredOptions{Observer: obs})
	v, level, err := c.Do(ctx, "k2", func(context.Context) ([]byte, error) { return []byte("fresh"), nil })
	if err != nil || string(v) != "fresh" || level != "" {
		t.Fatalf("Do = %q, %q, %v; want a fresh computation", v, level, err)
	}
	c.Close()
	if got := obs.count(obs.errors, "l2"); got != 1 {
		t.Fatalf("observer errors[l2] = %d, want 1", got)
	}
	if v, ok, err := s.Get(ctx, "k2"); err != nil || !ok || string(v) != "fresh" {
		t.Fatalf("after recompute Get = %q, %v, %v", v, ok, err)
	}
}

func TestSealedUnknownClassNotStored(t *testing.T) {
	inner := newFakeLevel("l3")
	s := NewSealed(inner, testKeyring(t, "c1", 1))
	if err := s.Set(context.Background(), "k", Class("nope"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if n := inner.sets.Load(); n != 0 {
		t.Fatalf("inner sets = %d, want 0", n)
	}
}

func TestSealedPassesErrorsThrough(t *testing.T) {
	inner := newFakeLevel("l2")
	inner.getErr = ErrLevelDown
	s := NewSealed(inner, testKeyring(t, "c1", 1))
	if _, ok, err := s.Get(context.Background(), "k"); ok || !errors.Is(err, ErrLevelDown) {
		t.Fatalf("Get = %v, %v; want ErrLevelDown", ok, err)
	}
}

// downLevel is a fakeLevel that reports itself down, as Redis does while
// its breaker is open.
type downLevel struct {
	*fakeLevel
	down bool
}

func (d downLevel) Down() bool { return d.down }

func TestSealedSkipsSealingForALevelThatIsDown(t *testing.T) {
	inner := downLevel{fakeLevel: newFakeLevel("l2"), down: true}
	s := NewSealed(inner, testKeyring(t, "c1", 1))
	if err := s.Set(context.Background(), "k", ClinicalDecision, []byte("v")); !errors.Is(err, ErrLevelDown) {
		t.Fatalf("Set = %v; want ErrLevelDown", err)
	}
	if n := inner.sets.Load(); n != 0 {
		t.Fatalf("inner sets = %d, want 0", n)
	}
	inner.down = false
	s = NewSealed(inner, testKeyring(t, "c1", 1))
	if err := s.Set(context.Background(), "k", ClinicalDecision, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(context.Background(), "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get = %q, %v, %v", v, ok, err)
	}
}
