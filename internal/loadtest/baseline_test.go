package loadtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestBaselineHandlerEchoes(t *testing.T) {
	h := BaselineHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(sampleBody)))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var in, out any
	if err := json.Unmarshal([]byte(sampleBody), &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response %q: %v", rec.Body, err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("echo differs:\n got %s\nwant %s", rec.Body, sampleBody)
	}
}

func TestBaselineHandlerRejects(t *testing.T) {
	h := BaselineHandler()
	for _, tc := range []struct {
		name, method, body string
		want               int
	}{
		{"invalid JSON", http.MethodPost, `{"query":`, http.StatusBadRequest},
		{"not JSON", http.MethodPost, `hello`, http.StatusBadRequest},
		{"empty", http.MethodPost, ``, http.StatusBadRequest},
		{"two values", http.MethodPost, `{} {}`, http.StatusBadRequest},
		{"too large", http.MethodPost, `"` + strings.Repeat("x", maxBaselineBody) + `"`, http.StatusRequestEntityTooLarge},
		{"GET", http.MethodGet, ``, http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body)))
		var e struct{ Error string }
		if rec.Code != tc.want || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Errorf("%s: status %d body %q, want %d with a JSON error", tc.name, rec.Code, rec.Body, tc.want)
		}
	}
}

func BenchmarkBaselineHandler(b *testing.B) {
	h := BaselineHandler()
	body := []byte(sampleBody)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body))))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
