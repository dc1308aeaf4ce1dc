package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"medserve/internal/store"
	"medserve/internal/store/sqlite"
)

// countingStore counts key reads, and can be made to fail.
type countingStore struct {
	KeyStore
	reads atomic.Int64
	fail  atomic.Bool
}

func (s *countingStore) APIKey(ctx context.Context, id string) (store.APIKey, error) {
	s.reads.Add(1)
	if s.fail.Load() {
		return store.APIKey{}, errors.New("database unreachable")
	}
	return s.KeyStore.APIKey(ctx, id)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func authWith(a *Authenticator, header ...string) (Principal, error) {
	r := httptest.NewRequest("GET", "/api/v1/inference", nil)
	for _, h := range header {
		r.Header.Add("Authorization", h)
	}
	return a.Authenticate(r)
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cs := &countingStore{KeyStore: db}
	clk := &clock{t: testNow}
	cfg := testJWTConfig(t)
	a := NewAuthenticator(cs, &cfg, clk.now)

	svc, svcToken, err := CreateKey(ctx, db, RoleService, "integration engine", "inference=600/min burst 100", testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, adminToken, err := CreateKey(ctx, db, RoleAdmin, "ops", "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, _, unknownToken, _ := NewKey()
	svcID, _, _ := ParseToken(svcToken)
	_, otherSecret, _, _ := NewKey()
	wrongSecret := "msk_" + svcID + "_" + otherSecret
	jwt := jws(t, hdr("ES256", "ec256"), baseClaims(), keys(t).p256, false)

	wantSvc := Principal{ID: svc.ID, Role: RoleService, Kind: KindKey, Limits: "inference=600/min burst 100"}
	tests := []struct {
		name    string
		headers []string
		want    Principal
		wantErr error
	}{
		{"no header", nil, Principal{}, ErrNoCredentials},
		{"empty header", []string{""}, Principal{}, ErrNoCredentials},
		{"blank header", []string{"   "}, Principal{}, ErrNoCredentials},
		{"API key", []string{"Bearer " + svcToken}, wantSvc, nil},
		{"scheme in lower case", []string{"bearer " + svcToken}, wantSvc, nil},
		{"admin key", []string{"Bearer " + adminToken}, Principal{ID: adminToken[4:17], Role: RoleAdmin, Kind: KindKey}, nil},
		{"JWT", []string{"Bearer " + jwt}, Principal{ID: "jwt:alice", Role: RoleClinician, Kind: KindJWT}, nil},
		{"basic scheme", []string{"Basic " + svcToken}, Principal{}, ErrInvalidCredentials},
		{"token without scheme", []string{svcToken}, Principal{}, ErrInvalidCredentials},
		{"scheme without token", []string{"Bearer"}, Principal{}, ErrInvalidCredentials},
		{"scheme and spaces", []string{"Bearer   "}, Principal{}, ErrInvalidCredentials},
		{"two headers", []string{"Bearer " + svcToken, "Bearer " + adminToken}, Principal{}, ErrInvalidCredentials},
		{"unknown key", []string{"Bearer " + unknownToken}, Principal{}, ErrInvalidCredentials},
		{"wrong secret", []string{"Bearer " + wrongSecret}, Principal{}, ErrInvalidCredentials},
		{"malformed key", []string{"Bearer msk_" + svcID + "_short"}, Principal{}, ErrInvalidCredentials},
		{"garbage", []string{"Bearer hello"}, Principal{}, ErrInvalidCredentials},
		{"oversized", []string{"Bearer " + strings.Repeat("a", maxTokenBytes+1)}, Principal{}, ErrInvalidCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := authWith(a, tc.headers...)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %+v, %v; want %v", p, err, tc.wantErr)
				}
				if tc.wantErr == ErrInvalidCredentials && errors.Is(err, ErrNoCredentials) {
					t.Fatal("invalid credentials reported as none")
				}
				for _, h := range tc.headers {
					if tok := strings.TrimPrefix(h, "Bearer "); len(tok) > 20 && strings.Contains(err.Error(), tok[17:]) {
						t.Fatalf("error %q holds the token's secret", err)
					}
				}
				return
			}
			if err != nil || p != tc.want {
				t.Fatalf("got %+v, %v; want %+v", p, err, tc.want)
			}
		})
	}

	// A malformed key never reaches the store.
	before := cs.reads.Load()
	authWith(a, "Bearer msk_nothing")
	authWith(a, "Bearer "+svcToken[:len(svcToken)-1])
	if n := cs.reads.Load() - before; n != 0 {
		t.Errorf("malformed keys read the store %d times", n)
	}
}

func TestAuthenticateJWTOff(t *testing.T) {
	db := openStore(t)
	a := NewAuthenticator(db, nil, nil)
	jwt := jws(t, hdr("ES256", "ec256"), baseClaims(), keys(t).p256, false)
	if _, err := authWith(a, "Bearer "+jwt); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a JWT with JWTs off: %v", err)
	}
}

