package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
	"unicode"

	"medserve/internal/store"
)

// maxLabelBytes bounds a key's name and limits.
const maxLabelBytes = 256

// CreateKey makes a new API key with the given role, name and rate-limit
// overrides, stores it (its secret's hash only) and returns the record and
// the token. The token is shown to the caller once and kept nowhere.
func CreateKey(ctx context.Context, keys KeyStore, role, name, limits string, now time.Time) (store.APIKey, string, error) {
	if !ValidRole(role) {
		return store.APIKey{}, "", fmt.Errorf("auth: role %q is not one of %s", role, strings.Join(Roles(), ", "))
	}
	for _, f := range [][2]string{{"name", name}, {"limits", limits}} {
		what, v := f[0], f[1]
		if len(v) > maxLabelBytes || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return store.APIKey{}, "", fmt.Errorf("auth: key %s must be at most %d bytes without control characters", what, maxLabelBytes)
		}
	}
	id, secret, token, err := NewKey()
	if err != nil {
		return store.APIKey{}, "", err
	}
	k := store.APIKey{ID: id, SecretHash: HashSecret(secret), Role: role, Name: name, Limits: limits,
		CreatedAt: now.UTC().Truncate(time.Microsecond)}
	if err := keys.CreateAPIKey(ctx, k); err != nil {
		return store.APIKey{}, "", fmt.Errorf("auth: create key: %w", err)
	}
	return k, token, nil
}

// EnsureBootstrapAdmin gives a new installation its first admin key: when
// the store holds no API key at all (revoked ones count), it creates an
// admin key named "bootstrap" and writes its token, and nothing else, to
// path (mode 0600, which must not exist). When keys exist it does nothing.
//
// The file is written (and synced) before the key is stored, so a stored
// bootstrap key always has its token on disk. The token is never logged:
// an operator reads the file, creates named keys with it, and revokes the
// bootstrap key. SPEC §12: only the embedded mode should call this; with
// several replicas the first admin key comes from `medserve keys create`.
func EnsureBootstrapAdmin(ctx context.Context, keys KeyStore, path string) (created bool, err error) {
	existing, err := keys.ListAPIKeys(ctx)
	if err != nil {
		return false, fmt.Errorf("auth: bootstrap admin: %w", err)
	}
	if len(existing) > 0 {
		return false, nil
	}
	id, secret, token, err := NewKey()
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process may have bootstrapped the same store just now.
		if again, lerr := keys.ListAPIKeys(ctx); lerr == nil && len(again) > 0 {
			return false, nil
		}
		return false, fmt.Errorf("auth: bootstrap admin: %s exists but the store holds no API key; "+
			"it is left from an earlier attempt or another store: remove it and start again", path)
	}
	if err != nil {
		return false, fmt.Errorf("auth: bootstrap admin: %w", err)
	}
	_, err = f.WriteString(token + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, fmt.Errorf("auth: bootstrap admin: write %s: %w", path, err)
	}
	k := store.APIKey{ID: id, SecretHash: HashSecret(secret), Role: RoleAdmin, Name: "bootstrap",
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := keys.CreateAPIKey(ctx, k); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("auth: bootstrap admin: %w", err)
	}
	return true, nil
}
