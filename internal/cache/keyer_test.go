package cache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// Test secrets are strings, converted at each use, so no test can alter
// another's secret.
const (
	testSecretStr  = "0123456789abcdef0123456789abcdef"
	otherSecretStr = "fedcba9876543210fedcba9876543210"
)

func mustKeyer(t testing.TB, id string, secret []byte) *Keyer {
	t.Helper()
	k, err := NewKeyer(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkKeyFormat verifies id + ":" + 64 lowercase hex characters.
func checkKeyFormat(t testing.TB, id, key string) {
	t.Helper()
	hexPart, ok := strings.CutPrefix(key, id+":")
	if !ok || len(hexPart) != 64 {
		t.Fatalf("key %q: want %q prefix and 64 hex characters", key, id+":")
	}
	if _, err := hex.DecodeString(hexPart); err != nil || strings.ToLower(hexPart) != hexPart {
		t.Fatalf("key %q: not lowercase hex", key)
	}
}

func TestNewKeyerValidation(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		secret []byte
		ok     bool
	}{
		{"valid", "k1", []byte(testSecretStr), true},
		{"16-byte secret", "k1", []byte(testSecretStr)[:16], true},
		{"15-byte secret", "k1", []byte(testSecretStr)[:15], false},
		{"nil secret", "k1", nil, false},
		{"empty id", "", []byte(testSecretStr), false},
		{"colon in id", "k:1", []byte(testSecretStr), false},
		{"space in id", "k 1", []byte(testSecretStr), false},
		{"long id", strings.Repeat("k", 33), []byte(testSecretStr), false},
		{"dotted id", "2025-01.a_b", []byte(testSecretStr), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKeyer(tt.id, tt.secret)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && k.ID() != tt.id {
				t.Fatalf("ID() = %q", k.ID())
			}
		})
	}
}

func TestKeyerDeterministicAndFormat(t *testing.T) {
	k := mustKeyer(t, "k1", []byte(testSecretStr))
	a := k.Key("triage", "model-v3", "patient-123")
	b := mustKeyer(t, "k1", []byte(testSecretStr)).Key("triage", "model-v3", "patient-123")
	if a != b || a != k.Key("triage", "model-v3", "patient-123") {
		t.Fatalf("not deterministic: %q vs %q", a, b)
	}
	checkKeyFormat(t, "k1", a)
	checkKeyFormat(t, "k1", k.Key())
	checkKeyFormat(t, "k1", k.Key(strings.Repeat("long", 5000))) // spans several buffer flushes
}

func TestKeyerSecretAndIDMatter(t *testing.T) {
	parts := []string{"clinical_decision", "patient-123"}
	k1 := mustKeyer(t, "k1", []byte(testSecretStr)).Key(parts...)
	k1other := mustKeyer(t, "k1", []byte(otherSecretStr)).Key(parts...)
	k2 := mustKeyer(t, "k2", []byte(testSecretStr)).Key(parts...)
	if k1 == k1other {
		t.Fatal("different secrets gave the same key")
	}
	if k1 == k2 || k1[3:] != k2[3:] {
		// Same secret, different id: same MAC, distinct keys.
		t.Fatalf("key ids: %q vs %q", k1, k2)
	}
	// The secret is copied: wiping the caller's slice changes nothing.
	sec := []byte(testSecretStr)
	k := mustKeyer(t, "k1", sec)
	clear(sec)
	if k.Key(parts...) != k1 {
		t.Fatal("Keyer depends on the caller's secret slice")
	}
}

// referenceKey is the Key construction written plainly: one buffer, one MAC.
func referenceKey(id string, secret []byte, parts ...string) string {
	var msg []byte
	for _, p := range parts {
		msg = binary.BigEndian.AppendUint64(msg, uint64(len(p)))
		msg = append(msg, p...)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(msg)
	return id + ":" + hex.EncodeToString(m.Sum(nil))
}

func TestKeyerMatchesReference(t *testing.T) {
	k := mustKeyer(t, "k1", []byte(testSecretStr))
	// Sizes around the 1024-byte scratch buffer: a length prefix that would
	// straddle it, a part that fills it exactly, parts spanning many flushes.
	sizes := []int{0, 1, 7, 8, 9, 1000, 1008, 1015, 1016, 1017, 1023, 1024, 1025, 2048, 5000}
	for _, n := range sizes {
		for _, m := range []int{0, 1, 8, 1016} {
			a, b := strings.Repeat("a", n), strings.Repeat("b", m)
			for _, parts := range [][]string{{a}, {a, b}, {b, a, b}} {
				if got, want := k.Key(parts...), referenceKey("k1", []byte(testSecretStr), parts...); got != want {
					t.Fatalf("sizes %d/%d, %d parts: %q, want %q", n, m, len(parts), got, want)
				}
			}
		}
	}
}

func TestKeyerLengthPrefixing(t *testing.T) {
	k := mustKeyer(t, "k1", []byte(testSecretStr))
	groups := [][][]string{
		{{"ab", "c"}, {"a", "bc"}, {"abc"}, {"abc", ""}, {"", "abc"}, {"a", "b", "c"}},
		{{}, {""}, {"", ""}},
		// A part that looks like a length prefix must not forge a boundary.
		{{"a\x00\x00\x00\x00\x00\x00\x00\x01b"}, {"a", "b"}},
	}
	for _, g := range groups {
		seen := map[string][]string{}
		for _, parts := range g {
			key := k.Key(parts...)
			if prev, dup := seen[key]; dup {
				t.Fatalf("%q and %q collide", prev, parts)
			}
			seen[key] = parts
		}
	}
}

func TestKeyerNoPartInClear(t *testing.T) {
	k := mustKeyer(t, "k1", []byte(testSecretStr))
	parts := []string{"MRN-0012345", "John Smith", "1970-01-01", "chest pain", "k1"}
	key := k.Key(parts...)
	body := strings.TrimPrefix(key, "k1:")
	for _, p := range parts {
		for _, form := range []string{p, strings.ToLower(p), hex.EncodeToString([]byte(p))} {
			if strings.Contains(body, form) {
				t.Errorf("part %q appears in key %q as %q", p, key, form)
			}
		}
	}
}

func FuzzKeyer(f *testing.F) {
	f.Add("ab", "c", "")
	f.Add("", "", "")
	f.Add("patient-123", "model-v3", "\x00\x00\x00\x00\x00\x00\x00\x01")
	f.Add(strings.Repeat("x", 300), "é", "\xff")
	k := mustKeyer(f, "k1", []byte(testSecretStr))
	f.Fuzz(func(t *testing.T, a, b, c string) {
		// Hash coverage grows with input length, so long inputs keep looking
		// "new" and the fuzzer spends its whole budget minimising them. Long
		// parts and buffer boundaries are covered by TestKeyerMatchesReference.
		if len(a)+len(b)+len(c) > 512 {
			return
		}
		key := k.Key(a, b, c)
		checkKeyFormat(t, "k1", key)
		if want := referenceKey("k1", []byte(testSecretStr), a, b, c); key != want {
			t.Fatalf("Key = %q, reference %q", key, want)
		}
		if key != k.Key(a, b, c) {
			t.Fatal("not deterministic")
		}
		// Moving a boundary changes the key (length prefixing).
		if len(b) > 0 && key == k.Key(a+b[:1], b[1:], c) {
			t.Fatalf("boundary shift collides for %q %q %q", a, b, c)
		}
		if key == k.Key(a, b+c) {
			t.Fatalf("part count change collides for %q %q %q", a, b, c)
		}
	})
}
