package phi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// secret returns a deterministic 32-byte secret so tests are reproducible.
func secret(b byte) []byte { return bytes.Repeat([]byte{b}, SecretSize) }

func mustRing(t testing.TB, cur Key, old ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(cur, old...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

func TestNewKeyringValidation(t *testing.T) {
	tests := []struct {
		name    string
		cur     Key
		old     []Key
		wantErr bool
	}{
		{"ok", Key{"k1", secret(1)}, nil, false},
		{"ok with old", Key{"k2", secret(2)}, []Key{{"k1", secret(1)}}, false},
		{"ok id charset", Key{"A-z_09", secret(1)}, nil, false},
		{"ok id 32", Key{strings.Repeat("a", 32), secret(1)}, nil, false},
		{"empty id", Key{"", secret(1)}, nil, true},
		{"id 33", Key{strings.Repeat("a", 33), secret(1)}, nil, true},
		{"id with colon", Key{"k:1", secret(1)}, nil, true},
		{"id with space", Key{"k 1", secret(1)}, nil, true},
		{"short secret", Key{"k1", make([]byte, 31)}, nil, true},
		{"long secret", Key{"k1", make([]byte, 33)}, nil, true},
		{"nil secret", Key{"k1", nil}, nil, true},
		{"duplicate id", Key{"k1", secret(1)}, []Key{{"k1", secret(2)}}, true},
		{"bad old", Key{"k2", secret(2)}, []Key{{"k1", secret(1)[:5]}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeyring(tt.cur, tt.old...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewKeyringCopiesSecret(t *testing.T) {
	s := secret(7)
	kr := mustRing(t, Key{"k1", s})
	before := kr.Pseudonym("P1")
	for i := range s {
		s[i] = 0
	}
	if got := kr.Pseudonym("P1"); got != before {
		t.Fatal("mutating the caller's secret changed the keyring")
	}
}

func TestPseudonym(t *testing.T) {
	k1 := mustRing(t, Key{"k1", secret(1)})
	k2 := mustRing(t, Key{"k2", secret(2)})
	k1other := mustRing(t, Key{"k1", secret(3)}) // same id, different secret
	tests := []struct {
		name string
		a, b string
		ra   *Keyring
		rb   *Keyring
		same bool
	}{
		{"deterministic", "MRN-12345", "MRN-12345", k1, k1, true},
		{"differs across keys", "MRN-12345", "MRN-12345", k1, k2, false},
		{"differs across secrets same id", "MRN-12345", "MRN-12345", k1, k1other, false},
		{"trims spaces", "  MRN-12345\t\n", "MRN-12345", k1, k1, true},
		{"case-sensitive", "mrn-12345", "MRN-12345", k1, k1, false},
		{"inner space kept", "MRN 12345", "MRN12345", k1, k1, false},
		{"different ids", "MRN-1", "MRN-2", k1, k1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pa, pb := tt.ra.Pseudonym(tt.a), tt.rb.Pseudonym(tt.b)
			if (pa == pb) != tt.same {
				t.Fatalf("Pseudonym(%q)=%s, Pseudonym(%q)=%s, want same=%v", tt.a, pa, tt.b, pb, tt.same)
			}
		})
	}
}

func TestPseudonymFormat(t *testing.T) {
	kr := mustRing(t, Key{"k1", secret(1)})
	for _, id := range []string{"", "MRN-12345", "123456789", "patient@example.org", strings.Repeat("x", 1000)} {
		p := kr.Pseudonym(id)
		kid, h, ok := strings.Cut(p, ":")
		if !ok || kid != "k1" {
			t.Fatalf("pseudonym %q lacks key id prefix", p)
		}
		if raw, err := hex.DecodeString(h); err != nil || len(raw) != 32 {
			t.Fatalf("pseudonym %q: hash part not 64 hex chars", p)
		}
		// No part of the identifier (of any meaningful length) may leak into the pseudonym.
		if len(id) >= 4 {
			for i := 0; i+4 <= len(id); i++ {
				if strings.Contains(h, id[i:i+4]) && strings.Trim(id[i:i+4], "0123456789abcdef") != "" {
					t.Fatalf("pseudonym %q contains %q from id", p, id[i:i+4])
				}
			}
		}
	}
	// Numeric ids can only share hex digits by chance; check the whole id never appears.
	if p := kr.Pseudonym("123456789"); strings.Contains(p, "123456789") {
		t.Fatalf("pseudonym %q contains id", p)
	}
}

// TestPseudonymKnownAnswer pins the construction (HKDF subkey, domain prefix, hex) so a refactor cannot silently
// change pseudonyms and break joins against stored rows.
func TestPseudonymKnownAnswer(t *testing.T) {
	kr := mustRing(t, Key{"k1", secret(1)})
	got := kr.Pseudonym("MRN-12345")
	if got != kr.keys[0].pseudonym("MRN-12345") || !strings.HasPrefix(got, "k1:") || len(got) != 3+64 {
		t.Fatalf("unexpected pseudonym %q", got)
	}
	if got != recipePseudonym(t, secret(1), "k1", "MRN-12345") {
		t.Fatalf("pseudonym does not follow the documented recipe")
	}
}

func TestPseudonymsRotation(t *testing.T) {
	old := Key{"k1", secret(1)}
	oldRing := mustRing(t, old)
	rotated := mustRing(t, Key{"k2", secret(2)}, old)
	ps := rotated.Pseudonyms(" MRN-9 ")
	if len(ps) != 2 {
		t.Fatalf("len = %d, want 2", len(ps))
	}
	if ps[0] != rotated.Pseudonym("MRN-9") {
		t.Errorf("first pseudonym is not the current key's")
	}
	if ps[1] != oldRing.Pseudonym("MRN-9") {
		t.Errorf("old key's pseudonym missing: rotation would break joins")
	}
	if rotated.CurrentID() != "k2" {
		t.Errorf("CurrentID = %q", rotated.CurrentID())
	}
	if ids := rotated.IDs(); len(ids) != 2 || ids[0] != "k2" || ids[1] != "k1" {
		t.Errorf("IDs = %v", ids)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := mustRing(t, Key{"k1", secret(1)})
	big := bytes.Repeat([]byte("chest pain radiating to left arm. "), (1<<20)/34+1)[:1<<20]
	tests := []struct {
		name string
		pt   []byte
		ad   string
	}{
		{"empty", []byte{}, "queries.text"},
		{"nil", nil, "queries.text"},
		{"one byte", []byte{0x42}, "queries.text"},
		{"text", []byte("Patient reports headache"), "patients.mrn"},
		{"empty ad", []byte("x"), ""},
		{"1 MiB", big, "queries.text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := kr.Seal(tt.pt, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(s, "k1:") {
				t.Fatalf("sealed value lacks key id: %.20q", s)
			}
			if len(tt.pt) >= 4 && strings.Contains(s, string(tt.pt[:4])) && tt.name == "text" {
				t.Fatalf("plaintext visible in sealed value")
			}
			got, err := kr.Open(s, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !bytes.Equal(got, tt.pt) {
				t.Fatalf("round trip mismatch (len %d vs %d)", len(got), len(tt.pt))
			}
		})
	}
}

func TestSealNonceRandom(t *testing.T) {
	kr := mustRing(t, Key{"k1", secret(1)})
	seen := map[string]bool{}
	for range 100 {
		s, err := kr.Seal([]byte("same"), "ad")
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatal("two seals of the same plaintext are equal: nonce reuse")
		}
		seen[s] = true
	}
}

func TestOpenFailures(t *testing.T) {
	kr := mustRing(t, Key{"k1", secret(1)})
	other := mustRing(t, Key{"k9", secret(9)})
	sameIDOtherSecret := mustRing(t, Key{"k1", secret(5)})
	s, err := kr.Seal([]byte("MRN-12345"), "patients.mrn")
	if err != nil {
		t.Fatal(err)
	}
	id, body, _ := strings.Cut(s, ":")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return id + ":" + base64.RawURLEncoding.EncodeToString(b)
	}
	otherSealed, _ := other.Seal([]byte("x"), "patients.mrn")
	tests := []struct {
		name   string
		ring   *Keyring
		sealed string
		ad     string
		want   error
	}{
		{"wrong ad", kr, s, "queries.text", ErrDecrypt},
		{"empty ad", kr, s, "", ErrDecrypt},
		{"flipped nonce bit", kr, flip(0), "patients.mrn", ErrDecrypt},
		{"flipped ciphertext bit", kr, flip(nonceSize), "patients.mrn", ErrDecrypt},
		{"flipped tag bit", kr, flip(len(raw) - 1), "patients.mrn", ErrDecrypt},
		{"truncated", kr, id + ":" + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), "patients.mrn", ErrDecrypt},
		{"too short", kr, id + ":" + base64.RawURLEncoding.EncodeToString(raw[:nonceSize+15]), "patients.mrn", ErrMalformed},
		{"unknown key id", kr, otherSealed, "patients.mrn", ErrUnknownKey},
		{"same id other secret", sameIDOtherSecret, s, "patients.mrn", ErrDecrypt},
		{"relabelled key id", mustRing(t, Key{"k1", secret(1)}, Key{"k9", secret(9)}), "k9:" + body, "patients.mrn", ErrDecrypt},
		{"empty", kr, "", "", ErrMalformed},
		{"no colon", kr, "k1" + body, "patients.mrn", ErrMalformed},
		{"empty id", kr, ":" + body, "patients.mrn", ErrMalformed},
		{"bad base64", kr, "k1:!!!!", "patients.mrn", ErrMalformed},
		{"padded base64", kr, "k1:" + base64.URLEncoding.EncodeToString(raw) + "==", "patients.mrn", ErrMalformed},
		{"only id", kr, "k1:", "patients.mrn", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.ring.Open(tt.sealed, tt.ad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if pt != nil {
				t.Fatal("plaintext returned alongside error")
			}
		})
	}
}

func TestOldKeyOpensAfterRotation(t *testing.T) {
	old := Key{"k1", secret(1)}
	before := mustRing(t, old)
	s, err := before.Seal([]byte("free text note"), "queries.text")
	if err != nil {
		t.Fatal(err)
	}
	after := mustRing(t, Key{"k2", secret(2)}, old)
	got, err := after.Open(s, "queries.text")
	if err != nil || string(got) != "free text note" {
		t.Fatalf("old ciphertext not readable after rotation: %v", err)
	}
	if !after.NeedsReseal(s) {
		t.Error("NeedsReseal = false for a k1 value under current k2")
	}
	s2, _ := after.Seal(got, "queries.text")
	if !strings.HasPrefix(s2, "k2:") || after.NeedsReseal(s2) {
		t.Errorf("re-sealed value %q not under current key", s2[:3])
	}
	if id, ok := KeyIDOf(s); !ok || id != "k1" {
		t.Errorf("KeyIDOf = %q, %v", id, ok)
	}
	// After dropping the old key entirely, its values must fail cleanly, not decrypt wrongly.
	dropped := mustRing(t, Key{"k2", secret(2)})
	if _, err := dropped.Open(s, "queries.text"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	kr := mustRing(t, Key{"k2", secret(2)}, Key{"k1", secret(1)})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				_ = kr.Pseudonyms("MRN")
				s, err := kr.Seal([]byte{byte(i), byte(j)}, "ad")
				if err != nil {
					t.Error(err)
					return
				}
				if pt, err := kr.Open(s, "ad"); err != nil || pt[0] != byte(i) {
					t.Error("concurrent round trip failed")
					return
				}
			}
		})
	}
	wg.Wait()
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(secret(1))
	k2 := base64.StdEncoding.EncodeToString(secret(2))
	k3raw := base64.RawURLEncoding.EncodeToString(secret(3))
	short := base64.StdEncoding.EncodeToString(secret(1)[:31])
	tests := []struct {
		name    string
		env     map[string]string
		wantOK  bool
		wantErr bool
		wantIDs []string
	}{
		{"unset", map[string]string{}, false, false, nil},
		{"blank", map[string]string{EnvKey: "  "}, false, false, nil},
		{"default id", map[string]string{EnvKey: k1}, true, false, []string{"k1"}},
		{"explicit id", map[string]string{EnvKey: k2, EnvKeyID: "2026-01"}, true, false, []string{"2026-01"}},
		{"trailing newline", map[string]string{EnvKey: k1 + "\n"}, true, false, []string{"k1"}},
		{"raw url base64", map[string]string{EnvKey: k3raw}, true, false, []string{"k1"}},
		{"old keys", map[string]string{EnvKey: k2, EnvKeyID: "k2", EnvOldKeys: "k1:" + k1 + ", k0:" + k3raw + ","}, true, false, []string{"k2", "k1", "k0"}},
		{"bad base64", map[string]string{EnvKey: "not*base64!"}, true, true, nil},
		{"wrong length", map[string]string{EnvKey: short}, true, true, nil},
		{"bad id", map[string]string{EnvKey: k1, EnvKeyID: "k:1"}, true, true, nil},
		{"duplicate ids", map[string]string{EnvKey: k2, EnvKeyID: "k1", EnvOldKeys: "k1:" + k1}, true, true, nil},
		{"duplicate old ids", map[string]string{EnvKey: k2, EnvKeyID: "k2", EnvOldKeys: "k1:" + k1 + ",k1:" + k3raw}, true, true, nil},
		{"old without colon", map[string]string{EnvKey: k2, EnvKeyID: "k2", EnvOldKeys: k1}, true, true, nil},
		{"old bad base64", map[string]string{EnvKey: k2, EnvKeyID: "k2", EnvOldKeys: "k1:@@@"}, true, true, nil},
		{"old wrong length", map[string]string{EnvKey: k2, EnvKeyID: "k2", EnvOldKeys: "k1:" + short}, true, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, ok, err := FromEnv(env(tt.env))
			if ok != tt.wantOK || (err != nil) != tt.wantErr {
				t.Fatalf("ok=%v err=%v, want ok=%v wantErr=%v", ok, err, tt.wantOK, tt.wantErr)
			}
			if err != nil {
				assertNoSecret(t, err.Error(), tt.env[EnvKey], tt.env[EnvOldKeys])
				return
			}
			if tt.wantIDs == nil {
				if kr != nil {
					t.Fatal("keyring returned when unset")
				}
				return
			}
			if got := strings.Join(kr.IDs(), ","); got != strings.Join(tt.wantIDs, ",") {
				t.Fatalf("IDs = %s, want %v", got, tt.wantIDs)
			}
		})
	}
}

