package gateway

import "net/http"

// ContentSecurityPolicy is the policy SecurityHeaders sends: everything from
// our own origin only. frame-ancestors, base-uri and form-action do not fall
// back to default-src, so they are named too; frame-ancestors 'none' is the
// CSP form of X-Frame-Options: DENY.
const ContentSecurityPolicy = "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// hstsValue asks browsers to use HTTPS for a year, subdomains included.
const hstsValue = "max-age=31536000; includeSubDomains"

// SecurityHeaders sets the response headers of SPEC section 8 on every
// answer. hsts adds Strict-Transport-Security and must be true only when the
// server speaks TLS or stands behind a TLS-terminating proxy (the server
// decides; a plain-HTTP origin must never send it). Cache-Control: no-store
// is the default because API answers hold clinical data; a handler serving
// static assets may override it with its own Cache-Control. X-XSS-Protection
// is 0: the legacy filter is deprecated and itself a source of leaks.
func SecurityHeaders(hsts bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-Frame-Options", "DENY")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
			h.Set("Content-Security-Policy", ContentSecurityPolicy)
			h.Set("X-XSS-Protection", "0")
			h.Set("Cache-Control", "no-store")
			if hsts {
				h.Set("Strict-Transport-Security", hstsValue)
			}
			next.ServeHTTP(w, r)
		})
	}
}
