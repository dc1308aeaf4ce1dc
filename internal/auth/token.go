package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// An API key token is "msk_" + id + "_" + secret:
//   - id: "k" and 12 lowercase hex digits (48 random bits), public: it names
//     the key in the store, in lists and in audit events;
//   - secret: 32 random bytes in unpadded base64url (43 characters), shown
//     once when the key is created; the store keeps only its hash.
//
// The secret's alphabet includes '_', so a token is split after the
// fixed-length id, never at its last '_'.
const (
	tokenPrefix = "msk_"
	idHexLen    = 12
	idLen       = 1 + idHexLen
	secretBytes = 32
)

var secretLen = base64.RawURLEncoding.EncodedLen(secretBytes)

// NewKey returns a fresh random key id, its secret and the token that
// carries both.
func NewKey() (id, secret, token string, err error) {
	var b [idHexLen/2 + secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", "", fmt.Errorf("auth: new key: %w", err)
	}
	id = "k" + hex.EncodeToString(b[:idHexLen/2])
	secret = base64.RawURLEncoding.EncodeToString(b[idHexLen/2:])
	return id, secret, tokenPrefix + id + "_" + secret, nil
}

// IsKeyToken reports whether token has the API key prefix (it may still
// be malformed): such a token is never tried as a JWT.
func IsKeyToken(token string) bool { return strings.HasPrefix(token, tokenPrefix) }

// ParseToken splits an API key token into its id and secret; ok is false
// unless the token has exactly the shape NewKey makes.
func ParseToken(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	if !found || len(rest) != idLen+1+secretLen || rest[idLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:idLen], rest[idLen+1:]
	if !ValidKeyID(id) {
		return "", "", false
	}
	// Strict decoding refuses non-zero trailing bits, so each secret has
	// exactly one spelling.
	if b, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil || len(b) != secretBytes {
		return "", "", false
	}
	return id, secret, true
}

// ValidKeyID reports whether id has the shape of a key id ("k" and 12
// lowercase hex digits).
func ValidKeyID(id string) bool {
	if len(id) != idLen || id[0] != 'k' {
		return false
	}
	for _, c := range []byte(id[1:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// HashSecret returns the hex SHA-256 of secret, the form the store keeps.
//
// A plain hash, not a keyed one (HMAC) or a slow password hash, is enough
// here: the secret is 256 random bits, so nobody can reverse the hash by
// guessing inputs, unlike patient identifiers or passwords (SPEC §8 keys
// only the hashes that could be reversed by guessing).
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// secretMatches compares secret's hash with a stored one in constant time.
func secretMatches(secret, storedHash string) bool {
	return subtle.ConstantTimeCompare([]byte(HashSecret(secret)), []byte(storedHash)) == 1
}
