package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
	"unicode"
)

// maxTokenBytes bounds a bearer token (API key or JWT), and so the JSON a
// JWT makes us decode: real access tokens are one or two kilobytes.
const maxTokenBytes = 16 << 10

// maxSubjectBytes bounds the subject kept as the principal's id.
const maxSubjectBytes = 256

// JWTConfig says which JWTs are accepted.
type JWTConfig struct {
	JWKS      *JWKS         // the identity provider's public keys
	Issuer    string        // required: the "iss" every token must carry
	Audience  string        // required: a value "aud" must hold (this server)
	RoleClaim string        // the claim holding the role; "" means "role"
	Leeway    time.Duration // clock skew allowed on exp and nbf; 0 means 60 s
}

// Check reports a configuration VerifyJWT cannot work with. Issuer and
// Audience are required: without them a token the provider issued for any
// other application would be accepted here.
func (c JWTConfig) Check() error {
	switch {
	case c.JWKS == nil || c.JWKS.Len() == 0:
		return errors.New("auth: jwt: no keys (JWKS) configured")
	case c.Issuer == "":
		return errors.New("auth: jwt: no issuer configured")
	case c.Audience == "":
		return errors.New("auth: jwt: no audience configured")
	case c.Leeway < 0:
		return errors.New("auth: jwt: negative leeway")
	}
	return nil
}

// invalidJWT returns an ErrInvalidCredentials naming why. Reasons are
// fixed texts: nothing from the token (which a log would then hold, and
// which an attacker chooses) goes into an error.
func invalidJWT(reason string) error {
	return fmt.Errorf("%w: jwt: %s", ErrInvalidCredentials, reason)
}

// VerifyJWT checks a compact-serialised JWS token against c at time now
// and returns its principal: ID "jwt:"+sub, the role from c.RoleClaim,
// Kind "jwt".
//
// Accepted: alg RS256, ES256 or ES384, matching the type (and curve) of
// the key named by the header's kid; ECDSA signatures as r||s (RFC 7518
// §3.4). Refused: "none", HS* (a public key must never serve as an HMAC
// secret), a missing or unknown kid, a "crit" header, keys named by jku,
// jwk or x5u (ignored: keys come from the JWKS only). Claims are read only
// after the signature verifies: exp is required and must not have passed
// (with the leeway), nbf must not be in the future, iss must equal
// c.Issuer, aud (a string or an array) must hold c.Audience, sub must be a
// non-empty string and the role claim one of the four roles.
//
// Every rejection wraps ErrInvalidCredentials; a configuration that fails
// Check is reported as itself.
func VerifyJWT(token string, c JWTConfig, now time.Time) (Principal, error) {
	if err := c.Check(); err != nil {
		return Principal{}, err
	}
	if len(token) > maxTokenBytes {
		return Principal{}, invalidJWT("token too large")
	}
	// Only the base64url alphabet and the two dots: the decoder would skip
	// line breaks, letting one signature be spelled many ways.
	for i := 0; i < len(token); i++ {
		if ch := token[i]; !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return Principal{}, invalidJWT("not a compact JWS")
		}
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Principal{}, invalidJWT("not a compact JWS")
	}
	header, err := decodeObject(parts[0])
	if err != nil {
		return Principal{}, invalidJWT("malformed header")
	}
	alg, ok := stringMember(header, "alg")
	if !ok {
		return Principal{}, invalidJWT("no alg")
	}
	switch alg {
	case "RS256", "ES256", "ES384":
	default:
		return Principal{}, invalidJWT("unsupported alg")
	}
	if _, ok := header["crit"]; ok {
		return Principal{}, invalidJWT("critical header extensions not supported")
	}
	kid, ok := stringMember(header, "kid")
	if !ok || kid == "" {
		return Principal{}, invalidJWT("no kid")
	}
	key, ok := c.JWKS.keys[kid]
	if !ok {
		return Principal{}, invalidJWT("unknown kid")
	}
	if key.alg != alg {
		return Principal{}, invalidJWT("alg does not match the key")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil {
		return Principal{}, invalidJWT("malformed signature")
	}
	if !verifySignature(key, []byte(parts[0]+"."+parts[1]), sig) {
		return Principal{}, invalidJWT("bad signature")
	}

	claims, err := decodeObject(parts[1])
	if err != nil {
		return Principal{}, invalidJWT("malformed claims")
	}
	return checkClaims(claims, c, now)
}

