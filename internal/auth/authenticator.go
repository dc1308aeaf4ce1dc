package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"medserve/internal/store"
)

// KeyStore is the part of store.Store that API keys need.
type KeyStore interface {
	APIKey(ctx context.Context, id string) (store.APIKey, error)
	CreateAPIKey(ctx context.Context, k store.APIKey) error
	ListAPIKeys(ctx context.Context) ([]store.APIKey, error)
}

// Key lookups are cached for keyCacheTTL so the store is not read on every
// request; at most keyCacheMax keys are held.
const (
	keyCacheTTL = 10 * time.Second
	keyCacheMax = 4096
)

// Authenticator identifies the caller of an HTTP request from its
// `Authorization: Bearer <token>` header: an API key ("msk_…") or, when
// configured, a JWT.
//
// Key records read from the store are cached in memory for 10 s, so a
// revocation (or a key created on another replica) takes effect within
// 10 s on every replica; Forget drops a key at once on this one. Only
// records that exist are cached, and only after a well-formed token named
// them, so made-up ids never enter the cache: each costs a store read,
// which the gateway's rate limits bound. The secret is checked against the
// record's hash on every request, cached or not.
type Authenticator struct {
	keys KeyStore
	jwt  *JWTConfig // nil: JWTs are refused
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cachedKey // by key id
}

type cachedKey struct {
	key     store.APIKey
	fetched time.Time
}

// NewAuthenticator returns an authenticator over keys; jwt nil turns JWTs
// off, now nil means time.Now. The JWT configuration is copied.
func NewAuthenticator(keys KeyStore, jwt *JWTConfig, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{keys: keys, now: now, cache: map[string]cachedKey{}}
	if jwt != nil {
		c := *jwt
		a.jwt = &c
	}
	return a
}

// invalid returns an ErrInvalidCredentials naming why (a fixed text or a
// validated key id, never the token).
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCredentials, fmt.Sprintf(format, args...))
}

// Authenticate returns the request's principal.
//
// Errors: ErrNoCredentials when there is no Authorization header (or it is
// empty); an error wrapping ErrInvalidCredentials when the credentials are
// not accepted (another scheme than Bearer, several headers, a malformed,
// unknown or revoked key, a wrong secret, a JWT that fails VerifyJWT, a
// JWT while JWTs are off). Any other error means the check itself failed
// (the store is unreachable, the JWT configuration is unusable): the server
// answers 5xx, not 401.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 || len(vals) == 1 && strings.TrimSpace(vals[0]) == "" {
		return Principal{}, ErrNoCredentials
	}
	if len(vals) > 1 {
		return Principal{}, invalid("several Authorization headers")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, invalid("not a Bearer token")
	}
	token = strings.TrimSpace(token)
	switch {
	case token == "":
		return Principal{}, invalid("empty bearer token")
	case len(token) > maxTokenBytes:
		return Principal{}, invalid("bearer token too large")
	case IsKeyToken(token):
		return a.authenticateKey(r.Context(), token)
	case a.jwt == nil:
		return Principal{}, invalid("not an API key, and JWTs are not accepted")
	}
	return VerifyJWT(token, *a.jwt, a.now())
}

func (a *Authenticator) authenticateKey(ctx context.Context, token string) (Principal, error) {
	id, secret, ok := ParseToken(token)
	if !ok {
		return Principal{}, invalid("malformed API key")
	}
	k, err := a.lookup(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, invalid("unknown API key %s", id)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: API key %s: %w", id, err)
	}
	if !secretMatches(secret, k.SecretHash) {
		return Principal{}, invalid("wrong secret for API key %s", id)
	}
	if k.RevokedAt != nil {
		return Principal{}, invalid("API key %s is revoked", id)
	}
	if !ValidRole(k.Role) {
		return Principal{}, invalid("API key %s has no valid role", id)
	}
	return Principal{ID: k.ID, Role: k.Role, Kind: KindKey, Limits: k.Limits}, nil
}

// lookup returns the key record for id, from the cache while it is fresh.
func (a *Authenticator) lookup(ctx context.Context, id string) (store.APIKey, error) {
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[id]
	a.mu.Unlock()
	// A clock that went backwards also makes the entry stale.
	if ok && !now.Before(c.fetched) && now.Sub(c.fetched) < keyCacheTTL {
		return c.key, nil
	}
	k, err := a.keys.APIKey(ctx, id)
	if err != nil {
		if ok {
			a.Forget(id)
		}
		return store.APIKey{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, held := a.cache[id]; !held && len(a.cache) >= keyCacheMax {
		a.evict(now)
	}
	a.cache[id] = cachedKey{key: k, fetched: now}
	return k, nil
}

// evict makes room in the full cache: stale entries go first, and if all
// are fresh an arbitrary one does. The caller holds mu.
func (a *Authenticator) evict(now time.Time) {
	for id, c := range a.cache {
		if now.Before(c.fetched) || now.Sub(c.fetched) >= keyCacheTTL {
			delete(a.cache, id)
		}
	}
	for id := range a.cache {
		if len(a.cache) < keyCacheMax {
			break
		}
		delete(a.cache, id)
	}
}

// Forget drops the cached record of key id, so a revocation made through
// this process holds at once here (other replicas see it within the TTL).
func (a *Authenticator) Forget(id string) {
	a.mu.Lock()
	delete(a.cache, id)
	a.mu.Unlock()
}
