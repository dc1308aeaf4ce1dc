package phi

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Environment variable names for the production (multi-replica) mode, where keys come from a secret.
const (
	EnvKey     = "MEDSERVE_PHI_KEY"
	EnvKeyID   = "MEDSERVE_PHI_KEY_ID"
	EnvOldKeys = "MEDSERVE_PHI_OLD_KEYS"
)

// DefaultKeyID is the id of the current key when MEDSERVE_PHI_KEY_ID is unset.
const DefaultKeyID = "k1"

// decodeSecret accepts standard or URL base64, padded or not, because secrets are pasted from many tools.
// Errors never include the input, which is the secret itself.
func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != SecretSize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d", len(b), SecretSize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("not valid base64")
}

// FromEnv reads MEDSERVE_PHI_KEY (base64 of 32 bytes), MEDSERVE_PHI_KEY_ID (default "k1") and, for rotation,
// MEDSERVE_PHI_OLD_KEYS ("id:base64,id:base64"); ok is false when MEDSERVE_PHI_KEY is unset.
func FromEnv(getenv func(string) string) (kr *Keyring, ok bool, err error) {
	keyStr := getenv(EnvKey)
	if strings.TrimSpace(keyStr) == "" {
		return nil, false, nil
	}
	id := strings.TrimSpace(getenv(EnvKeyID))
	if id == "" {
		id = DefaultKeyID
	}
	secret, err := decodeSecret(keyStr)
	if err != nil {
		return nil, true, fmt.Errorf("phi: %s: %v", EnvKey, err)
	}
	var old []Key
	if v := strings.TrimSpace(getenv(EnvOldKeys)); v != "" {
		for i, entry := range strings.Split(v, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue // tolerate trailing commas
			}
			oid, b64, found := strings.Cut(entry, ":")
			if !found {
				// Do not echo the entry: without a colon it may be a bare secret.
				return nil, true, fmt.Errorf("phi: %s: entry %d: want id:base64", EnvOldKeys, i+1)
			}
			oid = strings.TrimSpace(oid)
			s, err := decodeSecret(b64)
			if err != nil {
				return nil, true, fmt.Errorf("phi: %s: entry %d (id %q): %v", EnvOldKeys, i+1, oid, err)
			}
			old = append(old, Key{ID: oid, Secret: s})
		}
	}
	kr, err = NewKeyring(Key{ID: id, Secret: secret}, old...)
	if err != nil {
		return nil, true, err
	}
	return kr, true, nil
}
