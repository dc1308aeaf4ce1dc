package auth

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testJWTConfig(t testing.TB) JWTConfig {
	return JWTConfig{JWKS: writeJWKS(t), Issuer: "https://idp.example", Audience: "medserve"}
}

func baseClaims() map[string]any {
	return map[string]any{
		"iss": "https://idp.example", "aud": "medserve", "sub": "alice", "role": "clinician",
		"iat": testNow.Add(-time.Minute).Unix(), "nbf": testNow.Add(-time.Minute).Unix(),
		"exp": testNow.Add(5 * time.Minute).Unix(),
	}
}

func hdr(alg, kid string) map[string]any {
	h := map[string]any{"typ": "JWT", "alg": alg}
	if kid != "" {
		h["kid"] = kid
	}
	return h
}

// with returns a copy of m with the given members set (a nil value deletes).
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestVerifyJWT(t *testing.T) {
	k := keys(t)
	cfg := testJWTConfig(t)
	claims := baseClaims()
	valid := jws(t, hdr("RS256", "rsa1"), claims, k.rsa, false)
	parts := strings.Split(valid, ".")
	pkix, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tampered := func() string {
		b, _ := json.Marshal(with(claims, "role", "admin"))
		return parts[0] + "." + b64u(b) + "." + parts[2]
	}

	tests := []struct {
		name   string
		token  string
		cfg    func(c *JWTConfig)
		want   Principal // zero: must be refused
		reason string    // a word the refusal names
	}{
		{name: "RS256", token: valid, want: Principal{ID: "jwt:alice", Role: "clinician", Kind: KindJWT}},
		{name: "ES256", token: jws(t, hdr("ES256", "ec256"), claims, k.p256, false), want: Principal{ID: "jwt:alice", Role: "clinician", Kind: KindJWT}},
		{name: "ES384", token: jws(t, hdr("ES384", "ec384"), with(claims, "role", "auditor"), k.p384, false), want: Principal{ID: "jwt:alice", Role: "auditor", Kind: KindJWT}},
		{name: "aud array holding ours", token: jws(t, hdr("RS256", "rsa1"), with(claims, "aud", []string{"other", "medserve"}), k.rsa, false), want: Principal{ID: "jwt:alice", Role: "clinician", Kind: KindJWT}},
		{name: "expired within leeway", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", testNow.Add(-30*time.Second).Unix()), k.rsa, false), want: Principal{ID: "jwt:alice", Role: "clinician", Kind: KindJWT}},
		{name: "nbf within leeway", token: jws(t, hdr("RS256", "rsa1"), with(claims, "nbf", testNow.Add(30*time.Second).Unix()), k.rsa, false), want: Principal{ID: "jwt:alice", Role: "clinician", Kind: KindJWT}},
		{name: "no nbf", token: jws(t, hdr("ES256", "ec256"), with(claims, "nbf", nil), k.p256, false), want: Principal{ID: "jwt:alice", Role: "clinician", Kind: KindJWT}},
		{name: "fractional exp", token: jws(t, hdr("ES256", "ec256"), with(claims, "exp", float64(testNow.Unix())+120.5), k.p256, false), want: Principal{ID: "jwt:alice", Role: "clinician", Kind: KindJWT}},
		{name: "custom role claim", token: jws(t, hdr("RS256", "rsa1"), with(claims, "role", nil, "medserve_role", "service"), k.rsa, false),
			cfg: func(c *JWTConfig) { c.RoleClaim = "medserve_role" }, want: Principal{ID: "jwt:alice", Role: "service", Kind: KindJWT}},

		{name: "alg none", token: jws(t, hdr("none", "rsa1"), claims, nil, false), reason: "alg"},
		{name: "alg none, no kid", token: jws(t, hdr("none", ""), claims, nil, false), reason: "alg"},
		{name: "alg None", token: jws(t, hdr("None", "rsa1"), claims, nil, false), reason: "alg"},
		{name: "HS256 keyed with the RSA modulus", token: jws(t, hdr("HS256", "rsa1"), claims, k.rsa.N.Bytes(), false), reason: "alg"},
		{name: "HS256 keyed with the RSA public key", token: jws(t, hdr("HS256", "rsa1"), claims, pkix, false), reason: "alg"},
		{name: "HS256 with an oct key from the JWKS", token: jws(t, hdr("HS256", "hmac"), claims, []byte("shared secret"), false), reason: "alg"},
		{name: "HS512", token: jws(t, hdr("HS512", "rsa1"), claims, k.rsa.N.Bytes(), false), reason: "alg"},
		{name: "PS256", token: jws(t, hdr("PS256", "rsa1"), claims, k.rsa, false), reason: "alg"},
		{name: "no alg", token: jws(t, map[string]any{"kid": "rsa1"}, claims, k.rsa, false), reason: "alg"},
		{name: "alg not a string", token: jws(t, map[string]any{"alg": []string{"RS256"}, "kid": "rsa1"}, claims, k.rsa, false), reason: "alg"},
		{name: "no kid", token: jws(t, hdr("RS256", ""), claims, k.rsa, false), reason: "kid"},
		{name: "unknown kid", token: jws(t, hdr("RS256", "rsa2"), claims, k.rsa, false), reason: "kid"},
		{name: "RS256 naming an EC key", token: jws(t, hdr("RS256", "ec256"), claims, k.rsa, false), reason: "match"},
		{name: "ES384 naming a P-256 key", token: jws(t, hdr("ES384", "ec256"), claims, k.p384, false), reason: "match"},
		{name: "ES256 naming a P-384 key", token: jws(t, hdr("ES256", "ec384"), claims, k.p256, false), reason: "match"},
		{name: "ES256 naming an RSA key", token: jws(t, hdr("ES256", "rsa1"), claims, k.p256, false), reason: "match"},
		{name: "signed by another key", token: jws(t, hdr("RS256", "rsa1"), claims, k.other, false), reason: "signature"},
		{name: "embedded jwk is ignored", token: jws(t, with(hdr("RS256", "rsa1"), "jwk", rsaJWK("rsa1", &k.other.PublicKey)), claims, k.other, false), reason: "signature"},
		{name: "ES256 with a DER signature", token: jws(t, hdr("ES256", "ec256"), claims, k.p256, true), reason: "signature"},
		{name: "ES384 with a DER signature", token: jws(t, hdr("ES384", "ec384"), claims, k.p384, true), reason: "signature"},
		{name: "tampered payload", token: tampered(), reason: "signature"},
		{name: "signature dropped", token: parts[0] + "." + parts[1] + ".", reason: "signature"},
		{name: "crit header", token: jws(t, with(hdr("RS256", "rsa1"), "crit", []string{"exp"}), claims, k.rsa, false), reason: "critical"},

		{name: "expired", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", testNow.Add(-2*time.Minute).Unix()), k.rsa, false), reason: "expired"},
		{name: "expired at the leeway's end", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", testNow.Add(-time.Minute).Unix()), k.rsa, false), reason: "expired"},
		{name: "expired beyond a short leeway", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", testNow.Add(-30*time.Second).Unix()), k.rsa, false),
			cfg: func(c *JWTConfig) { c.Leeway = time.Second }, reason: "expired"},
		{name: "no exp", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", nil), k.rsa, false), reason: "exp"},
		{name: "exp a string", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", "9999999999"), k.rsa, false), reason: "exp"},
		{name: "exp null", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", json.RawMessage("null")), k.rsa, false), reason: "exp"},
		{name: "exp absurd", token: jws(t, hdr("RS256", "rsa1"), with(claims, "exp", 1e300), k.rsa, false), reason: "exp"},
		{name: "nbf in the future", token: jws(t, hdr("RS256", "rsa1"), with(claims, "nbf", testNow.Add(2*time.Minute).Unix()), k.rsa, false), reason: "nbf"},
		{name: "nbf a string", token: jws(t, hdr("RS256", "rsa1"), with(claims, "nbf", "0"), k.rsa, false), reason: "nbf"},
		{name: "wrong issuer", token: jws(t, hdr("RS256", "rsa1"), with(claims, "iss", "https://evil.example"), k.rsa, false), reason: "issuer"},
		{name: "no issuer", token: jws(t, hdr("RS256", "rsa1"), with(claims, "iss", nil), k.rsa, false), reason: "issuer"},
		{name: "wrong aud string", token: jws(t, hdr("RS256", "rsa1"), with(claims, "aud", "other"), k.rsa, false), reason: "audience"},
		{name: "aud array without ours", token: jws(t, hdr("RS256", "rsa1"), with(claims, "aud", []string{"a", "b"}), k.rsa, false), reason: "audience"},
		{name: "aud array with a prefix of ours", token: jws(t, hdr("RS256", "rsa1"), with(claims, "aud", []string{"medserve2"}), k.rsa, false), reason: "audience"},
		{name: "no aud", token: jws(t, hdr("RS256", "rsa1"), with(claims, "aud", nil), k.rsa, false), reason: "audience"},
		{name: "aud a number", token: jws(t, hdr("RS256", "rsa1"), with(claims, "aud", 7), k.rsa, false), reason: "audience"},
		{name: "no role", token: jws(t, hdr("RS256", "rsa1"), with(claims, "role", nil), k.rsa, false), reason: "role"},
		{name: "unknown role", token: jws(t, hdr("RS256", "rsa1"), with(claims, "role", "root"), k.rsa, false), reason: "role"},
		{name: "role misspelt", token: jws(t, hdr("RS256", "rsa1"), with(claims, "role", "Admin"), k.rsa, false), reason: "role"},
		{name: "role an array", token: jws(t, hdr("RS256", "rsa1"), with(claims, "role", []string{"admin"}), k.rsa, false), reason: "role"},
		{name: "role only under the default claim", token: valid, cfg: func(c *JWTConfig) { c.RoleClaim = "medserve_role" }, reason: "role"},
		{name: "no sub", token: jws(t, hdr("RS256", "rsa1"), with(claims, "sub", nil), k.rsa, false), reason: "sub"},
		{name: "empty sub", token: jws(t, hdr("RS256", "rsa1"), with(claims, "sub", ""), k.rsa, false), reason: "sub"},
		{name: "sub with a line break", token: jws(t, hdr("RS256", "rsa1"), with(claims, "sub", "alice\nadmin"), k.rsa, false), reason: "sub"},
		{name: "claims not an object", token: func() string {
			in := parts[0] + "." + b64u([]byte(`["x"]`))
			return in + "." + b64u(sign(t, in, k.rsa, false))
		}(), reason: "claims"},

		{name: "two parts", token: parts[0] + "." + parts[1], reason: "compact"},
		{name: "five parts (JWE)", token: valid + ".a.b", reason: "compact"},
		{name: "line break in the signature", token: valid[:len(valid)-4] + "\n" + valid[len(valid)-4:], reason: "compact"},
		{name: "padded signature", token: parts[0] + "." + parts[1] + "." + base64.URLEncoding.EncodeToString(mustDecode(t, parts[2])), reason: "compact"},
		{name: "standard base64", token: strings.NewReplacer("-", "+", "_", "/").Replace(valid), reason: "compact"},
		{name: "header not base64", token: "!!!." + parts[1] + "." + parts[2], reason: "compact"},
		{name: "empty", token: "", reason: "compact"},
		{name: "too large", token: jws(t, hdr("RS256", "rsa1"), with(claims, "pad", strings.Repeat("x", 20000)), k.rsa, false), reason: "large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			p, err := VerifyJWT(tc.token, c, testNow)
			if tc.want != (Principal{}) {
				if err != nil || p != tc.want {
					t.Fatalf("got %+v, %v; want %+v", p, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %+v", p)
			}
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("error %v does not wrap ErrInvalidCredentials", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not name %q", err, tc.reason)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) >= 8 && strings.Contains(err.Error(), part) {
					t.Errorf("error %q holds part of the token", err)
				}
			}
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A configuration without issuer, audience or keys is reported as such,
// not as the caller's fault: it would accept tokens meant for others.
func TestVerifyJWTConfig(t *testing.T) {
	k := keys(t)
	good := testJWTConfig(t)
	token := jws(t, hdr("RS256", "rsa1"), baseClaims(), k.rsa, false)
	for name, c := range map[string]JWTConfig{
		"no issuer":       {JWKS: good.JWKS, Audience: "medserve"},
		"no audience":     {JWKS: good.JWKS, Issuer: "https://idp.example"},
		"no keys":         {Issuer: "https://idp.example", Audience: "medserve"},
		"negative leeway": {JWKS: good.JWKS, Issuer: "https://idp.example", Audience: "medserve", Leeway: -time.Second},
	} {
		if _, err := VerifyJWT(token, c, testNow); err == nil || errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s: %v; want a configuration error", name, err)
		}
	}
}

func TestLoadJWKS(t *testing.T) {
	k := keys(t)
	rsaKey := rsaJWK("r", &k.rsa.PublicKey)
	small := maps.Clone(rsaKey)
	small["n"] = b64u(append([]byte{0x80}, make([]byte, 127)...)) // 1024 bits
	ec := ecJWK("e", &k.p256.PublicKey)
	offCurve := maps.Clone(ec)
	offCurve["y"] = ec["x"]
	padded := maps.Clone(rsaKey)
	padded["n"] = base64.URLEncoding.EncodeToString(k.rsa.N.Bytes())
	padded["e"] = "AQAB"
	tests := []struct {
		name string
		doc  any
		ok   bool
		keys int
	}{
		{"rsa and ec", map[string]any{"keys": []any{rsaKey, ec}}, true, 2},
		{"padding tolerated", map[string]any{"keys": []any{padded}}, true, 1},
		{"oct and enc skipped", map[string]any{"keys": []any{rsaKey,
			map[string]any{"kty": "oct", "kid": "s", "k": "c2VjcmV0"},
			with(ec, "use", "enc"),
			map[string]any{"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AA"}}}, true, 1},
		{"nothing usable", map[string]any{"keys": []any{map[string]any{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}}}, false, 0},
		{"empty", map[string]any{"keys": []any{}}, false, 0},
		{"not a set", []int{1}, false, 0},
		{"no kid", map[string]any{"keys": []any{with(rsaKey, "kid", nil)}}, false, 0},
		{"duplicate kid", map[string]any{"keys": []any{rsaKey, with(ec, "kid", "r")}}, false, 0},
		{"RSA under 2048 bits", map[string]any{"keys": []any{small}}, false, 0},
		{"even exponent", map[string]any{"keys": []any{with(rsaKey, "e", b64u([]byte{1, 0, 0}))}}, false, 0},
		{"exponent 1", map[string]any{"keys": []any{with(rsaKey, "e", b64u([]byte{1}))}}, false, 0},
		{"bad modulus", map[string]any{"keys": []any{with(rsaKey, "n", "***")}}, false, 0},
		{"P-521", map[string]any{"keys": []any{with(ec, "crv", "P-521")}}, false, 0},
		{"point off the curve", map[string]any{"keys": []any{offCurve}}, false, 0},
		{"short coordinate", map[string]any{"keys": []any{with(ec, "x", "AAAA")}}, false, 0},
		{"alg contradicting the key", map[string]any{"keys": []any{with(rsaKey, "alg", "HS256")}}, false, 0},
		{"ES384 on a P-256 key", map[string]any{"keys": []any{with(ec, "alg", "ES384")}}, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.doc)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "jwks.json")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := LoadJWKS(path)
			if tc.ok != (err == nil) {
				t.Fatalf("LoadJWKS: %v; want ok=%v", err, tc.ok)
			}
			if err == nil && s.Len() != tc.keys {
				t.Fatalf("%d usable keys, want %d", s.Len(), tc.keys)
			}
		})
	}
	if _, err := LoadJWKS(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"keys":[],"pad":"`+strings.Repeat("x", maxJWKSBytes)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJWKS(big); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("an oversized file: %v", err)
	}
}
