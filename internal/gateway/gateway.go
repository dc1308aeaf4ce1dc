// Package gateway is the HTTP middleware that lets medserve stand on its own
// without a reverse proxy: security headers, CORS, gzip, network and token
// checks for /metrics, the client address behind trusted proxies, an
// in-flight limit, per-route deadlines, body and JSON limits, and the TLS
// configuration (SPEC section 8).
//
// Each middleware is a func(http.Handler) http.Handler, or a constructor
// returning one, so they compose by plain function application. A sensible
// order, outermost first:
//
//	RealIP(trusted)        the client address every later layer uses
//	SecurityHeaders(hsts)  headers on every answer, errors included
//	CORS(origins)          preflights answered before any work is done
//	InFlight(max).Wrap     shed load before reading bodies
//	Gzip(1024)             compress whatever the inner layers write
//	LimitBody(1 << 20)     per route: 1 MiB per query, 50 MiB per batch
//	Timeout(5 * time.Second) per route: inference 5 s, clinical 10 s
//
// AllowNetworks guards /metrics alone. Errors are answered as RFC 9457
// problem details, in the same shape as the server's own.
package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
)

// problem is an RFC 9457 problem detail, the shape internal/server answers in.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// writeProblem answers status with an application/problem+json body.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
}

// addVary adds token to the Vary header unless it is already listed.
func addVary(h http.Header, token string) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); strings.EqualFold(f, token) || f == "*" {
				return
			}
		}
	}
	h.Add("Vary", token)
}
