package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r. It is the peer
// address (r.RemoteAddr) unless the peer is one of the trusted proxy
// networks; then X-Forwarded-For is walked from the right, skipping trusted
// addresses, and the first untrusted one is the client. Only the entries our
// own proxies appended are believed: the leftmost entries are whatever the
// client chose to send. A malformed entry stops the walk, and the last good
// address (a trusted proxy, at worst the peer) is returned. Addresses come
// back unmapped (::ffff:10.0.0.1 is 10.0.0.1) and without zone; the zero
// Addr means the peer address itself could not be read (a Unix socket).
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !peer.IsValid() || !contains(trusted, peer) {
		return peer
	}
	last := peer
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for {
			j := strings.LastIndexByte(v, ',')
			a := parseHostAddr(strings.TrimSpace(v[j+1:]))
			if !a.IsValid() {
				return last
			}
			if !contains(trusted, a) {
				return a
			}
			last = a
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return last
}

// parseHostAddr reads an address as found in RemoteAddr or X-Forwarded-For:
// "ip", "ip:port", "[ipv6]:port" or "[ipv6]".
func parseHostAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		switch {
		case err2 == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !a.Is6() {
				return netip.Addr{}
			}
		default:
			return netip.Addr{}
		}
	}
	return a.Unmap().WithZone("")
}

// contains reports whether a lies in one of nets.
func contains(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefixes reads a comma-separated list of networks, as given in a flag
// or environment variable: "10.0.0.0/8, 192.168.1.7, ::1". A bare address is
// a single host (/32 or /128); host bits after the prefix length are cleared.
// Empty items are skipped; zones are refused.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("gateway: network %q: %w", item, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("gateway: network %q: %w", item, err)
		}
		if a.Zone() != "" {
			return nil, fmt.Errorf("gateway: network %q: zones are not allowed", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// clientIPKey is the context key under which RealIP stores the client address.
type clientIPKey struct{}

// RealIP returns middleware that resolves the client address once, with
// ClientIP and the trusted proxy networks, and stores it in the request
// context for later layers (AllowNetworks, rate limits, logs) to read with
// ClientIPFrom.
func RealIP(trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := context.WithValue(r.Context(), clientIPKey{}, ClientIP(r, trusted))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// ClientIPFrom returns the client address RealIP stored in ctx; ok is false
// when RealIP did not run.
func ClientIPFrom(ctx context.Context) (addr netip.Addr, ok bool) {
	addr, ok = ctx.Value(clientIPKey{}).(netip.Addr)
	return addr, ok
}