// verifySignature checks sig over input with key, whose alg has been matched.
func verifySignature(key jwk, input, sig []byte) bool {
	switch key.alg {
	case "RS256":
		h := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(key.rsa, crypto.SHA256, h[:], sig) == nil
	case "ES256":
		h := sha256.Sum256(input)
		return verifyECDSA(key.ec, h[:], sig)
	case "ES384":
		h := sha512.Sum384(input)
		return verifyECDSA(key.ec, h[:], sig)
	}
	return false
}

// verifyECDSA checks a JWS ECDSA signature: r and s as fixed-size
// big-endian integers, concatenated. A DER (ASN.1) signature, as most
// crypto libraries produce, has another length and is refused.
func verifyECDSA(pub *ecdsa.PublicKey, hash, sig []byte) bool {
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(pub, hash, r, s)
}

// decodeObject decodes a base64url JSON object. Members are matched by
// exact name (a map, not struct fields, which encoding/json matches
// case-insensitively).
func decodeObject(seg string) (map[string]json.RawMessage, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil { // the JSON was null
		return nil, errors.New("not an object")
	}
	return m, nil
}

// stringMember returns m[name] if it is a JSON string (null is not).
func stringMember(m map[string]json.RawMessage, name string) (string, bool) {
	raw := bytes.TrimSpace(m[name])
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// numericDate returns m[name] as an RFC 7519 NumericDate (seconds since
// the epoch, possibly fractional); present is false when it is absent.
func numericDate(m map[string]json.RawMessage, name string) (t time.Time, present bool, err error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || !(raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9') {
		return time.Time{}, true, errors.New("not a number") // null decodes as 0 otherwise
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, true, err
	}
	// Bounded so the conversion to int64 is exact and sane (year < 5000).
	if math.IsNaN(f) || f < 0 || f > 95e9 {
		return time.Time{}, true, errors.New("out of range")
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true, nil
}

func checkClaims(claims map[string]json.RawMessage, c JWTConfig, now time.Time) (Principal, error) {
	leeway := c.Leeway
	if leeway == 0 {
		leeway = 60 * time.Second
	}
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return Principal{}, invalidJWT("malformed exp")
	case !ok:
		return Principal{}, invalidJWT("no exp")
	case !now.Before(exp.Add(leeway)):
		return Principal{}, invalidJWT("expired")
	}
	nbf, ok, err := numericDate(claims, "nbf")
	switch {
	case err != nil:
		return Principal{}, invalidJWT("malformed nbf")
	case ok && now.Add(leeway).Before(nbf):
		return Principal{}, invalidJWT("not yet valid (nbf)")
	}
	if iss, ok := stringMember(claims, "iss"); !ok || iss != c.Issuer {
		return Principal{}, invalidJWT("wrong issuer")
	}
	if !audienceHolds(claims["aud"], c.Audience) {
		return Principal{}, invalidJWT("wrong audience")
	}
	sub, ok := stringMember(claims, "sub")
	if !ok || sub == "" || len(sub) > maxSubjectBytes || strings.IndexFunc(sub, unicode.IsControl) >= 0 {
		return Principal{}, invalidJWT("missing or unusable sub")
	}
	roleClaim := c.RoleClaim
	if roleClaim == "" {
		roleClaim = "role"
	}
	role, ok := stringMember(claims, roleClaim)
	if !ok {
		return Principal{}, invalidJWT("no role")
	}
	if !ValidRole(role) {
		return Principal{}, invalidJWT("unknown role")
	}
	return Principal{ID: "jwt:" + sub, Role: role, Kind: KindJWT}, nil
}

// audienceHolds reports whether aud, a string or an array of strings,
// holds want.
func audienceHolds(aud json.RawMessage, want string) bool {
	aud = bytes.TrimSpace(aud)
	if len(aud) == 0 || aud[0] != '"' && aud[0] != '[' {
		return false
	}
	var one string
	if json.Unmarshal(aud, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(aud, &many) != nil {
		return false
	}
	for _, a := range many {
		if a == want {
			return true
		}
	}
	return false
}
