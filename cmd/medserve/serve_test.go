package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// startServer runs the real program's serve, with embedded defaults, on a
// loopback port and waits for readiness.
func startServer(t *testing.T) (base string, stop func() error) {
	t.Helper()
	base, _, stop = startServerWith(t, serveConfig{dataDir: t.TempDir(), cacheMB: 16}, testEnv(nil))
	return base, stop
}

func post(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestServeEndToEnd(t *testing.T) {
	base, stop := startServer(t)

	// The SPEC section 4 example request.
	code, _, body := post(t, base+"/api/v1/inference", `{"query": "crushing chest pain radiating to left arm, sweaty",
 "patient": {"id": "MRN-0042", "age": 58, "sex": "male"},
 "vitals": {"sbp": 88, "dbp": 54, "hr": 118, "rr": 24, "temp_c": 37.1, "spo2": 93, "gcs": 15, "pain": 8, "avpu": "alert"},
 "context": {"arrival_mode": "ambulance", "injury": false, "medical_domain": "emergency", "nurse_acuity": 3},
 "medications": ["warfarin", "aspirin"], "options": {"explain": true, "use_cache": true}}`)
	if code != http.StatusOK {
		t.Fatalf("inference: %d %s", code, body)
	}
	var r map[string]any
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"request_id", "acuity", "urgency", "probabilities", "safety_floor", "findings", "vitals", "scores", "domain",
		"differential", "interactions", "review_required", "review_reasons", "model", "cache", "timing_ms"} {
		if _, ok := r[k]; !ok {
			t.Errorf("response lacks %q", k)
		}
	}
	if r["acuity"].(float64) > 2 {
		t.Errorf("SBP 88 with chest pain answered acuity %v", r["acuity"])
	}
	if strings.Contains(string(body), "MRN-0042") {
		t.Error("the patient identifier appears in the response")
	}

	// The same clinical content again (another patient id): a cache hit.
	code, _, body2 := post(t, base+"/api/v1/inference", `{"query": "crushing chest pain radiating to left arm, sweaty",
 "patient": {"id": "MRN-0043", "age": 58, "sex": "male"},
 "vitals": {"sbp": 88, "dbp": 54, "hr": 118, "rr": 24, "temp_c": 37.1, "spo2": 93, "gcs": 15, "pain": 8, "avpu": "alert"},
 "context": {"arrival_mode": "ambulance", "injury": false, "medical_domain": "emergency", "nurse_acuity": 3},
 "medications": ["warfarin", "aspirin"], "options": {"explain": true, "use_cache": true}}`)
	if code != http.StatusOK || !strings.Contains(string(body2), `"cache":{"hit":true,"level":"l1"}`) {
		t.Errorf("second identical query: %d, cache %s", code, body2[bytes.Index(body2, []byte(`"cache"`)):][:40])
	}
	if !strings.Contains(string(body), `"cache":{"hit":false,"level":""}`) {
		t.Error("first query must be a miss")
	}

	// Bad input: problem+json naming the fields.
	code, hdr, body := post(t, base+"/api/v1/inference", `{"query": "cough", "vitals": {"spo2": 140, "hr": -5}}`)
	if code != http.StatusBadRequest || hdr.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(body), "vitals.spo2") || !strings.Contains(string(body), "vitals.hr") {
		t.Errorf("impossible vitals: %d %s %s", code, hdr.Get("Content-Type"), body)
	}
	code, _, body = post(t, base+"/api/v1/inference", `{"query": "cough", "bogus": true}`)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "bogus") {
		t.Errorf("unknown field: %d %s", code, body)
	}
	code, _, _ = post(t, base+"/api/v1/inference", `{"query": "`+strings.Repeat("a", 2<<20)+`"}`)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d", code)
	}

	// The other v1 routes.
	code, _, body = post(t, base+"/api/v1/analyze", `{"text": "denies chest pain", "targets": ["chest pain"]}`)
	if code != http.StatusOK || !strings.Contains(string(body), `"negated":true`) {
		t.Errorf("analyze: %d %s", code, body)
	}
	code, _, body = post(t, base+"/api/v1/interactions", `{"medications": ["Coumadin", "ibuprofen", "xyz"]}`)
	if code != http.StatusOK || !strings.Contains(string(body), `"unknown":["xyz"]`) {
		t.Errorf("interactions: %d %s", code, body)
	}

	// Open Inference Protocol.
	code, _, body = post(t, base+"/v2/models/triage/infer", `{"inputs": [{"name": "query", "shape": [2], "datatype": "BYTES",
		"data": ["{\"query\": \"abd pain\"}", "{\"query\": \"unresponsive\", \"vitals\": {\"avpu\": \"unresponsive\"}}"]}]}`)
	if code != http.StatusOK {
		t.Fatalf("v2 infer: %d %s", code, body)
	}
	var inf struct {
		ModelName string `json:"model_name"`
		Outputs   []struct {
			Name  string          `json:"name"`
			Shape []int           `json:"shape"`
			Data  json.RawMessage `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body, &inf); err != nil || inf.ModelName != "triage" || len(inf.Outputs) != 2 ||
		inf.Outputs[1].Name != "probabilities" || len(inf.Outputs[1].Shape) != 2 || inf.Outputs[1].Shape[1] != 5 {
		t.Errorf("v2 infer response: %v %s", err, body)
	}
	for _, path := range []string{"/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/triage", "/v2/models/triage/ready", "/v2/models/triage/versions/1", "/health/live", "/api/v1/models", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if path == "/metrics" && (!strings.Contains(string(b), "medserve_http_request_duration_seconds") || strings.Contains(string(b), "MRN-0042")) {
			t.Error("metrics lack the request histogram or leak an identifier")
		}
	}
	if resp, err := http.Get(base + "/v2/models/nope"); err == nil {
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown model: %d", resp.StatusCode)
		}
		resp.Body.Close()
	}

	if err := stop(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
