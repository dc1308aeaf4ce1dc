package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// CORS preflight answers: the methods and request headers the API accepts,
// and how long a browser may cache that answer (a day).
const (
	corsAllowMethods  = "GET, POST, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type, X-Request-Id"
	corsExposeHeaders = "Retry-After, X-Request-Id"
	corsMaxAge        = "86400"
)

// CORS returns middleware that lets the listed origins call the API from a
// browser, with credentials. allowed holds exact origins, scheme://host[:port]
// (host compared case-insensitively, default ports optional); "*", "null",
// paths, queries and user info are configuration errors, because a wildcard
// or an opaque origin must never be combined with credentials.
//
// A listed origin gets Access-Control-Allow-Origin set to itself and
// Access-Control-Allow-Credentials: true; its preflight (OPTIONS with
// Access-Control-Request-Method) is answered 204 here with the allowed
// methods and headers, cached for a day. Any other origin gets no CORS header
// at all, and its preflight is refused with 403 problem+json, so a
// misconfigured web client fails loudly rather than with an opaque browser
// error. Every answer carries Vary: Origin, since it depends on the Origin
// header whichever way it goes.
func CORS(allowed []string) (func(http.Handler) http.Handler, error) {
	set := make(map[string]bool, len(allowed))
	for _, o := range allowed {
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("gateway: CORS origin %q: %w", o, err)
		}
		set[n] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			addVary(h, "Origin")
			origins := r.Header.Values("Origin")
			if len(origins) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			origin := ""
			if len(origins) == 1 {
				if n, err := normalizeOrigin(origins[0]); err == nil && set[n] {
					origin = n // the canonical form: never the client's bytes
				}
			}
			if origin == "" {
				if preflight {
					writeProblem(w, r, http.StatusForbidden, "origin not allowed")
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			if preflight {
				addVary(h, "Access-Control-Request-Method")
				addVary(h, "Access-Control-Request-Headers")
				h.Set("Access-Control-Allow-Methods", corsAllowMethods)
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", corsMaxAge)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			next.ServeHTTP(w, r)
		})
	}, nil
}

// normalizeOrigin returns the canonical form of a serialized origin:
// lower-case scheme and host, default port dropped. It rejects anything that
// is not a plain http or https origin.
func normalizeOrigin(s string) (string, error) {
	if s == "" || s == "*" || strings.EqualFold(s, "null") {
		return "", fmt.Errorf("not an allowable origin")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("scheme must be http or https")
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") {
		return "", fmt.Errorf("origin is scheme://host[:port] only")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" || strings.ContainsAny(host, "*%") {
		return "", fmt.Errorf("missing or invalid host")
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return "", fmt.Errorf("invalid IPv6 host: %w", err)
		}
		host = "[" + a.String() + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}