// A configuration VerifyJWT refuses is the server's fault, not the caller's.
func TestAuthenticateJWTMisconfigured(t *testing.T) {
	db := openStore(t)
	cfg := testJWTConfig(t)
	cfg.Audience = ""
	a := NewAuthenticator(db, &cfg, func() time.Time { return testNow })
	jwt := jws(t, hdr("ES256", "ec256"), baseClaims(), keys(t).p256, false)
	if _, err := authWith(a, "Bearer "+jwt); err == nil || errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrNoCredentials) {
		t.Fatalf("misconfigured JWT: %v; want a server error", err)
	}
}

func TestAuthenticateCacheAndRevocation(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cs := &countingStore{KeyStore: db}
	clk := &clock{t: testNow}
	a := NewAuthenticator(cs, nil, clk.now)
	k, token, err := CreateKey(ctx, db, RoleClinician, "ward 3", "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(want bool) {
		t.Helper()
		_, err := authWith(a, "Bearer "+token)
		if want && err != nil {
			t.Fatalf("refused: %v", err)
		}
		if !want && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("got %v, want ErrInvalidCredentials", err)
		}
	}
	for i := 0; i < 5; i++ {
		ok(true)
	}
	if n := cs.reads.Load(); n != 1 {
		t.Fatalf("5 requests read the store %d times, want 1", n)
	}
	// A wrong secret is checked against the cached hash, and refused.
	_, other, _, _ := NewKey()
	if _, err := authWith(a, "Bearer msk_"+k.ID+"_"+other); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong secret with a cached key: %v", err)
	}

	// Revoked in the store: honoured within the TTL.
	if err := db.RevokeAPIKey(ctx, k.ID, testNow); err != nil {
		t.Fatal(err)
	}
	clk.add(keyCacheTTL - time.Millisecond)
	ok(true) // still cached: the documented window
	clk.add(time.Millisecond)
	ok(false)
	if n := cs.reads.Load(); n != 2 {
		t.Fatalf("store read %d times, want 2", n)
	}
	ok(false) // the revoked record is cached too, and still refused
	if n := cs.reads.Load(); n != 2 {
		t.Fatalf("store read %d times, want 2", n)
	}

	// Forget makes a revocation hold at once.
	k2, token2, err := CreateKey(ctx, db, RoleAuditor, "", "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authWith(a, "Bearer "+token2); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAPIKey(ctx, k2.ID, clk.now()); err != nil {
		t.Fatal(err)
	}
	a.Forget(k2.ID)
	if _, err := authWith(a, "Bearer "+token2); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("revoked and forgotten: %v", err)
	}

	// A clock that jumps back does not extend an entry's life.
	k3, token3, err := CreateKey(ctx, db, RoleService, "", "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	authWith(a, "Bearer "+token3)
	reads := cs.reads.Load()
	clk.add(-time.Hour)
	authWith(a, "Bearer "+token3)
	if cs.reads.Load() != reads+1 {
		t.Fatalf("an entry from the future was served from the cache")
	}
	_ = k3
}

func TestAuthenticateUnknownIDsNotCached(t *testing.T) {
	db := openStore(t)
	cs := &countingStore{KeyStore: db}
	a := NewAuthenticator(cs, nil, func() time.Time { return testNow })
	for i := 0; i < 100; i++ {
		_, _, token, _ := NewKey()
		if _, err := authWith(a, "Bearer "+token); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if n := cs.reads.Load(); n != 100 {
		t.Fatalf("%d store reads for 100 unknown keys, want 100 (none cached)", n)
	}
	a.mu.Lock()
	n := len(a.cache)
	a.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d unknown ids cached", n)
	}
}

// The store failing is neither "no credentials" nor "invalid credentials".
func TestAuthenticateStoreFailure(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cs := &countingStore{KeyStore: db}
	clk := &clock{t: testNow}
	a := NewAuthenticator(cs, nil, clk.now)
	_, token, err := CreateKey(ctx, db, RoleClinician, "", "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	cs.fail.Store(true)
	_, err = authWith(a, "Bearer "+token)
	if err == nil || errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrNoCredentials) {
		t.Fatalf("store failure: %v; want a server error", err)
	}
	if strings.Contains(err.Error(), token[18:]) {
		t.Fatal("error holds the secret")
	}
}

// mapStore is an in-memory KeyStore for the cache bound test.
type mapStore struct{ keys map[string]store.APIKey }

