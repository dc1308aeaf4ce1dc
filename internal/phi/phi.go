// Package phi protects patient identifiers and free text at rest: identifiers become keyed pseudonyms
// (HMAC-SHA256, so they cannot be reversed by guessing) and clear values are sealed with AES-256-GCM.
// Keys carry ids so that they can rotate without breaking pseudonym joins or old ciphertexts.
package phi

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SecretSize is the required length of a key secret in bytes (AES-256 and HMAC-SHA256 strength).
const SecretSize = 32

// maxIDLen bounds key ids: they prefix every stored value, so they must stay short.
const maxIDLen = 32

// nonceSize is the standard GCM nonce length; random 96-bit nonces are safe for far more seals than a
// key will see before rotation.
const nonceSize = 12

// HKDF info strings give each purpose its own subkey, so one secret never serves two algorithms.
const (
	infoPseudonym = "medserve phi pseudonym v1"
	infoSeal      = "medserve phi seal v1"
	infoHash      = "medserve phi hash v1"
)

// pseudonymPrefix domain-separates pseudonym inputs from any other HMAC use of the same subkey.
const pseudonymPrefix = "pseudonym\x00"

// Key is one key: an id ([A-Za-z0-9_-]{1,32}) and 32 bytes of secret.
type Key struct {
	ID     string
	Secret []byte
}

// derivedKey holds the per-purpose subkeys of one Key; the raw secret is not kept.
type derivedKey struct {
	id      string
	macKey  []byte
	hashKey []byte
	aead    cipher.AEAD
	idColon string // id + ":" precomputed, since every output carries it
}

// Keyring holds the PHI keys: one current key (used to pseudonymise and encrypt) and older keys (still used to
// decrypt and to recognise old pseudonyms). Immutable, safe for concurrent use.
type Keyring struct {
	keys []derivedKey           // keys[0] is current, then old keys in the order given
	byID map[string]*derivedKey // read-only after construction
}

