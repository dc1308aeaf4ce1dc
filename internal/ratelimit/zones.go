package ratelimit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrUnknownZone is returned for a zone name that is not configured.
var ErrUnknownZone = errors.New("ratelimit: unknown zone")

// Zone names.
const (
	ZoneInference = "inference"
	ZoneClinical  = "clinical"
	ZoneBatch     = "batch"
	ZoneHealth    = "health"
)

// Zones holds the named zones and their default Limit. The zero Zones has no
// zones; start from DefaultZones or ParseZones. A Zones is immutable and safe
// for concurrent use.
type Zones struct {
	limits map[string]Limit
}

// DefaultZones returns the zones of SPEC §8:
//
//   - inference 60/min burst 10, clinical 30/min burst 5: as specified.
//   - batch 10/min burst 0. The spec gives no burst, so nginx's default, 0:
//     one batch every 6 s. A batch request already carries many queries (up
//     to 50 MiB), and batch clients are programs that can pace themselves
//     on Retry-After; a burst would only let one client stack up several
//     50 MiB jobs at once.
//   - health 300/min burst 20. Here we depart from nginx's 0 on purpose:
//     probes arrive in clumps from one address — a kubelet runs liveness
//     and readiness probes on the same tick, and with limits shared through
//     Redis one node's kubelet probing several replicas is one client —
//     and a rejected probe takes a healthy replica out of rotation. With
//     burst 0 two probes 100 ms apart would already be one too many. 20
//     absorbs such clumps; a flood still gets only 21 and then 5 a second
//     of a cheap endpoint. Override with "health=300/min burst 0" if the
//     probes come from somewhere the limit does not apply.
func DefaultZones() Zones {
	return Zones{limits: map[string]Limit{
		ZoneInference: {Rate: 60.0 / 60, Burst: 10},
		ZoneClinical:  {Rate: 30.0 / 60, Burst: 5},
		ZoneBatch:     {Rate: 10.0 / 60, Burst: 0},
		ZoneHealth:    {Rate: 300.0 / 60, Burst: 20},
	}}
}

// ParseZones returns DefaultZones with the limits in spec overriding theirs.
// spec is a comma-separated list of zone=limit in ParseLimit's syntax, e.g.
// "inference=120/min burst 20,clinical=60/min burst 10"; "" keeps the
// defaults. Naming a zone that does not exist, or one zone twice, is an
// error: a typo must not silently leave the default in place.
func ParseZones(spec string) (Zones, error) {
	z := DefaultZones()
	over, err := z.parseOverrides(spec)
	if err != nil {
		return Zones{}, err
	}
	maps.Copy(z.limits, over)
	return z, nil
}

// Limit returns zone's limit, and whether zone exists.
func (z Zones) Limit(zone string) (Limit, bool) {
	l, ok := z.limits[zone]
	return l, ok
}

// Names returns the zone names, sorted.
func (z Zones) Names() []string {
	return slices.Sorted(maps.Keys(z.limits))
}

// For returns the limit for zone for a client whose API key carries
// keyLimits (in ParseZones' syntax, "" when it carries none): the key's own
// limit for zone if it names one, else the zone's. ErrUnknownZone if zone
// is not configured. If keyLimits is malformed, or names an unknown zone,
// For returns the zone's limit together with the error, so that a caller
// who logs the bad key and carries on still limits the client.
func (z Zones) For(zone, keyLimits string) (Limit, error) {
	l, ok := z.limits[zone]
	if !ok {
		return Limit{}, fmt.Errorf("%w: %q", ErrUnknownZone, clip(zone))
	}
	if strings.TrimSpace(keyLimits) == "" {
		return l, nil
	}
	over, err := z.parseOverrides(keyLimits)
	if err != nil {
		return l, fmt.Errorf("ratelimit: key limits: %w", err)
	}
	if kl, ok := over[zone]; ok {
		return kl, nil
	}
	return l, nil
}

// parseOverrides parses "zone=limit,zone=limit" against z's zone names.
func (z Zones) parseOverrides(spec string) (map[string]Limit, error) {
	over := make(map[string]Limit)
	if strings.TrimSpace(spec) == "" {
		return over, nil
	}
	for item := range strings.SplitSeq(spec, ",") {
		name, lim, ok := strings.Cut(item, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: %q: want zone=limit", ErrInvalidLimit, clip(strings.TrimSpace(item)))
		}
		if _, known := z.limits[name]; !known {
			return nil, fmt.Errorf("%w: %q (zones: %s)", ErrUnknownZone, clip(name), strings.Join(z.Names(), ", "))
		}
		if _, dup := over[name]; dup {
			return nil, fmt.Errorf("%w: zone %q given twice", ErrInvalidLimit, name)
		}
		l, err := ParseLimit(lim)
		if err != nil {
			return nil, fmt.Errorf("zone %s: %w", name, err)
		}
		over[name] = l
	}
	return over, nil
}
