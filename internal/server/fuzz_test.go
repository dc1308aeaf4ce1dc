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

// FuzzRecordRoutes sends arbitrary bodies to the history, audit search,
// feedback and mode routes, and arbitrary query strings to the audit,
// alert, incident and monitoring reads, on a server
// with a real store and audit trail: a 2xx or a 4xx, never a 5xx or a panic.
func FuzzRecordRoutes(f *testing.F) {
	for _, s := range []string{
		`{"patient_id": "MRN-1", "limit": 5}`, `{"patient_id": ""}`, `{"patient_id": "x", "limit": -1}`,
		`{"patient_id": "x", "from": "2026-01-01T00:00:00Z", "to": "yesterday"}`, `{"after": 9223372036854775807, "limit": 1000}`,
		`action=inference&limit=2`, `from=2026-13-01T00:00:00Z`, `patient=k1:abc&after=-1`, `%zz`,
		`{"request_id": "r1", "true_acuity": 2, "interaction_confirmed": true}`, `{"enabled": false, "reason": "reviewed"}`,
		`state=firing&limit=1000&since=2026-01-01T00:00:00Z`, `limit=0`,
	} {
		f.Add(s)
	}
	deps := withRecords(f, loadDeps(f))
	h := NewServer(deps)
	f.Fuzz(func(t *testing.T, s string) {
		check := func(req *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s %q: status %d: %s", req.Method, req.URL.Path, s, rec.Code, rec.Body.String())
			}
		}
		for _, route := range []string{"/api/v1/patients/history", "/api/v1/audit/search", "/api/v1/feedback"} {
			check(httptest.NewRequest(http.MethodPost, route, strings.NewReader(s)))
		}
		check(httptest.NewRequest(http.MethodPut, "/api/v1/modes/scale_up", strings.NewReader(s)))
		check(httptest.NewRequest(http.MethodPost, "/api/v1/incidents/1/close", strings.NewReader(s)))
		for _, route := range []string{"/api/v1/audit", "/api/v1/alerts", "/api/v1/incidents", "/api/v1/monitoring"} {
			req := httptest.NewRequest(http.MethodGet, route, nil)
			req.URL.RawQuery = s
			check(req)
		}
	})
}
