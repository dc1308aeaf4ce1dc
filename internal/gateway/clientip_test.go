package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string // "" means the zero Addr
	}{
		{"direct", "203.0.113.7:5000", nil, trusted, "203.0.113.7"},
		{"direct, forged header ignored", "203.0.113.7:5000", []string{"10.1.1.1"}, trusted, "203.0.113.7"},
		{"no trusted proxies: header ignored", "10.0.0.2:5000", []string{"198.51.100.1"}, nil, "10.0.0.2"},
		{"one proxy", "10.0.0.2:5000", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"client forged leftmost", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1"}, trusted, "198.51.100.1"},
		{"two proxies", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1, 10.0.0.9"}, trusted, "198.51.100.1"},
		{"header split over lines", "10.0.0.2:5000", []string{"1.1.1.1, 198.51.100.1", "10.0.0.9"}, trusted, "198.51.100.1"},
		{"all trusted: leftmost", "10.0.0.2:5000", []string{"10.0.0.8, 10.0.0.9"}, trusted, "10.0.0.8"},
		{"trusted peer, no header", "10.0.0.2:5000", nil, trusted, "10.0.0.2"},
		{"malformed stops the walk", "10.0.0.2:5000", []string{"198.51.100.1, garbage, 10.0.0.9"}, trusted, "10.0.0.9"},
		{"malformed last entry", "10.0.0.2:5000", []string{"198.51.100.1, unknown"}, trusted, "10.0.0.2"},
		{"empty entry", "10.0.0.2:5000", []string{"198.51.100.1,,10.0.0.9"}, trusted, "10.0.0.9"},
		{"empty header", "10.0.0.2:5000", []string{""}, trusted, "10.0.0.2"},
		{"entry with port", "10.0.0.2:5000", []string{"198.51.100.1:4711"}, trusted, "198.51.100.1"},
		{"ipv6 entry", "[fd00::1]:443", []string{"2001:db8::7"}, trusted, "2001:db8::7"},
		{"bracketed ipv6 entry", "[fd00::1]:443", []string{"[2001:db8::7]"}, trusted, "2001:db8::7"},
		{"bracketed ipv6 with port", "[fd00::1]:443", []string{"[2001:db8::7]:80"}, trusted, "2001:db8::7"},
		{"mapped peer", "[::ffff:10.0.0.2]:5000", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"mapped entry unmapped", "10.0.0.2:5000", []string{"::ffff:198.51.100.1"}, trusted, "198.51.100.1"},
		{"zone dropped", "[fe80::1%eth0]:5000", nil, trusted, "fe80::1"},
		{"remote without port", "203.0.113.7", nil, trusted, "203.0.113.7"},
		{"unix socket", "@", nil, trusted, ""},
		{"empty remote", "", nil, trusted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := ClientIP(r, tt.trusted)
			want := netip.Addr{}
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Errorf("ClientIP = %v, want %v", got, want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"10.0.0.0/8,::1", []string{"10.0.0.0/8", "::1/128"}, false},
		{" 192.168.1.7 , fc00::/7 ,", []string{"192.168.1.7/32", "fc00::/7"}, false},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, false},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}, false},
		{"10.0.0.0/33", nil, true},
		{"10.0.0", nil, true},
		{"fe80::1%eth0", nil, true},
		{"example.com", nil, true},
		{"10.0.0.0/8,nope", nil, true},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParsePrefixes(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if !equalStrings(gs, tt.want) {
			t.Errorf("ParsePrefixes(%q) = %q, want %q", tt.in, gs, tt.want)
		}
	}
}

func TestRealIP(t *testing.T) {
	var got netip.Addr
	var found bool
	h := RealIP([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, found = ClientIPFrom(r.Context())
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.2:1234"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !found || got != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("ClientIPFrom = %v, %v; want 198.51.100.1, true", got, found)
	}
	if _, ok := ClientIPFrom(context.Background()); ok {
		t.Error("ClientIPFrom(empty context) reported an address")
	}
}

func TestAllowNetworks(t *testing.T) {
	const token = "s3cret-metrics-token"
	nets := DefaultMetricsNetworks()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		token   string
		remote  string
		headers map[string]string
		realIP  bool // put RealIP(trusted) in front
		want    int
	}{
		{"loopback v4", "", "127.0.0.1:9", nil, false, 200},
		{"loopback v6", "", "[::1]:9", nil, false, 200},
		{"private 10/8", "", "10.2.3.4:9", nil, false, 200},
		{"private 172.16/12", "", "172.31.255.1:9", nil, false, 200},
		{"just outside 172.16/12", "", "172.32.0.1:9", nil, false, 403},
		{"private 192.168/16", "", "192.168.0.10:9", nil, false, 200},
		{"ula", "", "[fd12::1]:9", nil, false, 200},
		{"mapped private", "", "[::ffff:192.168.0.10]:9", nil, false, 200},
		{"public", "", "203.0.113.7:9", nil, false, 403},
		{"public, forged header", "", "203.0.113.7:9", map[string]string{"X-Forwarded-For": "127.0.0.1"}, false, 403},
		{"via proxy without RealIP refused", "", "10.0.0.2:9", map[string]string{"X-Forwarded-For": "203.0.113.7"}, false, 403},
		{"via proxy without RealIP, Forwarded", "", "10.0.0.2:9", map[string]string{"Forwarded": "for=203.0.113.7"}, false, 403},
		{"via proxy with RealIP, public client", "", "10.0.0.2:9", map[string]string{"X-Forwarded-For": "203.0.113.7"}, true, 403},
		{"via proxy with RealIP, private client", "", "10.0.0.2:9", map[string]string{"X-Forwarded-For": "192.168.1.5"}, true, 200},
		{"unix socket", "", "@", nil, false, 403},
		{"public with token", token, "203.0.113.7:9", map[string]string{"Authorization": "Bearer " + token}, false, 200},
		{"scheme case-insensitive", token, "203.0.113.7:9", map[string]string{"Authorization": "bearer " + token}, false, 200},
		{"wrong token", token, "203.0.113.7:9", map[string]string{"Authorization": "Bearer nope"}, false, 403},
		{"token prefix", token, "203.0.113.7:9", map[string]string{"Authorization": "Bearer " + token[:5]}, false, 403},
		{"token, wrong scheme", token, "203.0.113.7:9", map[string]string{"Authorization": "Basic " + token}, false, 403},
		{"empty bearer, no token configured", "", "203.0.113.7:9", map[string]string{"Authorization": "Bearer "}, false, 403},
		{"private without token still fine", token, "10.2.3.4:9", nil, false, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h http.Handler = AllowNetworks(nets, tt.token, ok)
			if tt.realIP {
				h = RealIP(trusted)(h)
			}
			r := httptest.NewRequest("GET", "/metrics", nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if tt.want == 403 {
				checkProblem(t, rec, 403, "/metrics")
			} else if rec.Code != tt.want {
				t.Errorf("status = %d, want %d", rec.Code, tt.want)
			}
		})
	}
}
