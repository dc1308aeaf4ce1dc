package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzJSONBodies sends arbitrary bodies to every POST route: the answer is
// a 2xx or a 4xx problem, never a panic or a 5xx.
func FuzzJSONBodies(f *testing.F) {
	for _, s := range []string{
		`{"query": "chest pain", "vitals": {"sbp": 88}}`,
		`{"query": "x", "vitals": {"spo2": 1e400}}`,
		`{"text": "denies fever", "targets": ["fever"]}`,
		`{"medications": ["warfarin", "\u0000"]}`,
		`{"inputs": [{"name": "query", "shape": [1], "datatype": "BYTES", "data": ["{\"query\": \"a\"}"]}]}`,
		`{"inputs": [{"name": "features", "shape": [1, -3], "datatype": "FP32", "data": []}]}`,
		`[]`, `null`, `{"query": null}`,
	} {
		f.Add(s)
	}
	deps := loadDeps(f)
	h := NewServer(deps)
	routes := []string{"/api/v1/inference", "/api/v1/clinical", "/api/v1/analyze", "/api/v1/interactions", "/v2/models/triage/infer"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, route := range routes {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, route, strings.NewReader(body)))
			if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s %q: status %d: %s", route, body, rec.Code, rec.Body.String())
			}
		}
	})
}