// validID reports whether id matches [A-Za-z0-9_-]{1,32}; ids appear before ':' in stored values, so ':' and
// other separators must be excluded.
func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// NewKeyring builds a keyring from the current key and any older keys; it validates ids (unique) and secret
// lengths; it keeps only subkeys derived from a copy of each secret, so callers may wipe their slices.
func NewKeyring(current Key, old ...Key) (*Keyring, error) {
	all := append([]Key{current}, old...)
	kr := &Keyring{keys: make([]derivedKey, 0, len(all)), byID: make(map[string]*derivedKey, len(all))}
	seen := make(map[string]bool, len(all))
	for i, k := range all {
		if !validID(k.ID) {
			// The id is not secret, but quote it so odd characters are visible.
			return nil, fmt.Errorf("phi: key %d: invalid key id %q (want [A-Za-z0-9_-]{1,32})", i, k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("phi: duplicate key id %q", k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) != SecretSize {
			return nil, fmt.Errorf("phi: key %q: secret is %d bytes, want %d", k.ID, len(k.Secret), SecretSize)
		}
		dk, err := derive(k)
		if err != nil {
			return nil, err
		}
		kr.keys = append(kr.keys, dk)
	}
	for i := range kr.keys {
		kr.byID[kr.keys[i].id] = &kr.keys[i]
	}
	return kr, nil
}

// derive expands one secret into its HMAC and AES subkeys with HKDF-SHA256.
func derive(k Key) (derivedKey, error) {
	// Copy first so a caller mutating its slice afterwards cannot affect us mid-derivation.
	secret := append([]byte(nil), k.Secret...)
	macKey, err := hkdf.Key(sha256.New, secret, nil, infoPseudonym, 32)
	if err != nil {
		return derivedKey{}, fmt.Errorf("phi: key %q: derive pseudonym key: %w", k.ID, err)
	}
	encKey, err := hkdf.Key(sha256.New, secret, nil, infoSeal, 32)
	if err != nil {
		return derivedKey{}, fmt.Errorf("phi: key %q: derive seal key: %w", k.ID, err)
	}
	hashKey, err := hkdf.Key(sha256.New, secret, nil, infoHash, 32)
	if err != nil {
		return derivedKey{}, fmt.Errorf("phi: key %q: derive hash key: %w", k.ID, err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return derivedKey{}, fmt.Errorf("phi: key %q: aes: %w", k.ID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return derivedKey{}, fmt.Errorf("phi: key %q: gcm: %w", k.ID, err)
	}
	return derivedKey{id: k.ID, macKey: macKey, hashKey: hashKey, aead: aead, idColon: k.ID + ":"}, nil
}

// HashKey returns the current key's id and a subkey for keyed hashes other
// than pseudonyms (cache keys, query hashes), so those cannot be reversed by
// hashing guesses and are shared by every replica that holds the PHI key.
// The slice is a copy.
func (k *Keyring) HashKey() (id string, secret []byte) {
	return k.keys[0].id, append([]byte(nil), k.keys[0].hashKey...)
}

// CurrentID is the id of the current key.
func (k *Keyring) CurrentID() string { return k.keys[0].id }

// IDs returns all key ids, current first.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.keys))
	for i := range k.keys {
		ids[i] = k.keys[i].id
	}
	return ids
}

// normalise trims surrounding whitespace only: identifiers are case-sensitive, and any further folding could
// merge two distinct patients.
func normalise(id string) string { return strings.TrimSpace(id) }

// pseudonym computes "<keyid>:" + hex(HMAC) under one derived key.
func (dk *derivedKey) pseudonym(norm string) string {
	m := hmac.New(sha256.New, dk.macKey)
	m.Write([]byte(pseudonymPrefix))
	m.Write([]byte(norm))
	var sum [sha256.Size]byte
	return dk.idColon + hex.EncodeToString(m.Sum(sum[:0]))
}

// Pseudonym is the keyed pseudonym of an identifier under the current key.
func (k *Keyring) Pseudonym(id string) string {
	return k.keys[0].pseudonym(normalise(id))
}

// Pseudonyms returns the pseudonym under every key (current first), so lookups also match rows written under
// older keys and rotation does not break joins.
func (k *Keyring) Pseudonyms(id string) []string {
	norm := normalise(id)
	out := make([]string, len(k.keys))
	for i := range k.keys {
		out[i] = k.keys[i].pseudonym(norm)
	}
	return out
}

// Seal encrypts plaintext with AES-256-GCM under the current key with a random nonce, binding ad (e.g. table and
// column) so the ciphertext cannot be moved to another field: "<keyid>:" + base64url(nonce || ciphertext).
func (k *Keyring) Seal(plaintext []byte, ad string) (string, error) {
	dk := &k.keys[0]
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+dk.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("phi: seal: random nonce: %w", err)
	}
	buf = dk.aead.Seal(buf, buf[:nonceSize], plaintext, []byte(ad))
	return dk.idColon + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Errors from Open; they deliberately carry no part of the sealed value or key.
var (
	ErrMalformed  = errors.New("phi: malformed sealed value")
	ErrUnknownKey = errors.New("phi: sealed value names an unknown key id")
	ErrDecrypt    = errors.New("phi: cannot decrypt sealed value (wrong associated data, key, or tampered)")
)

// Open decrypts a value produced by Seal with the key its id names; any malformed input is an error, never a panic.
func (k *Keyring) Open(sealed string, ad string) ([]byte, error) {
	id, body, ok := strings.Cut(sealed, ":")
	if !ok || !validID(id) {
		return nil, ErrMalformed
	}
	dk := k.byID[id]
	if dk == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, id)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < nonceSize+dk.aead.Overhead() {
		return nil, ErrMalformed
	}
	pt, err := dk.aead.Open(nil, raw[:nonceSize], raw[nonceSize:], []byte(ad))
	if err != nil {
		return nil, ErrDecrypt
	}
	if pt == nil {
		// Normalise so callers always get a non-nil slice for a successful empty plaintext.
		pt = []byte{}
	}
	return pt, nil
}

// KeyIDOf returns the key id a sealed value or pseudonym was produced under, for background re-sealing after rotation.
func KeyIDOf(s string) (string, bool) {
	id, _, ok := strings.Cut(s, ":")
	if !ok || !validID(id) {
		return "", false
	}
	return id, true
}

// NeedsReseal reports whether a sealed value was produced under a key other than the current one.
func (k *Keyring) NeedsReseal(sealed string) bool {
	id, ok := KeyIDOf(sealed)
	return !ok || id != k.CurrentID()
}