func TestFromEnvMatchesNewKeyring(t *testing.T) {
	kr, ok, err := FromEnv(env(map[string]string{EnvKey: base64.StdEncoding.EncodeToString(secret(1))}))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if kr.Pseudonym("P") != mustRing(t, Key{"k1", secret(1)}).Pseudonym("P") {
		t.Fatal("env keyring differs from direct keyring")
	}
}

// assertNoSecret fails if any secret (or a long slice of it, or of its decoding) shows up in msg.
func assertNoSecret(t *testing.T, msg string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, part := range strings.Split(s, ",") {
			if _, b64, ok := strings.Cut(part, ":"); ok {
				part = b64
			}
			part = strings.TrimSpace(part)
			if len(part) >= 8 && strings.Contains(msg, part[:8]) {
				t.Fatalf("error message leaks key material: %q", msg)
			}
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "phi")
	path := filepath.Join(dir, "keyring.json")

	kr, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %04o, want 0600", st.Mode().Perm())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %04o, want 0700", dst.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}

	kr2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if kr.CurrentID() != kr2.CurrentID() || kr.Pseudonym("MRN-1") != kr2.Pseudonym("MRN-1") {
		t.Fatal("reloaded keyring differs")
	}
	s, _ := kr.Seal([]byte("note"), "t.c")
	if pt, err := kr2.Open(s, "t.c"); err != nil || string(pt) != "note" {
		t.Fatalf("reloaded keyring cannot open: %v", err)
	}

	// A fresh file must hold a distinct random key.
	kr3, _, err := LoadOrCreate(filepath.Join(t.TempDir(), "other", "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	if kr3.Pseudonym("MRN-1") == kr.Pseudonym("MRN-1") {
		t.Fatal("two generated keyrings share a key")
	}
}

func TestLoadOrCreateRefusesLooseMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyring.json")
			if _, _, err := LoadOrCreate(path); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreate(path)
			if err == nil || !strings.Contains(err.Error(), "group or others") {
				t.Fatalf("err = %v, want refusal", err)
			}
			assertNoSecret(t, err.Error(), fileSecrets(t, data)...)
		})
	}
}

func TestLoadBadFiles(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(secret(4))
	tests := []struct {
		name, content string
	}{
		{"not json", "{" + good},
		{"json with secret then junk", `{"version":1,"keys":[{"id":"k1","secret":"` + good + `"}]}x`},
		{"wrong version", `{"version":2,"keys":[{"id":"k1","secret":"` + good + `"}]}`},
		{"no keys", `{"version":1,"keys":[]}`},
		{"bad secret", `{"version":1,"keys":[{"id":"k1","secret":"` + good[:20] + `"}]}`},
		{"duplicate", `{"version":1,"keys":[{"id":"k1","secret":"` + good + `"},{"id":"k1","secret":"` + good + `"}]}`},
		{"type error", `{"version":1,"keys":[{"id":"k1","secret":12345678901234}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyring.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreate(path)
			if err == nil || created {
				t.Fatalf("created=%v err=%v, want error", created, err)
			}
			assertNoSecret(t, err.Error(), good, good[:20])
			// A corrupt keyring must never be replaced: that would orphan all sealed data.
			if data, _ := os.ReadFile(path); string(data) != tt.content {
				t.Fatal("corrupt keyring file was overwritten")
			}
		})
	}
}

func TestLoadWithRotatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	content := `{"version":1,"keys":[{"id":"k2","secret":"` + base64.StdEncoding.EncodeToString(secret(2)) +
		`"},{"id":"k1","secret":"` + base64.StdEncoding.EncodeToString(secret(1)) + `"}]}`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatal(created, err)
	}
	if kr.CurrentID() != "k2" || kr.Pseudonyms("P")[1] != mustRing(t, Key{"k1", secret(1)}).Pseudonym("P") {
		t.Fatal("rotated keyring file not loaded in order")
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "keyring.json")
	const n = 8
	rings := make([]*Keyring, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			kr, _, err := LoadOrCreate(path)
			if err != nil {
				t.Error(err)
				return
			}
			rings[i] = kr
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if rings[i] == nil || rings[0] == nil || rings[i].Pseudonym("x") != rings[0].Pseudonym("x") {
			t.Fatal("concurrent creators ended with different keys")
		}
	}
}

func fileSecrets(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	for _, part := range strings.Split(string(data), `"secret": "`)[1:] {
		s, _, _ := strings.Cut(part, `"`)
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatal("no secrets found in keyring file")
	}
	return out
}

func BenchmarkPseudonym(b *testing.B) {
	kr := mustRing(b, Key{"k1", secret(1)})
	b.ReportAllocs()
	for b.Loop() {
		_ = kr.Pseudonym("MRN-1234567")
	}
}

func BenchmarkSeal1KB(b *testing.B) {
	kr := mustRing(b, Key{"k1", secret(1)})
	pt := bytes.Repeat([]byte("a"), 1024)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Seal(pt, "queries.text"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHashKeyIsPerPurposeAndPerKey(t *testing.T) {
	a, err := NewKeyring(Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, SecretSize)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyring(Key{ID: "k2", Secret: bytes.Repeat([]byte{2}, SecretSize)})
	if err != nil {
		t.Fatal(err)
	}
	id, ka := a.HashKey()
	_, kb := b.HashKey()
	if id != "k1" || len(ka) != 32 || bytes.Equal(ka, kb) || bytes.Equal(ka, a.keys[0].macKey) {
		t.Fatalf("hash key must be 32 bytes, differ between secrets and from the pseudonym key")
	}
	ka[0] ^= 0xff
	if _, again := a.HashKey(); bytes.Equal(again, ka) {
		t.Fatal("HashKey must return a copy")
	}
}
