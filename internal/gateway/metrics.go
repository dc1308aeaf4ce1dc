package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strings"
)

// DefaultMetricsNetworks returns the networks allowed to scrape /metrics by
// default: loopback and the private ranges (RFC 1918, RFC 4193).
func DefaultMetricsNetworks() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("fc00::/7"),
	}
}

// AllowNetworks guards next (the /metrics handler): a request passes when
// its client address is in nets, or when token is not empty and the request
// carries Authorization: Bearer <token> (compared in constant time). Any
// other request gets 403 problem+json.
//
// The client address is the one RealIP stored in the context, so put RealIP
// in front when medserve stands behind a proxy. Without RealIP the peer
// address is used, and a request carrying forwarding headers
// (X-Forwarded-For, X-Real-Ip, Forwarded) is refused on the network test:
// it came through a proxy, whose private peer address says nothing about
// the client, and letting it pass would open /metrics to the Internet.
func AllowNetworks(nets []netip.Prefix, token string, next http.Handler) http.Handler {
	var want [sha256.Size]byte
	if token != "" {
		want = sha256.Sum256([]byte(token))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && bearerMatches(r.Header.Get("Authorization"), &want) {
			next.ServeHTTP(w, r)
			return
		}
		addr, ok := ClientIPFrom(r.Context())
		if !ok {
			addr = ClientIP(r, nil)
			if forwarded(r.Header) {
				addr = netip.Addr{}
			}
		}
		if addr.IsValid() && contains(nets, addr) {
			next.ServeHTTP(w, r)
			return
		}
		writeProblem(w, r, http.StatusForbidden, "metrics are served to allowed networks, or with the metrics token")
	})
}

// bearerMatches reports whether the Authorization value is a Bearer
// credential whose SHA-256 equals want. Hashing first makes the comparison
// constant-time in the length too.
func bearerMatches(auth string, want *[sha256.Size]byte) bool {
	scheme, cred, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	cred = strings.TrimLeft(cred, " ")
	if cred == "" {
		return false
	}
	got := sha256.Sum256([]byte(cred))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// forwarded reports whether a proxy forwarded the request.
func forwarded(h http.Header) bool {
	return len(h.Values("X-Forwarded-For")) > 0 || len(h.Values("Forwarded")) > 0 || len(h.Values("X-Real-Ip")) > 0
}
