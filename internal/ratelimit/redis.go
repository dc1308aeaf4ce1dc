package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for Redis.
const (
	DefaultRedisPrefix = "medserve:rl:"
	// DefaultRedisTimeout bounds one check, so that a slow Redis costs a
	// request at most this long before it counts as a failure.
	DefaultRedisTimeout = 50 * time.Millisecond
	// DefaultRedisCoolDown is how long Redis is skipped after a failure;
	// then one probe check is let through, and its success closes the
	// breaker.
	DefaultRedisCoolDown = time.Second
)

// gcraScript is the GCRA of gcra() in one atomic step on the Redis server,
// in microseconds on the server's clock (TIME), so that replicas whose own
// clocks disagree still share one budget per key.
//
// KEYS[1] holds the key's TAT; ARGV[1] is T and ARGV[2] is τ, whole µs.
// Returns {allowed (0/1), remaining, retry-after µs, reset µs}. An allowed
// request stores the new TAT with a TTL of the time until the bucket is
// full again, after which the key is (rightly) gone: an absent key is a
// full bucket. Every number stays below 2^53, so Lua's doubles are exact,
// and the TAT is written with %.0f, not tostring (which keeps 14 digits).
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat == nil or tat < now then tat = now end
local allow_at = tat - tau
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local new_tat = tat + t
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
local remaining = 0
local slack = now + tau - new_tat
if slack >= 0 then remaining = math.floor(slack / t) + 1 end
return {1, remaining, 0, new_tat - now}
`

// Redis is a Limiter whose buckets live in Redis, shared by every replica
// that uses the same Redis and prefix: one Lua script per check (EVALSHA,
// EVAL when the server has not cached it), atomic, on the server's clock.
//
// When Redis fails — down, refusing, or slower than the 50 ms check
// timeout — the check goes to the fallback Limiter (a local Memory) and a
// circuit breaker sends every check there for a cool-down (1 s), at the
// cost of two atomic loads, before one probe tries Redis again. So an
// outage never fails a request, never makes one wait more than one
// timeout, and never lifts the limits: each replica enforces them locally,
// which lets a client up to (replicas × limit) through while it lasts,
// since each replica counts alone. Buckets kept locally during the outage
// are not copied to Redis afterwards, nor the reverse: a client's budget is
// counted afresh on each side of a switch.
//
// A Redis is safe for concurrent use.
type Redis struct {
	client   redis.UniversalClient
	prefix   string
	fallback Limiter
	script   *redis.Script
	timeout  time.Duration
	breaker  *breaker

	fallbacks atomic.Int64
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Limiter over client (which the caller keeps and
// closes) storing keys under prefix ("" means DefaultRedisPrefix) and
// falling back to fallback (nil means a NewMemory(time.Now, 0)) when Redis
// fails. For a client tuned to fail fast, see cache.ParseRedisURL.
func NewRedis(client redis.UniversalClient, prefix string, fallback Limiter) *Redis {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	if fallback == nil {
		fallback = NewMemory(time.Now, 0)
	}
	return &Redis{
		client:   client,
		prefix:   prefix,
		fallback: fallback,
		script:   redis.NewScript(gcraScript),
		timeout:  DefaultRedisTimeout,
		breaker:  newBreaker(DefaultRedisCoolDown),
	}
}

// Allow implements Limiter. It fails only for an invalid limit: a Redis
// failure is answered by the fallback.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	t, tau, err := l.intervalMicros()
	if err != nil {
		return Decision{}, err
	}
	probe, ok := r.breaker.allow()
	if !ok {
		return r.fallBack(ctx, key, l)
	}
	d, err := r.check(ctx, key, t, tau)
	r.breaker.done(ctx, probe, err)
	if err != nil {
		return r.fallBack(ctx, key, l)
	}
	d.Limit = l
	return d, nil
}

// check runs the script once, within the check timeout.
func (r *Redis) check(ctx context.Context, key string, t, tau int64) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := r.script.Run(ctx, r.client, []string{r.prefix + key}, t, tau).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("ratelimit: redis: script returned %d values, want 4", len(res))
	}
	return Decision{
		Allowed:    res[0] == 1,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		Reset:      time.Duration(res[3]) * time.Microsecond,
	}, nil
}

func (r *Redis) fallBack(ctx context.Context, key string, l Limit) (Decision, error) {
	r.fallbacks.Add(1)
	return r.fallback.Allow(ctx, key, l)
}

// Down reports whether the breaker is open (or probing): checks are going
// to the fallback because Redis failed recently.
func (r *Redis) Down() bool { return r.breaker.down() }

// Fallbacks returns how many checks the fallback has answered.
func (r *Redis) Fallbacks() int64 { return r.fallbacks.Load() }
