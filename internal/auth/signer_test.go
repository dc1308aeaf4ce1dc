package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// A tiny JWS signer for the tests: enough to make every token VerifyJWT
// must accept or refuse, and nothing the server would use.

// testKeys are one RSA and two EC signing keys, made once per test binary
// (an RSA key takes a while, longer under -race).
type testKeys struct {
	rsa   *rsa.PrivateKey
	p256  *ecdsa.PrivateKey
	p384  *ecdsa.PrivateKey
	other *rsa.PrivateKey // not in the JWKS
}

var (
	keysOnce sync.Once
	keysVal  testKeys
)

func keys(t testing.TB) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		must := func(e error) {
			if e != nil && err == nil {
				err = e
			}
		}
		var e error
		keysVal.rsa, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		keysVal.other, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		keysVal.p256, e = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		keysVal.p384, e = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(e)
		if err != nil {
			panic(err)
		}
	})
	return keysVal
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(pub.N.Bytes()), "e": b64u(big.NewInt(int64(pub.E)).Bytes())}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	raw, err := pub.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	size := (len(raw) - 1) / 2
	return map[string]any{"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name,
		"x": b64u(raw[1 : 1+size]), "y": b64u(raw[1+size:])}
}

// writeJWKS writes the test JWKS ("rsa1", "ec256", "ec384", plus an "oct"
// key that must be skipped) to a temporary file and loads it.
func writeJWKS(t testing.TB) *JWKS {
	t.Helper()
	k := keys(t)
	set := map[string]any{"keys": []any{
		rsaJWK("rsa1", &k.rsa.PublicKey),
		ecJWK("ec256", &k.p256.PublicKey),
		ecJWK("ec384", &k.p384.PublicKey),
		map[string]any{"kty": "oct", "kid": "hmac", "k": b64u([]byte("shared secret"))},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadJWKS(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jws signs header and claims (marshalled as given) with key, which is an
// *rsa.PrivateKey (RS256), an *ecdsa.PrivateKey (ES256/ES384, r||s) or a
// []byte (HS256). With der, an ECDSA signature is ASN.1 DER instead.
func jws(t testing.TB, header, claims map[string]any, key any, der bool) string {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := b64u(hb) + "." + b64u(cb)
	return input + "." + b64u(sign(t, input, key, der))
}

func sign(t testing.TB, input string, key any, der bool) []byte {
	t.Helper()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		h := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		var h []byte
		if k.Curve == elliptic.P384() {
			s := sha512.Sum384([]byte(input))
			h = s[:]
		} else {
			s := sha256.Sum256([]byte(input))
			h = s[:]
		}
		if der {
			sig, err := ecdsa.SignASN1(rand.Reader, k, h)
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, h)
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write([]byte(input))
		return m.Sum(nil)
	case nil:
		return nil
	}
	t.Fatalf("unknown key type %T", key)
	return nil
}
