package cache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// MinSecretLen is the shortest HMAC secret NewKeyer accepts (128 bits).
const MinSecretLen = 16

// maxKeyIDLen keeps key ids short; they are repeated in every cache key.
const maxKeyIDLen = 32

// Keyer makes cache keys: HMAC-SHA256 (keyed, so a key cannot be reversed by
// guessing its content, SPEC section 8) over length-prefixed parts,
// hex-encoded, prefixed with a key id so that keys can rotate ("k1:ab12…").
//
// Each part is preceded by its length as 8 bytes big-endian, which makes the
// encoding of a list of parts injective: ("ab","c"), ("a","bc") and ("abc")
// all hash different inputs. A Keyer is safe for concurrent use.
type Keyer struct {
	prefix string // keyID + ":"
	// pool recycles HMAC states: hmac.New costs several allocations and
	// rehashes the key pads, while Reset on a used state is cheap.
	pool sync.Pool
}

// keyState is one reusable HMAC with a scratch buffer that batches the many
// small writes (length prefixes, short parts) into few hash writes.
type keyState struct {
	h   hash.Hash
	n   int
	buf [1024]byte
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
}

// NewKeyer returns a Keyer for the key id and secret; the secret must be at
// least MinSecretLen bytes and the id 1–32 characters of [A-Za-z0-9_.-], so
// that the id can always be split off a key at the first ':'.
func NewKeyer(keyID string, secret []byte) (*Keyer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("cache: keyer secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	if keyID == "" || len(keyID) > maxKeyIDLen {
		return nil, fmt.Errorf("cache: keyer id must be 1–%d characters", maxKeyIDLen)
	}
	for i := 0; i < len(keyID); i++ {
		b := keyID[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '.' || b == '-') {
			return nil, errors.New("cache: keyer id may hold only letters, digits, '_', '.' and '-'")
		}
	}
	// Copy the secret so that a caller wiping or reusing its slice changes
	// nothing here.
	sec := make([]byte, len(secret))
	copy(sec, secret)
	k := &Keyer{prefix: keyID + ":"}
	k.pool.New = func() any { return &keyState{h: hmac.New(sha256.New, sec)} }
	return k, nil
}

// ID returns the key id that prefixes every key this Keyer makes.
func (k *Keyer) ID() string { return k.prefix[:len(k.prefix)-1] }

// Key returns keyID + ":" + hex(HMAC-SHA256(secret, len(p1)‖p1‖len(p2)‖p2…)).
func (k *Keyer) Key(parts ...string) string {
	st := k.pool.Get().(*keyState)
	st.h.Reset()
	st.n = 0
	for _, p := range parts {
		if len(st.buf)-st.n < 8 {
			st.flush()
		}
		binary.BigEndian.PutUint64(st.buf[st.n:], uint64(len(p)))
		st.n += 8
		// Stream the part through the fixed buffer: memory stays bounded
		// whatever the part's size, and no string→[]byte copy is allocated.
		for len(p) > 0 {
			if st.n == len(st.buf) {
				st.flush()
			}
			c := copy(st.buf[st.n:], p)
			st.n += c
			p = p[c:]
		}
	}
	st.flush()
	hex.Encode(st.hex[:], st.h.Sum(st.sum[:0]))

	var b strings.Builder
	b.Grow(len(k.prefix) + len(st.hex))
	b.WriteString(k.prefix)
	b.Write(st.hex[:])
	k.pool.Put(st)
	return b.String()
}

func (st *keyState) flush() {
	if st.n > 0 {
		st.h.Write(st.buf[:st.n])
		st.n = 0
	}
}
