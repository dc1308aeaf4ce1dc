package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func BenchmarkCheckJSON(b *testing.B) {
	body := []byte(inferenceBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckJSON(body, 32, 10000); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONValid is the baseline: encoding/json's own syntax check.
func BenchmarkJSONValid(b *testing.B) {
	body := []byte(inferenceBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal("invalid")
		}
	}
}

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the middleware, not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

func BenchmarkGzip(b *testing.B) {
	var resp strings.Builder
	for resp.Len() < 4096 {
		resp.WriteString(`{"text":"chest pain","type":"SYMPTOM","code":"R07.4","negated":false,"span":[9,19]},`)
	}
	body := []byte(resp.String()[:4096])
	for _, bc := range []struct {
		name   string
		accept string
	}{{"gzip", "gzip, br"}, {"identity", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			h := Gzip(1024)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			}))
			req := httptest.NewRequest("GET", "/api/v1/inference", nil)
			if bc.accept != "" {
				req.Header.Set("Accept-Encoding", bc.accept)
			}
			w := &discard{h: make(http.Header)}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}
