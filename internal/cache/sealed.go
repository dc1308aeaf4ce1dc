package cache

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnsealable is returned (wrapped) by Sealed.Get for a stored value that
// does not open: tampered, moved from another key, or sealed under a key the
// Sealer no longer holds. The caller sees a miss.
var ErrUnsealable = errors.New("cache: stored value does not open")

// Sealer encrypts and authenticates values; phi.Keyring satisfies it.
// ad (associated data) is bound to the ciphertext: Open with another ad
// fails.
type Sealer interface {
	Seal(plaintext []byte, ad string) (string, error)
	Open(sealed string, ad string) ([]byte, error)
}

// Sealed wraps a level outside the process (Redis, the store) so that values
// leave the process encrypted: answers carry clinical content, and neither
// a Redis dump nor a database backup may show it (SPEC section 8). The
// associated data is "cache:"+key, so a value copied to another key does not
// open there. Safe for concurrent use if the level and Sealer are.
type Sealed struct {
	inner  Level
	sealer Sealer
}

var _ Level = (*Sealed)(nil)

// NewSealed returns inner with its values sealed by s.
func NewSealed(inner Level, s Sealer) *Sealed {
	return &Sealed{inner: inner, sealer: s}
}

// Name returns the wrapped level's name.
func (s *Sealed) Name() string { return s.inner.Name() }

// sealAD binds a value to its key.
func sealAD(key string) string { return "cache:" + key }

// Get returns the opened value for key. A value that does not open is never
// returned: the result is a miss with an error wrapping ErrUnsealable, which
// Tiered counts as a level error.
func (s *Sealed) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, ok, err := s.inner.Get(ctx, key)
	if err != nil || !ok {
		return nil, false, err
	}
	pt, err := s.sealer.Open(string(v), sealAD(key))
	if err != nil {
		return nil, false, fmt.Errorf("%w (%s): %w", ErrUnsealable, s.inner.Name(), err)
	}
	return pt, true, nil
}

// Set seals val and stores it under key. An unknown class stores nothing
// and seals nothing; neither does a level that reports itself down (see
// Redis.Down), which returns ErrLevelDown at once.
func (s *Sealed) Set(ctx context.Context, key string, class Class, val []byte) error {
	if !class.Known() {
		return nil
	}
	if d, ok := s.inner.(interface{ Down() bool }); ok && d.Down() {
		// Do not spend a seal on a write the level would drop; its next Get
		// probes whether it is back.
		return ErrLevelDown
	}
	ct, err := s.sealer.Seal(val, sealAD(key))
	if err != nil {
		return fmt.Errorf("cache: seal: %w", err)
	}
	return s.inner.Set(ctx, key, class, []byte(ct))
}
