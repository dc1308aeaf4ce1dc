// Package ratelimit admits or rejects requests per client key with nginx
// limit_req semantics (rate, burst, nodelay), implemented as the generic cell
// rate algorithm (GCRA): one timestamp per key, no timers, no goroutines.
//
// # The mapping to nginx
//
// nginx `limit_req_zone … rate=60r/m; limit_req zone=z burst=10 nodelay;`
// serves one request per second on average, lets up to 10 extra requests
// through at once, serves them immediately (nodelay) and rejects the excess.
// The same thing as a GCRA:
//
//   - emission interval T = 1/Rate (60/min → T = 1 s);
//   - tolerance τ = Burst·T (burst 10 → τ = 10 s);
//   - each key has a theoretical arrival time TAT (initially "now"). A request
//     at time t is allowed iff t ≥ max(TAT, t) − τ; if it is, TAT becomes
//     max(TAT, t) + T. Otherwise nothing changes and the client may retry
//     after max(TAT, t) − τ − t.
//
// So a fresh client gets exactly Burst+1 requests at once, then one every T;
// an idle client regains one request of budget per T, up to Burst+1. That is
// nginx with nodelay (nginx's leaky bucket counts the excess in units of
// 1/1000 request, so its boundaries can differ from this by a millisecond).
// Without nodelay nginx would queue the burst instead; we never delay.
//
// Keys are opaque to this package: callers name the zone and the client in
// the key ("inference:key-id", "health:203.0.113.7"), and never put a secret
// (an API key itself) in it — with Redis the keys are stored there in clear.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrInvalidLimit is returned for a limit that cannot be parsed or is out of
// range.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// Bounds on a Limit. They keep every time computation (in nanoseconds, and
// in microseconds inside Redis) far from overflow and exact in a float64.
const (
	// MinRate is one request per day.
	MinRate = 1.0 / 86400
	// MaxRate is a million requests per second (T = 1 µs).
	MaxRate = 1e6
	// MaxBurst bounds Burst; with T ≤ 1 day, τ stays below 30 years.
	MaxBurst = 10_000
	// maxCount bounds the N of "N/unit" in ParseLimit.
	maxCount = 1_000_000
)

// Limit is a rate with a burst, as nginx limit_req's rate= and burst= with
// nodelay: on average Rate requests per second, and up to Burst extra at
// once. The zero Limit is invalid.
type Limit struct {
	Rate  float64 // requests per second, in [MinRate, MaxRate]
	Burst int     // extra requests admitted at once, in [0, MaxBurst]
}

// Validate reports whether l is within the bounds; every Limiter checks it.
func (l Limit) Validate() error {
	if math.IsNaN(l.Rate) || l.Rate < MinRate || l.Rate > MaxRate {
		return fmt.Errorf("%w: rate %g/s outside [1/day, %g/s]", ErrInvalidLimit, l.Rate, float64(MaxRate))
	}
	if l.Burst < 0 || l.Burst > MaxBurst {
		return fmt.Errorf("%w: burst %d outside [0, %d]", ErrInvalidLimit, l.Burst, MaxBurst)
	}
	return nil
}

// Capacity is how many requests a fresh (or long idle) client may send at
// once: Burst+1. It is what RateLimit-Limit reports.
func (l Limit) Capacity() int { return l.Burst + 1 }

// interval returns the emission interval T and the tolerance τ = Burst·T in
// nanoseconds, or an error for an invalid limit.
func (l Limit) interval() (t, tau int64, err error) {
	if err := l.Validate(); err != nil {
		return 0, 0, err
	}
	t = max(1, int64(math.Round(1e9/l.Rate)))
	return t, int64(l.Burst) * t, nil
}

// intervalMicros is interval in whole microseconds, as the Redis script
// counts time (redis TIME has microsecond resolution).
func (l Limit) intervalMicros() (t, tau int64, err error) {
	if err := l.Validate(); err != nil {
		return 0, 0, err
	}
	t = max(1, int64(math.Round(1e6/l.Rate)))
	return t, int64(l.Burst) * t, nil
}

// units are the accepted rate units, smallest first (String uses the first
// one that gives a whole count).
var units = []struct {
	names   []string // names[0] is the one String prints
	seconds float64
}{
	{[]string{"s", "sec", "second"}, 1},
	{[]string{"min", "m", "minute"}, 60},
	{[]string{"h", "hour"}, 3600},
	{[]string{"day", "d"}, 86400},
}

// String formats l in the syntax ParseLimit reads, e.g. "1/s burst 10" (a
// "60/min" limit prints per second: only the rate is kept, not its unit).
func (l Limit) String() string {
	rate := strconv.FormatFloat(l.Rate, 'g', -1, 64) + "/s"
	for _, u := range units {
		n := l.Rate * u.seconds
		if r := math.Round(n); r >= 1 && r <= maxCount && r/u.seconds == l.Rate {
			rate = strconv.FormatFloat(r, 'f', 0, 64) + "/" + u.names[0]
			break
		}
	}
	if l.Burst == 0 {
		return rate
	}
	return rate + " burst " + strconv.Itoa(l.Burst)
}

// ParseLimit parses "N/unit [burst B]": N requests per unit on average, and
// B (default 0, as in nginx) extra requests at once. Units: s, sec, second,
// m, min, minute, h, hour, d, day; nginx's "60r/m" and "burst=10" are
// accepted too. Case and spacing are free: "60/min burst 10", "10/s",
// "300/min", "5/min burst 0", "60r/m burst=10".
func ParseLimit(s string) (Limit, error) {
	fields := strings.Fields(strings.ToLower(s))
	bad := func(why string) (Limit, error) {
		return Limit{}, fmt.Errorf("%w: %q: %s", ErrInvalidLimit, clip(s), why)
	}
	if len(fields) == 0 {
		return bad("empty")
	}
	count, unit, ok := strings.Cut(fields[0], "/")
	if !ok {
		return bad(`want "N/unit", e.g. "60/min"`)
	}
	count = strings.TrimSuffix(count, "r")
	n, err := parseCount(count, 1, maxCount)
	if err != nil {
		return bad("count " + err.Error())
	}
	secs := 0.0
	for _, u := range units {
		for _, name := range u.names {
			if unit == name {
				secs = u.seconds
			}
		}
	}
	if secs == 0 {
		return bad("unknown unit " + strconv.Quote(clip(unit)) + " (want s, min, h or day)")
	}
	l := Limit{Rate: float64(n) / secs}

	burst, hasBurst := "", false
	switch rest := fields[1:]; {
	case len(rest) == 0:
	case len(rest) == 1 && strings.HasPrefix(rest[0], "burst="):
		burst, hasBurst = strings.TrimPrefix(rest[0], "burst="), true
	case len(rest) == 2 && rest[0] == "burst":
		burst, hasBurst = rest[1], true
	default:
		return bad(`want "burst B" after the rate`)
	}
	if hasBurst {
		if l.Burst, err = parseCount(burst, 0, MaxBurst); err != nil {
			return bad("burst " + err.Error())
		}
	}
	if err := l.Validate(); err != nil {
		return Limit{}, err
	}
	return l, nil
}

// parseCount parses a plain decimal integer (digits only: no sign, no
// spaces) in [lo, hi].
func parseCount(s string, lo, hi int) (int, error) {
	if s == "" || len(s) > 9 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("is not a whole number")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s is outside [%d, %d]", s, lo, hi)
	}
	return n, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
