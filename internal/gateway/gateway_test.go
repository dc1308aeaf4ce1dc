package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// ok answers 200 "ok".
var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte("ok"))
})

// checkProblem asserts rec holds an RFC 9457 answer with status for path.
func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, path string) problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d (body %q)", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body.String(), err)
	}
	if p.Type != "about:blank" || p.Status != status || p.Title != http.StatusText(status) || p.Instance != path || p.Detail == "" {
		t.Fatalf("problem = %+v, want about:blank, %d, %q, instance %q and a detail", p, status, http.StatusText(status), path)
	}
	return p
}

func TestWriteProblemShape(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Length", "99")
	rec.Header().Set("Content-Encoding", "gzip")
	writeProblem(rec, httptest.NewRequest("GET", "/api/v1/x?y=1", nil), http.StatusForbidden, "no <way>")
	checkProblem(t, rec, http.StatusForbidden, "/api/v1/x")
	want := `{"type":"about:blank","title":"Forbidden","status":403,"detail":"no <way>","instance":"/api/v1/x"}` + "\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if rec.Header().Get("Content-Length") != "" || rec.Header().Get("Content-Encoding") != "" {
		t.Errorf("stale Content-Length or Content-Encoding kept: %v", rec.Header())
	}
}

func TestAddVary(t *testing.T) {
	tests := []struct {
		have []string
		add  string
		want []string
	}{
		{nil, "Origin", []string{"Origin"}},
		{[]string{"Accept-Encoding"}, "Origin", []string{"Accept-Encoding", "Origin"}},
		{[]string{"accept-encoding, origin"}, "Origin", []string{"accept-encoding, origin"}},
		{[]string{"*"}, "Origin", []string{"*"}},
	}
	for _, tt := range tests {
		h := http.Header{}
		for _, v := range tt.have {
			h.Add("Vary", v)
		}
		addVary(h, tt.add)
		if got := h.Values("Vary"); !equalStrings(got, tt.want) {
			t.Errorf("addVary(%q, %q) = %q, want %q", tt.have, tt.add, got, tt.want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSecurityHeaders(t *testing.T) {
	base := map[string]string{
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "strict-origin-when-cross-origin",
		"Content-Security-Policy": ContentSecurityPolicy,
		"X-Xss-Protection":        "0",
		"Cache-Control":           "no-store",
	}
	static := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.WriteHeader(http.StatusOK)
	})
	tests := []struct {
		name      string
		hsts      bool
		handler   http.Handler
		wantHSTS  string
		wantCache string
	}{
		{"plain http", false, ok, "", "no-store"},
		{"tls", true, ok, "max-age=31536000; includeSubDomains", "no-store"},
		{"handler overrides cache", true, static, "max-age=31536000; includeSubDomains", "public, max-age=3600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			SecurityHeaders(tt.hsts)(tt.handler).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/models", nil))
			h := rec.Result().Header
			for k, v := range base {
				if k == "Cache-Control" {
					v = tt.wantCache
				}
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := h.Get("Strict-Transport-Security"); got != tt.wantHSTS {
				t.Errorf("Strict-Transport-Security = %q, want %q", got, tt.wantHSTS)
			}
			if _, present := h["Strict-Transport-Security"]; present != tt.hsts {
				t.Errorf("HSTS present = %v, want %v", present, tt.hsts)
			}
		})
	}
}
