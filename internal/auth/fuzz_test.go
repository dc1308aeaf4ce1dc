package auth

import (
	"strings"
	"testing"
)

// FuzzVerifyJWT: no input panics, and none verifies. The seeds are signed
// by keys outside the set (or by none), so a verifying input would be a
// forgery: signatures cannot be found by mutation, only slipped past a bug.
func FuzzVerifyJWT(f *testing.F) {
	k := keys(f)
	cfg := testJWTConfig(f)
	claims := baseClaims()
	f.Add(jws(f, hdr("RS256", "rsa1"), claims, k.other, false))
	f.Add(jws(f, hdr("ES256", "ec256"), claims, k.p384, false)) // wrong curve's key
	f.Add(jws(f, hdr("ES256", "ec256"), claims, k.p256, true)[:20] + "xx")
	f.Add(jws(f, hdr("none", "rsa1"), claims, nil, false))
	f.Add(jws(f, hdr("HS256", "rsa1"), claims, k.rsa.N.Bytes(), false))
	f.Add(jws(f, map[string]any{"alg": "ES384", "kid": "ec384", "crit": []string{"b64"}, "b64": false}, claims, k.other, false))
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYTEifQ.e30.")
	f.Add("a.b.c")
	f.Add("..")
	f.Add(strings.Repeat(".", 10))
	f.Fuzz(func(t *testing.T, token string) {
		p, err := VerifyJWT(token, cfg, testNow)
		if err == nil {
			t.Fatalf("verified %+v", p)
		}
		if len(token) >= 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("error holds the token: %v", err)
		}
	})
}

// FuzzParseToken: no input panics; what parses is exactly NewKey's shape
// and rebuilds the input.
func FuzzParseToken(f *testing.F) {
	_, _, token, err := NewKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(token)
	f.Add(token[:len(token)-1])
	f.Add("msk_k0123456789ab_" + strings.Repeat("A", 43))
	f.Add("msk_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := ParseToken(s)
		if !ok {
			if id != "" || secret != "" {
				t.Fatalf("refused but returned %q, %q", id, secret)
			}
			return
		}
		if !ValidKeyID(id) || len(secret) != 43 || "msk_"+id+"_"+secret != s {
			t.Fatalf("ParseToken(%q) = %q, %q", s, id, secret)
		}
	})
}
