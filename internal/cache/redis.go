package cache

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrLevelDown is returned by a level whose circuit breaker is open: the
// level is skipped (a Get is a miss, a Set is dropped) without any I/O.
var ErrLevelDown = errors.New("cache: level down")

// Defaults for RedisOptions.
const (
	DefaultRedisPrefix   = "medserve:c:"
	DefaultRedisTimeout  = 50 * time.Millisecond
	DefaultRedisCoolDown = time.Second
)

// RedisOptions tunes the Redis level; zero fields take the defaults.
type RedisOptions struct {
	// Prefix is put before every key, so medserve's entries are easy to
	// find and cannot collide with other users of the same Redis.
	Prefix string
	// Timeout bounds one GET or SET, so that a slow Redis costs a request
	// at most this long before it counts as a failure.
	Timeout time.Duration
	// CoolDown is how long the level is skipped after a failure; then one
	// probe request is let through, and its success closes the breaker.
	CoolDown time.Duration
}

// Breaker states.
const (
	breakerClosed  int32 = iota // requests go to Redis
	breakerOpen                 // requests are skipped until openUntil
	breakerProbing              // one probe is in flight; others are skipped
)

// Redis is the shared level ("l2") over a Redis client. Values are stored
// with SET key val PX ttl. A failure (timeout, connection refused, …) opens
// a circuit breaker: for the cool-down the level answers ErrLevelDown at the
// cost of two atomic loads, so a Redis outage never fails a request and
// never makes one wait longer than one operation timeout. Redis itself is
// outside the process: wrap the level in Sealed so that values leave it
// encrypted. A Redis is safe for concurrent use.
type Redis struct {
	client   redis.UniversalClient
	prefix   string
	timeout  time.Duration
	coolDown time.Duration

	// base anchors the monotonic clock: openUntil is nanoseconds since base.
	base      time.Time
	state     atomic.Int32
	openUntil atomic.Int64
}

var _ Level = (*Redis)(nil)

// NewRedis returns the Redis level over client; the caller keeps ownership
// of client (and closes it).
func NewRedis(client redis.UniversalClient, opt RedisOptions) *Redis {
	if opt.Prefix == "" {
		opt.Prefix = DefaultRedisPrefix
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultRedisTimeout
	}
	if opt.CoolDown <= 0 {
		opt.CoolDown = DefaultRedisCoolDown
	}
	return &Redis{
		client:   client,
		prefix:   opt.Prefix,
		timeout:  opt.Timeout,
		coolDown: opt.CoolDown,
		base:     time.Now(),
	}
}

// ParseRedisURL returns a client for a redis:// (or rediss://, unix://) URL,
// tuned for a cache where a miss is cheaper than waiting: 200 ms to dial,
// 100 ms to read or write, no retries, context deadlines honoured. Values
// given in the URL's query (dial_timeout=…) win over these defaults. The
// error never repeats the URL, which may hold a password.
func ParseRedisURL(rawURL string) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("cache: invalid redis URL: %w", err)
	}
	if opt.DialTimeout == 0 {
		opt.DialTimeout = 200 * time.Millisecond
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = 100 * time.Millisecond
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = 100 * time.Millisecond
	}
	if opt.PoolTimeout == 0 {
		// The default (ReadTimeout + 1 s) would let a saturated pool stall a
		// request far beyond the level's operation timeout.
		opt.PoolTimeout = 100 * time.Millisecond
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = -1 // a retry costs more than the miss it avoids
	}
	// One dial attempt per operation: the default retries with backoff
	// would outlast any operation timeout while Redis is down.
	opt.DialerRetries = 1
	opt.ContextTimeoutEnabled = true
	// No CLIENT SETINFO or maintenance-notification handshake: fewer round
	// trips per new connection, and nothing for an older Redis to refuse.
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opt), nil
}

// Name returns "l2".
func (r *Redis) Name() string { return "l2" }

// Get returns the value for key; ErrLevelDown while the breaker is open, or
// a wrapped error if Redis fails (which opens it). Both mean a miss.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	probe, ok := r.allow()
	if !ok {
		return nil, false, ErrLevelDown
	}
	octx, cancel := context.WithTimeout(ctx, r.timeout)
	v, err := r.client.Get(octx, r.prefix+key).Bytes()
	cancel()
	if errors.Is(err, redis.Nil) {
		r.done(ctx, probe, nil)
		return nil, false, nil
	}
	r.done(ctx, probe, err)
	if err != nil {
		return nil, false, fmt.Errorf("cache: redis get: %w", err)
	}
	return v, true, nil
}

// Set stores val under key for class's TTL (SET key val PX ttl); an unknown
// class stores nothing. While the breaker is open the write is dropped and
// ErrLevelDown returned.
func (r *Redis) Set(ctx context.Context, key string, class Class, val []byte) error {
	ttl := class.TTL()
	if ttl <= 0 {
		return nil
	}
	probe, ok := r.allow()
	if !ok {
		return ErrLevelDown
	}
	octx, cancel := context.WithTimeout(ctx, r.timeout)
	err := r.client.Do(octx, "set", r.prefix+key, val, "px", ttl.Milliseconds()).Err()
	cancel()
	r.done(ctx, probe, err)
	if err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	return nil
}

// Down reports whether the breaker is open (or probing): the level is being
// skipped because Redis failed recently.
func (r *Redis) Down() bool { return r.state.Load() != breakerClosed }

func (r *Redis) since() int64 { return int64(time.Since(r.base)) }

// allow reports whether an operation may go to Redis, and whether it is the
// one probe that decides if an open breaker closes.
func (r *Redis) allow() (probe, ok bool) {
	switch r.state.Load() {
	case breakerClosed:
		return false, true
	case breakerOpen:
		if r.since() < r.openUntil.Load() {
			return false, false
		}
		// Only the caller that wins the swap probes; the rest keep skipping.
		if r.state.CompareAndSwap(breakerOpen, breakerProbing) {
			return true, true
		}
	}
	return false, false
}

// done records an operation's outcome. A failure opens the breaker for the
// cool-down; the probe's success closes it. A failure because the caller
// left (its context was cancelled) says nothing about Redis and trips
// nothing; a caller's deadline that ran out does trip it, since a deadline
// shorter than the operation timeout must not hide a hung Redis.
func (r *Redis) done(ctx context.Context, probe bool, err error) {
	callerGone := err != nil && errors.Is(ctx.Err(), context.Canceled)
	switch {
	case err == nil && probe:
		r.state.Store(breakerClosed)
	case err == nil || (callerGone && !probe):
		// Success while closed, or nothing learnt: no change. A success of
		// an operation started before the breaker opened does not close it:
		// only the probe decides.
	case callerGone:
		// The probe learnt nothing: let the next request probe at once.
		r.openUntil.Store(r.since())
		r.state.Store(breakerOpen)
	default:
		// openUntil first, so that a reader who sees the open state also
		// sees its deadline.
		r.openUntil.Store(r.since() + int64(r.coolDown))
		if probe {
			r.state.Store(breakerOpen)
		} else {
			r.state.CompareAndSwap(breakerClosed, breakerOpen)
		}
	}
}
