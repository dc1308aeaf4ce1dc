package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
)

// maxJWKSBytes bounds the JWKS file read: a key set is a few kilobytes.
const maxJWKSBytes = 1 << 20

// RSA key sizes accepted: below 2048 bits is breakable, above 8192 bits
// only makes verification slow.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// JWKS is a set of public keys, by key id, that JWTs may be signed with.
type JWKS struct {
	keys map[string]jwk
}

// jwk is one usable public key.
type jwk struct {
	alg string // the only JWS alg this key verifies: RS256, ES256 or ES384
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
}

// Len is the number of usable keys.
func (s *JWKS) Len() int { return len(s.keys) }

// LoadJWKS reads an RFC 7517 JSON Web Key Set file.
//
// RSA keys ("kty":"RSA", n, e; at least 2048 bits) verify RS256; EC keys
// ("kty":"EC", x, y) on P-256 verify ES256 and on P-384 ES384. Every usable
// key needs a unique "kid". Keys of other types (symmetric "oct" keys among
// them: a shared secret never verifies a token here) and keys marked
// "use":"enc" are skipped, as an identity provider's set may hold them; a
// malformed RSA or EC key, or a key whose "alg" contradicts its type, is
// an error. A set with no usable key is an error.
func LoadJWKS(path string) (*JWKS, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: jwks: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: jwks %s: %w", path, err)
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("auth: jwks %s: larger than %d bytes", path, maxJWKSBytes)
	}
	s, err := ParseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("auth: jwks %s: %w", path, err)
	}
	return s, nil
}

// ParseJWKS parses a JSON Web Key Set (see LoadJWKS).
func ParseJWKS(b []byte) (*JWKS, error) {
	var doc struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKSBytes)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	s := &JWKS{keys: map[string]jwk{}}
	for i, k := range doc.Keys {
		if (k.Kty != "RSA" && k.Kty != "EC") || k.Use == "enc" {
			continue
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("key %d: no kid", i)
		}
		if _, dup := s.keys[k.Kid]; dup {
			return nil, fmt.Errorf("key %d: kid %q appears twice", i, k.Kid)
		}
		var key jwk
		var err error
		switch k.Kty {
		case "RSA":
			key, err = rsaKey(k.N, k.E)
		case "EC":
			key, err = ecKey(k.Crv, k.X, k.Y)
		}
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.Kid, err)
		}
		if k.Alg != "" && k.Alg != key.alg {
			return nil, fmt.Errorf("key %q: alg %q does not fit a %s key (want %s)", k.Kid, k.Alg, k.Kty, key.alg)
		}
		s.keys[k.Kid] = key
	}
	if len(s.keys) == 0 {
		return nil, errors.New("no usable RSA or EC signing key")
	}
	return s, nil
}

// b64 decodes a base64url member; RFC 7518 says unpadded, padding is tolerated.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func rsaKey(n, e string) (jwk, error) {
	nb, err := b64(n)
	if err != nil || len(nb) == 0 {
		return jwk{}, errors.New("bad modulus n")
	}
	eb, err := b64(e)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return jwk{}, errors.New("bad exponent e")
	}
	N := new(big.Int).SetBytes(nb)
	E := new(big.Int).SetBytes(eb)
	if bits := N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return jwk{}, fmt.Errorf("RSA modulus of %d bits (want %d to %d)", bits, minRSABits, maxRSABits)
	}
	if !E.IsInt64() || E.Int64() < 3 || E.Int64() > 1<<31-1 || E.Bit(0) == 0 {
		return jwk{}, errors.New("bad exponent e")
	}
	return jwk{alg: "RS256", rsa: &rsa.PublicKey{N: N, E: int(E.Int64())}}, nil
}

func ecKey(crv, x, y string) (jwk, error) {
	var curve elliptic.Curve
	var alg string
	switch crv {
	case "P-256":
		curve, alg = elliptic.P256(), "ES256"
	case "P-384":
		curve, alg = elliptic.P384(), "ES384"
	default:
		return jwk{}, fmt.Errorf("unsupported curve %q (want P-256 or P-384)", crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	xb, errX := b64(x)
	yb, errY := b64(y)
	if errX != nil || errY != nil || len(xb) != size || len(yb) != size {
		return jwk{}, fmt.Errorf("bad coordinates (want %d bytes each)", size)
	}
	// ParseUncompressedPublicKey checks that the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, xb...), yb...))
	if err != nil {
		return jwk{}, errors.New("point not on the curve")
	}
	return jwk{alg: alg, ec: pub}, nil
}