func (m *mapStore) APIKey(_ context.Context, id string) (store.APIKey, error) {
	if k, ok := m.keys[id]; ok {
		return k, nil
	}
	return store.APIKey{}, store.ErrNotFound
}
func (m *mapStore) CreateAPIKey(_ context.Context, k store.APIKey) error {
	if _, dup := m.keys[k.ID]; dup {
		return fmt.Errorf("duplicate %s", k.ID)
	}
	m.keys[k.ID] = k
	return nil
}
func (m *mapStore) ListAPIKeys(context.Context) ([]store.APIKey, error) { return nil, nil }

func TestAuthenticateCacheBounded(t *testing.T) {
	ctx := context.Background()
	ms := &mapStore{keys: map[string]store.APIKey{}}
	clk := &clock{t: testNow}
	a := NewAuthenticator(ms, nil, clk.now)
	size := func() int { a.mu.Lock(); defer a.mu.Unlock(); return len(a.cache) }
	for i := 0; i < keyCacheMax+50; i++ {
		_, token, err := CreateKey(ctx, ms, RoleService, "", "", testNow)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := authWith(a, "Bearer "+token); err != nil {
			t.Fatal(err)
		}
	}
	if n := size(); n > keyCacheMax {
		t.Fatalf("cache holds %d keys, bound %d", n, keyCacheMax)
	}
	// Stale entries go first when a new key needs room.
	clk.add(keyCacheTTL)
	_, fresh, err := CreateKey(ctx, ms, RoleService, "", "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authWith(a, "Bearer "+fresh); err != nil {
		t.Fatal(err)
	}
	if n := size(); n != 1 {
		t.Fatalf("after the TTL and one lookup the cache holds %d keys, want 1", n)
	}
}

func TestEnsureBootstrapAdmin(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	path := filepath.Join(t.TempDir(), "bootstrap-admin.token")
	created, err := EnsureBootstrapAdmin(ctx, db, path)
	if err != nil || !created {
		t.Fatalf("first run: %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	p, err := authWith(NewAuthenticator(db, nil, nil), "Bearer "+token)
	if err != nil || p.Role != RoleAdmin || p.Kind != KindKey {
		t.Fatalf("bootstrap token: %+v, %v", p, err)
	}
	ks, err := db.ListAPIKeys(ctx)
	if err != nil || len(ks) != 1 || ks[0].Name != "bootstrap" || ks[0].Role != RoleAdmin {
		t.Fatalf("keys after bootstrap: %+v, %v", ks, err)
	}
	if strings.Contains(ks[0].SecretHash, token[18:]) {
		t.Fatal("the secret is stored in clear")
	}

	// Keys exist: nothing happens, even with the file gone, and a
	// revoked key still counts.
	os.Remove(path)
	if err := db.RevokeAPIKey(ctx, ks[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	created, err = EnsureBootstrapAdmin(ctx, db, path)
	if err != nil || created {
		t.Fatalf("second run: %v, %v", created, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("second run wrote the token file: %v", err)
	}

	// An empty store with a leftover file: refused, nothing stored, the
	// file untouched.
	db2 := openStore(t)
	leftover := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(leftover, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if created, err := EnsureBootstrapAdmin(ctx, db2, leftover); err == nil || created {
		t.Fatalf("leftover file: %v, %v; want an error", created, err)
	}
	if ks, _ := db2.ListAPIKeys(ctx); len(ks) != 0 {
		t.Fatalf("a key was stored without its token file: %+v", ks)
	}
	if b, _ := os.ReadFile(leftover); string(b) != "old\n" {
		t.Fatal("the leftover file was overwritten")
	}

	// The file cannot be written: no key is stored.
	if created, err := EnsureBootstrapAdmin(ctx, db2, filepath.Join(t.TempDir(), "missing", "token")); err == nil || created {
		t.Fatalf("unwritable path: %v, %v", created, err)
	}
	if ks, _ := db2.ListAPIKeys(ctx); len(ks) != 0 {
		t.Fatalf("a key was stored without its token file: %+v", ks)
	}
}

func TestCreateKey(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	for _, bad := range []struct{ role, name, limits string }{
		{"root", "", ""},
		{"", "", ""},
		{RoleAdmin, "two\nlines", ""},
		{RoleAdmin, "", strings.Repeat("x", 300)},
	} {
		if _, _, err := CreateKey(ctx, db, bad.role, bad.name, bad.limits, testNow); err == nil {
			t.Errorf("CreateKey(%q, %q, %.10q) accepted", bad.role, bad.name, bad.limits)
		}
	}
	k, token, err := CreateKey(ctx, db, RoleAuditor, "audit team", "", testNow.Add(1500*time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.APIKey(ctx, k.ID)
	if err != nil || got.SecretHash != k.SecretHash || !got.CreatedAt.Equal(k.CreatedAt) || got.Name != "audit team" {
		t.Fatalf("stored %+v, %v; returned %+v", got, err, k)
	}
	_, secret, _ := ParseToken(token)
	if got.SecretHash != HashSecret(secret) {
		t.Fatal("stored hash is not the secret's")
	}
}
