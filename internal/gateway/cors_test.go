package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCORSConfig(t *testing.T) {
	tests := []struct {
		origin string
		want   string // normalized; "" means an error
	}{
		{"https://app.example.org", "https://app.example.org"},
		{"https://App.Example.ORG/", "https://app.example.org"},
		{"HTTPS://app.example.org:443", "https://app.example.org"},
		{"http://localhost:8080", "http://localhost:8080"},
		{"http://localhost:80", "http://localhost"},
		{"https://app.example.org:8443", "https://app.example.org:8443"},
		{"http://[0:0::1]:3000", "http://[::1]:3000"},
		{"*", ""},
		{"null", ""},
		{"NULL", ""},
		{"", ""},
		{"app.example.org", ""},
		{"ftp://app.example.org", ""},
		{"file:///etc/passwd", ""},
		{"https://app.example.org/path", ""},
		{"https://app.example.org?x=1", ""},
		{"https://app.example.org#x", ""},
		{"https://user@app.example.org", ""},
		{"https://*.example.org", ""},
		{"https://", ""},
		{"https://app.example.org:port", ""},
	}
	for _, tt := range tests {
		got, err := normalizeOrigin(tt.origin)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q", tt.origin, got, err, tt.want)
		}
		_, err = CORS([]string{"https://ok.example.org", tt.origin})
		if (err != nil) != (tt.want == "") {
			t.Errorf("CORS([%q]) error = %v, want error %v", tt.origin, err, tt.want == "")
		}
	}
}

func TestCORS(t *testing.T) {
	mw, err := CORS([]string{"https://app.example.org", "http://localhost:3000"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		method     string
		origins    []string
		acrm       string // Access-Control-Request-Method
		wantStatus int
		wantACAO   string // "" means no CORS header at all
		wantNext   bool
	}{
		{"no origin", "GET", nil, "", 200, "", true},
		{"allowed", "POST", []string{"https://app.example.org"}, "", 200, "https://app.example.org", true},
		{"allowed, host case and default port", "GET", []string{"https://APP.example.org:443"}, "", 200, "https://app.example.org", true},
		{"allowed localhost", "GET", []string{"http://localhost:3000"}, "", 200, "http://localhost:3000", true},
		{"wrong port", "GET", []string{"http://localhost:3001"}, "", 200, "", true},
		{"wrong scheme", "GET", []string{"http://app.example.org"}, "", 200, "", true},
		{"suffix attack", "GET", []string{"https://app.example.org.evil.com"}, "", 200, "", true},
		{"prefix attack", "GET", []string{"https://evilapp.example.org"}, "", 200, "", true},
		{"null", "GET", []string{"null"}, "", 200, "", true},
		{"two origins", "GET", []string{"https://app.example.org", "https://app.example.org"}, "", 200, "", true},
		{"arbitrary", "GET", []string{"https://evil.example.com"}, "", 200, "", true},
		{"preflight allowed", "OPTIONS", []string{"https://app.example.org"}, "POST", 204, "https://app.example.org", false},
		{"preflight refused", "OPTIONS", []string{"https://evil.example.com"}, "POST", 403, "", false},
		{"preflight null", "OPTIONS", []string{"null"}, "POST", 403, "", false},
		{"options without request method is not a preflight", "OPTIONS", []string{"https://app.example.org"}, "", 200, "https://app.example.org", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				ok.ServeHTTP(w, r)
			})
			req := httptest.NewRequest(tt.method, "/api/v1/inference", nil)
			for _, o := range tt.origins {
				req.Header.Add("Origin", o)
			}
			if tt.acrm != "" {
				req.Header.Set("Access-Control-Request-Method", tt.acrm)
				req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			}
			rec := httptest.NewRecorder()
			mw(next).ServeHTTP(rec, req)
			if tt.wantStatus == 403 {
				checkProblem(t, rec, 403, "/api/v1/inference")
			} else if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if called != tt.wantNext {
				t.Errorf("next called = %v, want %v", called, tt.wantNext)
			}
			h := rec.Result().Header
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q, want Origin in it", h.Values("Vary"))
			}
			if tt.wantACAO == "" {
				for k := range h {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("CORS header %s: %q sent to a refused origin", k, h.Get(k))
					}
				}
				return
			}
			if got := h.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != tt.wantACAO {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantACAO)
			}
			if got := h.Get("Access-Control-Allow-Credentials"); got != "true" {
				t.Errorf("Access-Control-Allow-Credentials = %q", got)
			}
			if tt.acrm == "" {
				return
			}
			for k, v := range map[string]string{
				"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
				"Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-Id",
				"Access-Control-Max-Age":       "86400",
			} {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
