package server

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"medserve/internal/auth"
	"medserve/internal/gateway"
	"medserve/internal/ratelimit"
)

// Authenticator turns a request's credentials into a principal.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Principal, error)
}

// Gateway is the security configuration the server applies itself, so it
// is safe without nginx in front (SPEC section 8).
type Gateway struct {
	// Auth authenticates API requests; nil turns authentication off
	// (--insecure-no-auth, loopback only, and unit tests of other parts).
	Auth           Authenticator
	Limiter        ratelimit.Limiter // nil: no rate limits
	Zones          ratelimit.Zones
	TrustedProxies []netip.Prefix // X-Forwarded-For is believed only from these
	MetricsNets    []netip.Prefix // who may read /metrics without the token
	MetricsToken   string
	CORSOrigins    []string
	HSTS           bool // serving TLS or behind a TLS-terminating proxy
	MaxInFlight    int  // 0: no cap
}

// Route timeouts (SPEC section 8).
const (
	timeoutInference = 5 * time.Second
	timeoutClinical  = 10 * time.Second
)

// Roles allowed per kind of route; admin may do everything (auth.Principal.Can).
var (
	rolesInference = []string{auth.RoleClinician, auth.RoleService}
	rolesHistory   = []string{auth.RoleClinician}
	rolesAudit     = []string{auth.RoleAuditor}
	rolesAny       = []string{auth.RoleClinician, auth.RoleService, auth.RoleAuditor}
	rolesAdmin     = []string{auth.RoleAdmin}
)

type principalKey struct{}

// authResult is what the outer guard learnt about the caller.
type authResult struct {
	p   auth.Principal
	err error
}

func principalFrom(ctx context.Context) (authResult, bool) {
	a, ok := ctx.Value(principalKey{}).(authResult)
	return a, ok
}

// limit authenticates the caller and applies the route's rate-limit zone,
// before anything is audited: a flood is refused with 429 at the cost of a
// map lookup, and cannot fill the audit trail. The authentication result
// travels in the context to authorize, inside the audited handler, so that
// a denial is audited with what is known of the caller.
func (s *Server) limit(zone string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a authResult
		if s.Gateway.Auth != nil {
			a.p, a.err = s.Gateway.Auth.Authenticate(r)
		} else {
			// --insecure-no-auth (loopback only): the caller may do
			// everything, and is audited as anonymous.
			a.p = auth.Principal{ID: "anonymous", Role: auth.RoleAdmin, Kind: auth.KindAnonymous}
		}
		if s.Gateway.Limiter != nil {
			ip, ok := gateway.ClientIPFrom(r.Context())
			if !ok {
				ip = gateway.ClientIP(r, s.Gateway.TrustedProxies)
			}
			key, keyLimits := "ip:"+clientKey(ip), ""
			if a.err == nil && a.p.Kind != auth.KindAnonymous {
				key, keyLimits = "id:"+a.p.ID, a.p.Limits
			}
			// A key whose stored limits do not parse gets the zone's
			// default (For returns it with the error): never unlimited.
			lim := s.zoneLimit(zone, keyLimits)
			d, err := s.Gateway.Limiter.Allow(r.Context(), zone+"|"+key, lim)
			if err == nil {
				ratelimit.SetHeaders(w.Header(), d)
				if !d.Allowed {
					s.metrics.RateLimited.WithLabelValues(zone).Inc()
					writeProblem(w, r, http.StatusTooManyRequests, "rate limit of the "+zone+" zone exceeded; retry after Retry-After seconds")
					return
				}
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, a)))
	})
}

// authorize answers 401 without valid credentials and 403 for a role the
// route does not admit; the audited wrapper around it records either as a
// denied event. It also names the actor for that wrapper.
func (s *Server) authorize(roles []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := principalFrom(r.Context())
		if note := noteFrom(r.Context()); note != nil && ok && a.err == nil {
			note.mu.Lock()
			note.actor, note.role = a.p.ID, a.p.Role
			note.mu.Unlock()
		}
		switch {
		case !ok:
			writeProblem(w, r, http.StatusInternalServerError, "route without a guard")
		case a.err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="medserve"`)
			detail := "authentication required: send Authorization: Bearer <API key or JWT>"
			if !errors.Is(a.err, auth.ErrNoCredentials) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="medserve", error="invalid_token"`)
				detail = "invalid credentials"
			}
			writeProblem(w, r, http.StatusUnauthorized, detail)
		case !a.p.Can(roles...):
			writeProblem(w, r, http.StatusForbidden, "the "+a.p.Role+" role may not use this route")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// clientKey is the rate-limit identity of an address: an IPv6 client
// controls a whole /64, so it is one client, not 2^64.
func clientKey(ip netip.Addr) string {
	if ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// zoneLimit is Zones.For, remembered: a key's limits string is parsed once,
// not on every request (there are few distinct strings, one per key).
func (s *Server) zoneLimit(zone, keyLimits string) ratelimit.Limit {
	k := zone + "\x00" + keyLimits
	if l, ok := s.limits.Load(k); ok {
		return l.(ratelimit.Limit)
	}
	l, _ := s.Gateway.Zones.For(zone, keyLimits)
	s.limits.Store(k, l)
	return l
}
