package gateway

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		inferenceBody, `{}`, `[]`, `0`, `-1.5e+3`, `"\u00e9\ud83d\ude00"`, `{"a":1,"a":2}`,
		`{"a":1,"A":2}`, `{"\ud800":1,"\udc00":2}`, `[[[[[[]]]]]]`, `{"a":[1,2,{"b":null}]}`,
		"\"\xff\"", `[1,]`, `{"a" 1}`, `tru`, ` `, `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"K3":0}`,
	} {
		f.Add([]byte(s), uint8(32), uint16(10000))
		f.Add([]byte(s), uint8(2), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, depth uint8, elems uint16) {
		maxDepth, maxElems := int(depth%64)+1, int(elems)+1
		err := CheckJSON(data, maxDepth, maxElems)
		if err == nil && !json.Valid(data) {
			t.Fatalf("CheckJSON accepted %q, json.Valid refuses", data)
		}
		if err != nil {
			var je *JSONError
			if !errors.As(err, &je) || je.Offset < 0 || je.Offset > len(data) {
				t.Fatalf("error %v: not a *JSONError with an offset in range", err)
			}
		}
		// Without limits, only a duplicate key may make a valid UTF-8 document fail.
		if json.Valid(data) && utf8.Valid(data) {
			if err := CheckJSON(data, 0, 0); err != nil && !errors.Is(err, ErrJSONDuplicateKey) {
				t.Fatalf("valid %q refused: %v", data, err)
			}
		}
		// One level too deep is always refused, whatever is inside.
		wrapped := strings.Repeat("[", maxDepth+1) + string(data) + strings.Repeat("]", maxDepth+1)
		if err := CheckJSON([]byte(wrapped), maxDepth, maxElems); !errors.Is(err, ErrJSONDepth) {
			t.Fatalf("depth %d+1 around %q: %v, want ErrJSONDepth", maxDepth, data, err)
		}
	})
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.2:5000", "198.51.100.1")
	f.Add("10.0.0.2:5000", "1.1.1.1, 198.51.100.1, 10.0.0.9")
	f.Add("[fd00::1]:443", "[2001:db8::7]:80, fd00::2")
	f.Add("203.0.113.7:1", "10.0.0.1")
	f.Add("[::ffff:10.0.0.2]:5000", "::ffff:198.51.100.1,,x")
	f.Add("@", "")
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := ClientIP(r, trusted)
		peer := parseHostAddr(remote)
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("ClientIP = %v: zoned or mapped", got)
		}
		// The model: from the right, take entries while they are good and
		// trusted; the first good untrusted one is the client.
		want := peer
		if contains(trusted, peer) {
			entries := strings.Split(xff, ",")
			for i := len(entries) - 1; i >= 0; i-- {
				a := parseHostAddr(strings.TrimSpace(entries[i]))
				if !a.IsValid() {
					break
				}
				want = a
				if !contains(trusted, a) {
					break
				}
			}
		}
		if got != want {
			t.Fatalf("ClientIP(%q, xff %q) = %v, want %v", remote, xff, got, want)
		}
		if !contains(trusted, peer) && got != peer {
			t.Fatalf("untrusted peer %v: ClientIP = %v", peer, got)
		}
	})
}
