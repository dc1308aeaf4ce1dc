package alert

import (
	"context"
	"fmt"
	"sync/atomic"

	"medserve/internal/store"
)

// Mode names (SPEC section 11).
const (
	ModeOversight  = "oversight"
	ModeCompliance = "compliance"
	ModeCaching    = "caching"
	ModeScaleUp    = "scale_up"
)

// KnownModes are the modes an admin may set.
var KnownModes = []string{ModeOversight, ModeCompliance, ModeCaching, ModeScaleUp}

// Switches are what the modes switch on this replica (the pipeline).
type Switches interface {
	SetOversight(reason string)
	SetCaching(on bool)
}

// ModeState is this replica's view of the cluster-wide modes: the store
// holds them, every replica applies what it reads.
type ModeState struct {
	st             ModeStore
	sw             Switches
	cachingDefault bool
	compliance     atomic.Bool
}

// ModeStore keeps the modes.
type ModeStore interface {
	SetMode(ctx context.Context, m store.Mode) error
	Modes(ctx context.Context) ([]store.Mode, error)
}

// NewModeState applies modes to sw; cachingDefault is whether answers are
// cached when no one has set the caching mode (the --cache-mb setting).
func NewModeState(st ModeStore, sw Switches, cachingDefault bool) *ModeState {
	return &ModeState{st: st, sw: sw, cachingDefault: cachingDefault}
}

// Apply makes this replica follow modes.
func (m *ModeState) Apply(modes []store.Mode) {
	oversight, caching, compliance := "", m.cachingDefault, false
	for _, x := range modes {
		switch x.Name {
		case ModeOversight:
			if x.Enabled {
				oversight = x.Reason
				if oversight == "" {
					oversight = "set by " + x.Actor
				}
			}
		case ModeCaching:
			caching = x.Enabled // once set (by the engine or an admin), the mode decides
		case ModeCompliance:
			compliance = x.Enabled
		}
	}
	m.sw.SetOversight(oversight)
	m.sw.SetCaching(caching)
	m.compliance.Store(compliance)
}

// Compliance reports whether compliance mode is on: an answer then waits
// until its audit event is in the store, not only in the local spool.
func (m *ModeState) Compliance() bool { return m.compliance.Load() }

// Set stores a mode (an admin's change) and applies it here at once.
func (m *ModeState) Set(ctx context.Context, x store.Mode) error {
	if err := m.st.SetMode(ctx, x); err != nil {
		return fmt.Errorf("set mode %s: %w", x.Name, err)
	}
	modes, err := m.st.Modes(ctx)
	if err != nil {
		return fmt.Errorf("read modes: %w", err)
	}
	m.Apply(modes)
	return nil
}

// List returns every mode ever set.
func (m *ModeState) List(ctx context.Context) ([]store.Mode, error) { return m.st.Modes(ctx) }
