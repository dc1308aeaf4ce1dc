package phi

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// recipePseudonym recomputes a pseudonym straight from the documented recipe, independent of the package code.
func recipePseudonym(t *testing.T, secret []byte, id, ident string) string {
	t.Helper()
	sub, err := hkdf.Key(sha256.New, secret, nil, "medserve phi pseudonym v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, sub)
	m.Write([]byte("pseudonym\x00" + ident))
	return id + ":" + hex.EncodeToString(m.Sum(nil))
}
