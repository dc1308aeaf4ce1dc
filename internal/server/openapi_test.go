package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"medserve"
	"medserve/internal/alert"
	"medserve/internal/auth"
	"medserve/internal/clinical"
	"medserve/internal/kb"
	"medserve/internal/monitor"
	"medserve/internal/phi"
	"medserve/internal/pipeline"
	"medserve/internal/ratelimit"
	"medserve/internal/record"
	"medserve/internal/registry"
	"medserve/internal/registry/registrytest"
	"medserve/internal/spool"
	"medserve/internal/store"
	"medserve/internal/store/sqlite"
	"medserve/internal/text"
	"medserve/internal/triage"
)

// loadOpenAPI parses and validates the embedded document. kin-openapi
// recognises "openapi: 3.1.x" by itself: Validate then applies the 3.1
// rules, and openapi3filter validates values with its JSON Schema 2020-12
// validator (EnableJSONSchema2020) for every schema that uses a 2020-12
// keyword (const, contentSchema …), the OpenAPI 3.0 validator otherwise.
func loadOpenAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPIDoc)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return doc, router
}

func TestOpenAPIDocument(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Info == nil || doc.Info.Title != "medserve" || doc.Info.Version == "" {
		t.Errorf("info = %+v", doc.Info)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers = %v, want one, url /", doc.Servers)
	}
	for _, name := range []string{"InferenceRequest", "InferenceResponse", "Finding", "Vitals", "Scores", "SafetyFloor",
		"Candidate", "InteractionAlert", "InteractionReport", "Analysis", "Problem", "V2ServerMetadata", "V2ModelMetadata",
		"V2InferRequest", "V2InferResponse", "Live", "Ready", "ModelList"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("components.schemas.%s missing", name)
		}
	}
}

// routePattern matches the handle("METHOD /path", …) lines of routes.go.
var routePattern = regexp.MustCompile(`(?:api|public)\("([A-Z]+) (/[^"]*)"`)

// TestOpenAPICoversRoutes checks that routes.go and the document name the
// same operations, and that every {param} of a path is declared.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, m := range routePattern.FindAllStringSubmatch(string(src), -1) {
		routes[m[1]+" "+m[2]] = true
	}
	if len(routes) < 10 {
		t.Fatalf("found only %d routes in routes.go: has its form changed?", len(routes))
	}
	documented := map[string]bool{}
	paramName := regexp.MustCompile(`\{([^{}]+)\}`)
	for path, item := range doc.Paths.Map() {
		var want []string
		for _, m := range paramName.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		sort.Strings(want)
		for method, op := range item.Operations() {
			documented[method+" "+path] = true
			var got []string
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				if p.Value != nil && p.Value.In == openapi3.ParameterInPath {
					got = append(got, p.Value.Name)
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: path parameters %v, want %v", method, path, got, want)
			}
		}
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %s (routes.go) is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !routes[d] {
			t.Errorf("openapi.json documents %s, which routes.go does not serve", d)
		}
	}
}

// TestOpenAPIConstraints ties the schema constraints to the code's limits
// and enumerations, so that neither drifts alone.
func TestOpenAPIConstraints(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	schema := func(name string) *openapi3.Schema { return doc.Components.Schemas[name].Value }
	prop := func(s *openapi3.Schema, name string) *openapi3.Schema {
		t.Helper()
		p := s.Properties[name]
		if p == nil || p.Value == nil {
			t.Fatalf("property %s missing", name)
		}
		return p.Value
	}
	for _, vs := range []string{"Vitals", "VitalsInput"} {
		for _, f := range []string{"sbp", "dbp", "hr", "rr", "temp_c", "spo2", "gcs", "pain"} {
			p := prop(schema(vs), f)
			lo, hi := clinical.VitalLimits(f)
			if p.Min == nil || p.Max == nil || *p.Min != lo || *p.Max != hi {
				t.Errorf("%s.%s: limits %v–%v, want %g–%g", vs, f, p.Min, p.Max, lo, hi)
			}
		}
	}
	enum := func(s *openapi3.Schema, want ...string) {
		t.Helper()
		var got []string
		for _, v := range s.Enum {
			got = append(got, fmt.Sprint(v))
		}
		if !slices.Equal(got, want) {
			t.Errorf("enum %v, want %v", got, want)
		}
	}
	enum(prop(schema("Patient"), "sex"), clinical.SexFemale, clinical.SexMale, clinical.SexOther, clinical.SexUnknown)
	enum(prop(schema("VitalsInput"), "avpu"), clinical.AVPUAlert, clinical.AVPUVerbal, clinical.AVPUPain, clinical.AVPUUnresponsive)
	enum(prop(schema("Context"), "arrival_mode"), clinical.ArrivalWalkIn, clinical.ArrivalAmbulance, clinical.ArrivalPrivateVehicle, clinical.ArrivalOther)
	enum(schema("Urgency"), string(clinical.Critical), string(clinical.High), string(clinical.Medium), string(clinical.Low))
	enum(schema("Domain"), string(clinical.Cardiology), string(clinical.Neurology), string(clinical.Oncology), string(clinical.Emergency), string(clinical.General))
	if na := prop(schema("Context"), "nurse_acuity"); na.Min == nil || na.Max == nil || *na.Min != 1 || *na.Max != 5 {
		t.Errorf("nurse_acuity: limits %v–%v, want 1–5", na.Min, na.Max)
	}
	for _, name := range []string{"InferenceRequest", "Patient", "VitalsInput", "Context", "Options", "AnalyzeRequest", "InteractionsRequest",
		"V2InferRequest", "V2QueryTensor", "V2FeaturesTensor"} {
		if ap := schema(name).AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("%s: request schemas must set additionalProperties: false (the server rejects unknown fields)", name)
		}
	}
}

var (
	depsOnce sync.Once
	depsErr  error
	testDeps Deps
)

// loadDeps builds the real engine, knowledge base and bundled model, as
// cmd/medserve does.
func loadDeps(t testing.TB) Deps {
	t.Helper()
	depsOnce.Do(func() {
		data, err := fs.Sub(medserve.Data, "data")
		if err != nil {
			depsErr = err
			return
		}
		eng, err := text.Load(data)
		if err != nil {
			depsErr = err
			return
		}
		raw, err := fs.ReadFile(data, "triage/safety-floor.tsv")
		if err != nil {
			depsErr = err
			return
		}
		rules, err := triage.ParseRules(bytes.NewReader(raw), "floor")
		if err != nil {
			depsErr = err
			return
		}
		feat := triage.NewFeaturizer(eng, rules)
		testFeat = feat
		k, err := kb.Load(data)
		if err != nil {
			depsErr = err
			return
		}
		dir, _ := filepath.Abs("../../models/triage/1")
		art, err := triage.LoadArtifact(dir, feat.Spec())
		if err != nil {
			depsErr = err
			return
		}
		as := triage.NewAssessor(feat, art)
		pipe := pipeline.New(as, k, pipeline.DirectPredictor{Model: art.Model}, nil, nil, pipeline.Config{})
		testDeps = Deps{Pipeline: pipe, Text: eng, KB: k, Triage: art, Features: feat.Spec(), Metrics: NewMetrics(), Version: "test"}
	})
	if depsErr != nil {
		t.Fatal(depsErr)
	}
	d := testDeps
	d.Ready = new(atomic.Bool)
	d.Ready.Store(true)
	return d
}

// apiCase is one real request. docValid says whether the document accepts
// the request; it is true for a request the server refuses for a reason the
// document cannot express (an unknown model name, a body over 1 MiB, a
// feature width the model metadata names).
type apiCase struct {
	name     string
	method   string
	path     string
	body     []byte
	status   int
	docValid bool
	token    string // bearer token, if any
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestOpenAPIRealResponses sends real requests to an in-process server and
// validates every request and response against the document.
func TestOpenAPIRealResponses(t *testing.T) {
	doc, router := loadOpenAPI(t)
	deps := withRecords(t, loadDeps(t))
	s := &Server{Deps: deps, metrics: deps.Metrics}
	mux := http.NewServeMux()
	mux.Handle("GET /openapi.json", s.handleOpenAPI())
	mux.Handle("/", NewServer(deps))
	ts := httptest.NewServer(mux)
	defer ts.Close()
	// A server whose spool and store are closed: nothing can be recorded
	// or read, which every audited route must answer with a 503.
	brokenDeps := withRecords(t, loadDeps(t))
	brokenDeps.Metrics = NewMetrics()
	brokenDeps.Store.Close()
	brokenDeps.Recorder.(*record.Recorder).CloseSpoolForTest()
	broken := httptest.NewServer(NewServer(brokenDeps))
	defer broken.Close()

	specExample := map[string]any{
		"query":       "crushing chest pain radiating to left arm, sweaty",
		"patient":     map[string]any{"id": "MRN-0042", "age": 58, "sex": "male"},
		"vitals":      map[string]any{"sbp": 88, "dbp": 54, "hr": 118, "rr": 24, "temp_c": 37.1, "spo2": 93, "gcs": 15, "pain": 8, "avpu": "alert"},
		"context":     map[string]any{"arrival_mode": "ambulance", "injury": false, "medical_domain": "emergency", "nurse_acuity": 3},
		"medications": []string{"warfarin", "aspirin"},
		"options":     map[string]any{"explain": true, "use_cache": true},
	}
	secondReader := map[string]any{
		"query":       "fever and confusion, no cough, history of asthma, takes 20 mg simvastatin daily, mother had diabetes",
		"patient":     map[string]any{"age": 81, "sex": "female"},
		"vitals":      map[string]any{"spo2": 88, "rr": 30, "temp_c": 39.2, "avpu": "verbal"},
		"context":     map[string]any{"arrival_mode": "walk-in", "nurse_acuity": 5},
		"medications": []string{"simvastatin", "clarithromycin", "zzqx-not-a-drug", "Zocor"},
	}
	oversized := []byte(`{"query":"` + strings.Repeat("a", maxBody) + `"}`)
	dim := deps.Features.Dim()
	zeros := func(n int) []float32 { return make([]float32, n) }
	nonZero := zeros(2 * dim)
	nonZero[dim+3], nonZero[dim+dim-1] = 1, 0.5
	queryTensor := func(reqs ...any) map[string]any {
		var data []string
		for _, r := range reqs {
			data = append(data, string(jsonBody(r)))
		}
		return map[string]any{"name": "query", "shape": []int{len(data)}, "datatype": "BYTES", "data": data}
	}
	featureTensor := func(n int, data []float32) map[string]any {
		return map[string]any{"name": "features", "shape": []int{n, dim}, "datatype": "FP32", "data": data}
	}
	infer := func(inputs ...any) []byte { return jsonBody(map[string]any{"id": "r-1", "inputs": inputs}) }

	// An answered request to give feedback on.
	resp, err := http.Post(ts.URL+"/api/v1/inference", "application/json", strings.NewReader(`{"query":"headache"}`))
	if err != nil {
		t.Fatal(err)
	}
	var answered struct {
		RequestID string `json:"request_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answered); err != nil || answered.RequestID == "" {
		t.Fatalf("inference for the feedback case: %v", err)
	}
	resp.Body.Close()
	feedback := `{"request_id":"` + answered.RequestID + `","true_acuity":2,"confirmed_diagnosis":"R51","disposition":"discharged","treatment_effectiveness":0.8,"comment":"resolved with rest"}`

	// An incident to read.
	in, err := deps.Store.SaveIncident(context.Background(), store.Incident{Rule: "SensitivityDegraded", Title: "sensitivity below 0.95",
		Severity: "critical", Status: "open", Report: `{"actions":[{"action":"rollback","ok":true}]}`, OpenedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	incident := fmt.Sprintf("/api/v1/incidents/%d", in.ID)

	cases := []apiCase{
		{"monitoring", "GET", "/api/v1/monitoring", nil, 200, true, ""},
		{"alerts", "GET", "/api/v1/alerts", nil, 200, true, ""},
		{"alerts filtered", "GET", "/api/v1/alerts?state=active&limit=5&since=2020-01-01T00:00:00Z", nil, 200, true, ""},
		{"alerts bad state", "GET", "/api/v1/alerts?state=burning", nil, 400, false, ""},
		{"incidents", "GET", "/api/v1/incidents?limit=10", nil, 200, true, ""},
		{"incidents bad limit", "GET", "/api/v1/incidents?limit=0", nil, 400, false, ""},
		{"incident", "GET", incident, nil, 200, true, ""},
		{"incident unknown", "GET", "/api/v1/incidents/999999", nil, 404, true, ""},
		{"incident bad id", "GET", "/api/v1/incidents/abc", nil, 400, true, ""},
		{"close incident bad id", "POST", "/api/v1/incidents/abc/close", []byte(`{"reason":"x"}`), 400, true, ""},
		{"close incident no reason", "POST", incident + "/close", []byte(`{"reason":""}`), 400, false, ""},
		{"close incident unknown", "POST", "/api/v1/incidents/999999/close", []byte(`{"reason":"x"}`), 404, true, ""},
		{"close incident too large", "POST", incident + "/close", []byte(`{"reason":"` + strings.Repeat("a", maxBody) + `"}`), 413, false, ""},
		{"close incident", "POST", incident + "/close", []byte(`{"reason":"rolled back; clinical lead reviewed"}`), 200, true, ""},
		{"close incident again", "POST", incident + "/close", []byte(`{"reason":"again"}`), 409, true, ""},
		{"modes", "GET", "/api/v1/modes", nil, 200, true, ""},
		{"set mode", "PUT", "/api/v1/modes/caching", []byte(`{"enabled":true,"reason":"drill"}`), 200, true, ""},
		{"set mode unknown", "PUT", "/api/v1/modes/turbo", []byte(`{"enabled":true,"reason":"drill"}`), 404, true, ""},
		{"set mode no reason", "PUT", "/api/v1/modes/caching", []byte(`{"enabled":true}`), 400, false, ""},
		{"set mode too large", "PUT", "/api/v1/modes/caching", []byte(`{"enabled":true,"reason":"` + strings.Repeat("a", maxBody) + `"}`), 413, false, ""},
		{"feedback", "POST", "/api/v1/feedback", []byte(feedback), 200, true, ""},
		{"feedback again (replaces)", "POST", "/api/v1/feedback", []byte(feedback), 200, true, ""},
		{"feedback unknown request", "POST", "/api/v1/feedback", []byte(`{"request_id":"nope","true_acuity":2}`), 404, true, ""},
		{"feedback bad acuity", "POST", "/api/v1/feedback", []byte(`{"request_id":"x","true_acuity":7,"disposition":"home"}`), 400, false, ""},
		{"feedback too large", "POST", "/api/v1/feedback", []byte(`{"request_id":"x","true_acuity":2,"comment":"` + strings.Repeat("a", maxBody) + `"}`), 413, false, ""},
		{"inference spec example", "POST", "/api/v1/inference", jsonBody(specExample), 200, true, ""},
		{"inference minimal", "POST", "/api/v1/inference", []byte(`{"query":"headache"}`), 200, true, ""},
		{"inference second reader", "POST", "/api/v1/inference", jsonBody(secondReader), 200, true, ""},
		{"inference unknown field", "POST", "/api/v1/inference", []byte(`{"query":"headache","colour":"red"}`), 400, false, ""},
		{"inference nested unknown field", "POST", "/api/v1/inference", []byte(`{"query":"headache","vitals":{"bp":120}}`), 400, false, ""},
		{"inference spo2 out of range", "POST", "/api/v1/inference", []byte(`{"query":"headache","vitals":{"spo2":150}}`), 400, false, ""},
		{"inference temp out of range", "POST", "/api/v1/inference", []byte(`{"query":"headache","vitals":{"temp_c":50}}`), 400, false, ""},
		{"inference bad enums", "POST", "/api/v1/inference", []byte(`{"query":"headache","patient":{"sex":"x"},"vitals":{"avpu":"asleep"},"context":{"arrival_mode":"horse"}}`), 400, false, ""},
		{"inference nurse acuity 6", "POST", "/api/v1/inference", []byte(`{"query":"headache","context":{"nurse_acuity":6}}`), 400, false, ""},
		{"inference blank query", "POST", "/api/v1/inference", []byte(`{"query":"   "}`), 400, false, ""},
		{"inference missing query", "POST", "/api/v1/inference", []byte(`{}`), 400, false, ""},
		{"inference wrong type", "POST", "/api/v1/inference", []byte(`{"query":5}`), 400, false, ""},
		{"inference malformed", "POST", "/api/v1/inference", []byte(`{"query":`), 400, false, ""},
		// Not JSON but two JSON values: kin-openapi decodes only the first.
		{"inference two values", "POST", "/api/v1/inference", []byte(`{"query":"a"}{"query":"b"}`), 400, true, ""},
		{"inference too large", "POST", "/api/v1/inference", oversized, 413, true, ""},
		{"clinical", "POST", "/api/v1/clinical", jsonBody(specExample), 200, true, ""},
		{"clinical invalid", "POST", "/api/v1/clinical", []byte(`{"query":"headache","patient":{"age":200}}`), 400, false, ""},
		{"clinical too large", "POST", "/api/v1/clinical", oversized, 413, true, ""},
		{"analyze", "POST", "/api/v1/analyze", jsonBody(map[string]any{"text": "58 yo man, chest pain for 2 days, no fever, BP 88/54, HR 250 bpm, temp 60 C, took aspirin 300 mg", "targets": []string{"chest pain", "fever"}}), 200, true, ""},
		{"analyze empty", "POST", "/api/v1/analyze", []byte(`{}`), 200, true, ""},
		{"analyze unknown field", "POST", "/api/v1/analyze", []byte(`{"text":"x","lang":"en"}`), 400, false, ""},
		{"analyze too many targets", "POST", "/api/v1/analyze", jsonBody(map[string]any{"text": "x", "targets": make([]string, 65)}), 400, false, ""},
		{"analyze too large", "POST", "/api/v1/analyze", []byte(`{"text":"` + strings.Repeat("a", maxBody) + `"}`), 413, true, ""},
		{"interactions", "POST", "/api/v1/interactions", jsonBody(map[string]any{"medications": []string{"warfarin", "aspirin", "Coumadin", "simvastatin", "clarithromycin", "sildenafil", "nitroglycerin", "warfrin", "zzqx-not-a-drug"}}), 200, true, ""},
		{"interactions empty", "POST", "/api/v1/interactions", []byte(`{"medications":[]}`), 200, true, ""},
		{"interactions missing", "POST", "/api/v1/interactions", []byte(`{}`), 400, false, ""},
		{"interactions unknown field", "POST", "/api/v1/interactions", []byte(`{"medications":[],"dose":1}`), 400, false, ""},
		{"interactions too large", "POST", "/api/v1/interactions", []byte(`{"medications":["` + strings.Repeat("a", maxBody) + `"]}`), 413, true, ""},
		{"models", "GET", "/api/v1/models", nil, 200, true, ""},
		{"model versions", "GET", "/api/v1/models/triage", nil, 200, true, ""},
		{"model versions unknown", "GET", "/api/v1/models/nope", nil, 404, true, ""},
		{"model card", "GET", "/api/v1/models/triage/card", nil, 200, true, ""},
		{"model card unknown", "GET", "/api/v1/models/nope/card", nil, 404, true, ""},
		{"live", "GET", "/health/live", nil, 200, true, ""},
		{"ready", "GET", "/health/ready", nil, 200, true, ""},
		{"metrics", "GET", "/metrics", nil, 200, true, ""},
		{"openapi", "GET", "/openapi.json", nil, 200, true, ""},

		{"history", "POST", "/api/v1/patients/history", []byte(`{"patient_id":"MRN-0042"}`), 200, true, ""},
		{"history limit", "POST", "/api/v1/patients/history", []byte(`{"patient_id":"nobody","limit":5}`), 200, true, ""},
		{"history missing id", "POST", "/api/v1/patients/history", []byte(`{}`), 400, false, ""},
		{"history bad limit", "POST", "/api/v1/patients/history", []byte(`{"patient_id":"x","limit":5000}`), 400, false, ""},
		{"history too large", "POST", "/api/v1/patients/history", []byte(`{"patient_id":"` + strings.Repeat("a", maxBody) + `"}`), 413, false, ""},
		{"audit all", "GET", "/api/v1/audit", nil, 200, true, ""},
		{"audit filtered", "GET", "/api/v1/audit?action=inference&outcome=ok&limit=2&after=0&from=2020-01-01T00:00:00Z", nil, 200, true, ""},
		// OpenAPI allows undeclared query parameters; the server does not.
		{"audit identifier in url", "GET", "/api/v1/audit?patient_id=MRN-0042", nil, 400, true, ""},
		{"audit bad time", "GET", "/api/v1/audit?from=yesterday", nil, 400, false, ""},
		{"audit search", "POST", "/api/v1/audit/search", []byte(`{"patient_id":"MRN-0042","action":"inference"}`), 200, true, ""},
		{"audit search bad outcome", "POST", "/api/v1/audit/search", []byte(`{"outcome":"maybe"}`), 400, false, ""},
		{"audit search too large", "POST", "/api/v1/audit/search", []byte(`{"actor":"` + strings.Repeat("a", maxBody) + `"}`), 413, true, ""},

		{"v2 server", "GET", "/v2", nil, 200, true, ""},
		{"v2 live", "GET", "/v2/health/live", nil, 200, true, ""},
		{"v2 ready", "GET", "/v2/health/ready", nil, 200, true, ""},
		{"v2 model", "GET", "/v2/models/triage", nil, 200, true, ""},
		{"v2 model version", "GET", "/v2/models/triage/versions/1", nil, 200, true, ""},
		{"v2 model unknown", "GET", "/v2/models/nope", nil, 404, true, ""},
		{"v2 model version unknown", "GET", "/v2/models/triage/versions/9", nil, 404, true, ""},
		{"v2 model ready", "GET", "/v2/models/triage/ready", nil, 200, true, ""},
		{"v2 model version ready", "GET", "/v2/models/triage/versions/1/ready", nil, 200, true, ""},
		{"v2 model ready unknown", "GET", "/v2/models/nope/ready", nil, 404, true, ""},
		{"v2 model version ready unknown", "GET", "/v2/models/nope/versions/1/ready", nil, 404, true, ""},
		{"v2 infer query", "POST", "/v2/models/triage/infer", infer(queryTensor(specExample, secondReader, map[string]any{"query": "sore throat"})), 200, true, ""},
		{"v2 infer features", "POST", "/v2/models/triage/infer", infer(featureTensor(1, zeros(dim))), 200, true, ""},
		{"v2 infer features two rows", "POST", "/v2/models/triage/versions/1/infer", infer(featureTensor(2, nonZero)), 200, true, ""},
		{"v2 infer version query", "POST", "/v2/models/triage/versions/1/infer", infer(queryTensor(map[string]any{"query": "chest pain", "vitals": map[string]any{"sbp": 80}})), 200, true, ""},
		{"v2 infer unknown model", "POST", "/v2/models/nope/infer", infer(featureTensor(1, zeros(dim))), 404, true, ""},
		{"v2 infer unknown version", "POST", "/v2/models/triage/versions/2/infer", infer(featureTensor(1, zeros(dim))), 404, true, ""},
		{"v2 infer two inputs", "POST", "/v2/models/triage/infer", infer(featureTensor(1, zeros(dim)), queryTensor(specExample)), 400, false, ""},
		{"v2 infer no inputs", "POST", "/v2/models/triage/infer", []byte(`{"inputs":[]}`), 400, false, ""},
		{"v2 infer unknown tensor", "POST", "/v2/models/triage/infer", infer(map[string]any{"name": "pixels", "shape": []int{1}, "datatype": "FP32", "data": []float32{0}}), 400, false, ""},
		{"v2 infer wrong datatype", "POST", "/v2/models/triage/versions/1/infer", infer(map[string]any{"name": "features", "shape": []int{1, dim}, "datatype": "FP64", "data": zeros(dim)}), 400, false, ""},
		{"v2 infer unknown field", "POST", "/v2/models/triage/infer", []byte(`{"inputs":[{"name":"query","shape":[1],"datatype":"BYTES","data":["{}"]}],"priority":1}`), 400, false, ""},
		{"v2 infer bad query element", "POST", "/v2/models/triage/infer", infer(queryTensor(map[string]any{"query": "x", "vitals": map[string]any{"hr": 400}})), 400, false, ""},
		{"v2 infer query unknown field", "POST", "/v2/models/triage/infer", infer(queryTensor(map[string]any{"query": "x", "colour": "red"})), 400, false, ""},
		{"v2 infer query shape mismatch", "POST", "/v2/models/triage/infer", infer(map[string]any{"name": "query", "shape": []int{3}, "datatype": "BYTES", "data": []string{`{"query":"x"}`}}), 400, true, ""},
		{"v2 infer features wrong width", "POST", "/v2/models/triage/infer", infer(featureTensor(1, zeros(dim-1))), 400, true, ""},
		{"v2 infer version features wrong width", "POST", "/v2/models/triage/versions/1/infer", infer(map[string]any{"name": "features", "shape": []int{1, 7}, "datatype": "FP32", "data": zeros(7)}), 400, true, ""},
	}
	notReady := []apiCase{
		{"ready (not ready)", "GET", "/health/ready", nil, 503, true, ""},
		{"v2 ready (not ready)", "GET", "/v2/health/ready", nil, 503, true, ""},
		{"v2 model ready (not ready)", "GET", "/v2/models/triage/ready", nil, 503, true, ""},
		{"v2 model version ready (not ready)", "GET", "/v2/models/triage/versions/1/ready", nil, 503, true, ""},
	}

	unrecorded := []apiCase{
		{"inference unrecordable", "POST", "/api/v1/inference", []byte(`{"query":"headache"}`), 503, true, ""},
		{"clinical unrecordable", "POST", "/api/v1/clinical", []byte(`{"query":"headache"}`), 503, true, ""},
		{"analyze unrecordable", "POST", "/api/v1/analyze", []byte(`{"text":"headache"}`), 503, true, ""},
		{"interactions unrecordable", "POST", "/api/v1/interactions", []byte(`{"medications":["warfarin"]}`), 503, true, ""},
		{"history store down", "POST", "/api/v1/patients/history", []byte(`{"patient_id":"MRN-0042"}`), 503, true, ""},
		{"audit store down", "GET", "/api/v1/audit", nil, 503, true, ""},
		{"audit search store down", "POST", "/api/v1/audit/search", []byte(`{}`), 503, true, ""},
		{"monitoring store down", "GET", "/api/v1/monitoring", nil, 503, true, ""},
		{"alerts store down", "GET", "/api/v1/alerts", nil, 503, true, ""},
		{"incidents store down", "GET", "/api/v1/incidents", nil, 503, true, ""},
		{"incident store down", "GET", "/api/v1/incidents/1", nil, 503, true, ""},
		{"close incident store down", "POST", "/api/v1/incidents/1/close", []byte(`{"reason":"x"}`), 503, true, ""},
		{"modes store down", "GET", "/api/v1/modes", nil, 503, true, ""},
		{"set mode store down", "PUT", "/api/v1/modes/caching", []byte(`{"enabled":true,"reason":"drill"}`), 503, true, ""},
		{"feedback store down", "POST", "/api/v1/feedback", []byte(`{"request_id":"x","true_acuity":2}`), 503, true, ""},
		{"promote store down", "POST", "/api/v1/models/triage/versions/1/promote", []byte(`{"stage":"production","reason":"x"}`), 503, true, ""},
		{"rollback store down", "POST", "/api/v1/models/triage/rollback", []byte(`{"reason":"x"}`), 503, true, ""},
	}

	seen := map[string]bool{} // "METHOD path status" of the document
	ran := 0
	target := ts
	run := func(c apiCase) {
		t.Run(c.name, func(t *testing.T) {
			key, body := checkCase(t, doc, router, target, c)
			seen[key] = true
			ran++
			switch {
			case c.name == "openapi" && !bytes.Equal(body, openAPIDoc):
				t.Errorf("GET /openapi.json does not serve the embedded document")
			case c.name == "metrics" && !bytes.Contains(body, []byte("medserve_http_request_duration_seconds")):
				t.Errorf("metrics lack medserve_http_request_duration_seconds")
			}
		})
	}
	for _, c := range cases {
		run(c)
	}
	target = broken
	for _, c := range unrecorded {
		run(c)
	}
	// Model lifecycle, on a server whose registry has versions 1 (fails
	// the gate), 2 (serving, validated) and 3 (validated); in order.
	lifecycle := lifecycleServer(t)
	defer lifecycle.Close()
	target = lifecycle
	lifecycleCases := []apiCase{
		{"promote canary", "POST", "/api/v1/models/triage/versions/3/promote", []byte(`{"stage":"canary","percent":10,"reason":"try on 10 %"}`), 200, true, ""},
		{"promote shadow", "POST", "/api/v1/models/triage/versions/1/promote", []byte(`{"stage":"shadow","reason":"watch"}`), 200, true, ""},
		{"versions with canary and shadow", "GET", "/api/v1/models/triage", nil, 200, true, ""},
		{"promote", "POST", "/api/v1/models/triage/versions/3/promote", []byte(`{"stage":"production","reason":"better specificity"}`), 200, true, ""},
		{"promote failing the gate", "POST", "/api/v1/models/triage/versions/1/promote", []byte(`{"stage":"production","reason":"try"}`), 422, true, ""},
		{"promote unknown version", "POST", "/api/v1/models/triage/versions/9/promote", []byte(`{"stage":"production","reason":"try"}`), 404, true, ""},
		{"promote bad stage", "POST", "/api/v1/models/triage/versions/3/promote", []byte(`{"stage":"everywhere","reason":"try"}`), 400, false, ""},
		{"rollback", "POST", "/api/v1/models/triage/rollback", []byte(`{"reason":"sensitivity dropped"}`), 200, true, ""},
		{"rollback again", "POST", "/api/v1/models/triage/rollback", []byte(`{"reason":"again"}`), 409, true, ""},
		{"rollback without reason", "POST", "/api/v1/models/triage/rollback", []byte(`{"reason":""}`), 400, false, ""},
		{"rollback unknown model", "POST", "/api/v1/models/nope/rollback", []byte(`{"reason":"x"}`), 404, true, ""},
	}
	for _, c := range lifecycleCases {
		run(c)
	}
	cases = append(cases, lifecycleCases...)
	// The gateway on: every documented 401, 403 and 429, produced for
	// real from the requests above that succeed.
	secure, tokens := secureServer(t, "inference=100000/s burst 10000,clinical=100000/s burst 10000,health=100000/s burst 10000")
	defer secure.Close()
	// A second one whose health zone admits one request a day.
	tight, _ := secureServer(t, "health=1/day burst 0")
	defer tight.Close()
	// Spend the limited key's budgets and the tight server's health zone.
	for _, warm := range []struct {
		srv                       *httptest.Server
		method, path, token, body string
	}{
		{secure, "GET", "/api/v1/models", tokens.limited, ""},
		{secure, "POST", "/api/v1/clinical", tokens.limited, `{"query":"headache"}`},
		{tight, "GET", "/health/live", "", ""},
	} {
		req, _ := http.NewRequest(warm.method, warm.srv.URL+warm.path, strings.NewReader(warm.body))
		req.Header.Set("Authorization", "Bearer "+warm.token)
		resp, err := warm.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("warm-up %s: %d", warm.path, resp.StatusCode)
		}
	}
	target = secure
	gated := 0
	for _, c := range cases {
		if c.status != 200 {
			continue
		}
		vreq := httptest.NewRequest(c.method, c.path, nil)
		route, _, err := router.FindRoute(vreq)
		if err != nil {
			t.Fatal(err)
		}
		responses := route.Operation.Responses
		if responses.Value("401") != nil {
			c401 := c
			c401.name, c401.status, c401.token = c.name+" (no credentials)", 401, ""
			run(c401)
			gated++
		}
		if responses.Value("403") != nil {
			c403 := c
			c403.name, c403.status, c403.token = c.name+" (wrong role)", 403, tokens.wrongRole(route.Path)
			if route.Path == "/metrics" {
				c403.token = "" // the metrics guard: no token, not from an allowed network
			}
			run(c403)
		}
		c429 := c
		c429.name, c429.status, c429.token = c.name+" (over the limit)", 429, tokens.limited
		if responses.Value("401") == nil {
			c429.token = ""
			target = tight
		}
		run(c429)
		target = secure
	}
	if gated < 10 {
		t.Errorf("only %d documented routes exercised behind authentication", gated)
	}
	target = ts
	deps.Ready.Store(false)
	for _, c := range notReady {
		run(c)
	}

	// Every documented operation and status must have been seen for real
	// (unless -run left cases out).
	if all := len(cases) + len(notReady) + len(unrecorded); ran < all+gated {
		t.Logf("%d of %d cases ran: documented statuses not checked", ran, all)
		return
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if k := method + " " + path + " " + status; !seen[k] {
					t.Errorf("no case exercises %s", k)
				}
			}
		}
	}
}

// checkCase sends one request, checks its status and validates the request
// and the response against the document. It returns the document operation
// and status it exercised, and the response body.
func checkCase(t *testing.T, doc *openapi3.T, router routers.Router, ts *httptest.Server, c apiCase) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}

	vreq := httptest.NewRequest(c.method, c.path, bytes.NewReader(c.body))
	if c.body != nil {
		vreq.Header.Set("Content-Type", "application/json")
	}
	route, pathParams, err := router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s %s: no route in the document: %v", c.method, c.path, err)
	}
	reqInput := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: pathParams, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(ctx, reqInput)
	if reqErr == nil {
		reqErr = validateQueryElements(doc, c.body)
	}
	switch {
	case c.docValid && reqErr != nil:
		t.Errorf("the document rejects a request it should accept: %v", reqErr)
	case !c.docValid && reqErr == nil:
		t.Errorf("the document accepts a request the server rejects")
	}

	hreq, err := http.NewRequest(c.method, ts.URL+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := ts.Client().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != c.status {
		t.Errorf("status %d, want %d; body %.300s", resp.StatusCode, c.status, body)
	}
	respInput := &openapi3filter.ResponseValidationInput{RequestValidationInput: reqInput, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	respInput.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
		t.Errorf("response %d does not match the document: %v\nbody: %.500s", resp.StatusCode, err, body)
	}
	if err := validateAssessments(doc, resp.StatusCode, body); err != nil {
		t.Errorf("v2 assessment does not match InferenceResponse: %v", err)
	}
	return c.method + " " + route.Path + " " + fmt.Sprint(resp.StatusCode), body
}

// validateQueryElements applies the contentSchema of a v2 query tensor: each
// element is a v1 request JSON (validators treat contentSchema as an
// annotation, so the test asserts it).
func validateQueryElements(doc *openapi3.T, body []byte) error {
	var req struct {
		Inputs []struct {
			Name string `json:"name"`
			Data []json.RawMessage
		} `json:"inputs"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil
	}
	for _, in := range req.Inputs {
		if in.Name != "query" {
			continue
		}
		for i, raw := range in.Data {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("query[%d]: %v", i, err)
			}
			if err := visitContent(doc, "InferenceRequest", s); err != nil {
				return fmt.Errorf("query[%d]: %w", i, err)
			}
		}
	}
	return nil
}

// validateAssessments applies the contentSchema of a v2 assessment tensor.
func validateAssessments(doc *openapi3.T, status int, body []byte) error {
	if status != http.StatusOK {
		return nil
	}
	var resp struct {
		ModelName string `json:"model_name"`
		Outputs   []struct {
			Name string `json:"name"`
			Data json.RawMessage
		} `json:"outputs"`
	}
	if json.Unmarshal(body, &resp) != nil || resp.ModelName == "" {
		return nil
	}
	for _, out := range resp.Outputs {
		if out.Name != "assessment" {
			continue
		}
		var data []string
		if err := json.Unmarshal(out.Data, &data); err != nil {
			return err
		}
		for i, s := range data {
			if err := visitContent(doc, "InferenceResponse", s); err != nil {
				return fmt.Errorf("assessment[%d]: %w", i, err)
			}
		}
	}
	return nil
}

func visitContent(doc *openapi3.T, schema, content string) error {
	var v any
	if err := json.Unmarshal([]byte(content), &v); err != nil {
		return err
	}
	return doc.Components.Schemas[schema].Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors())
}

// withRecords gives deps a real SQLite store, spool, recorder and PHI key,
// as serve wires them.
func withRecords(t testing.TB, deps Deps) Deps {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "medserve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	kr, err := phi.NewKeyring(phi.Key{ID: "k1", Secret: bytes.Repeat([]byte{3}, phi.SecretSize)})
	if err != nil {
		t.Fatal(err)
	}
	rec := record.New(sp, st, record.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	go rec.Run(ctx)
	t.Cleanup(func() { cancel(); rec.Wait() })
	deps.Recorder, deps.Store, deps.PHI = rec, st, kr
	deps.QueryHash = func(parts ...string) string { return strings.Join(parts, "|") }
	deps.Monitor = monitor.New(st, monitor.Config{Serving: func() []string { return []string{"triage/1"} }})
	if deps.Pipeline != nil {
		deps.Modes = alert.NewModeState(st, deps.Pipeline, true)
	}
	return deps
}

// secureTokens are the API keys of secureServer.
type secureTokens struct {
	clinician, service, auditor, limited string
}

// wrongRole is a key whose role the route at path does not admit.
func (k secureTokens) wrongRole(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/v1/audit"):
		return k.clinician
	case path == "/api/v1/patients/history":
		return k.service
	}
	return k.auditor
}

// secureServer is the server with the gateway on: API keys in a real
// store, and a key (and the health zone) whose budget is spent at once.
func secureServer(t *testing.T, zoneSpec string) (*httptest.Server, secureTokens) {
	t.Helper()
	deps := withRecords(t, loadDeps(t))
	deps.Metrics = NewMetrics()
	mk := func(role, limits string) string {
		_, tok, err := auth.CreateKey(context.Background(), deps.Store, role, role, limits, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	k := secureTokens{clinician: mk(auth.RoleClinician, ""), service: mk(auth.RoleService, ""), auditor: mk(auth.RoleAuditor, ""),
		limited: mk(auth.RoleAdmin, "inference=1/day burst 0,clinical=1/day burst 0")}
	zones, err := ratelimit.ParseZones(zoneSpec)
	if err != nil {
		t.Fatal(err)
	}
	deps.Gateway = Gateway{Auth: auth.NewAuthenticator(deps.Store, nil, nil), Limiter: ratelimit.NewMemory(nil, 1000), Zones: zones,
		MetricsNets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	return httptest.NewServer(NewServer(deps)), k
}

var testFeat *triage.Featurizer

// lifecycleServer serves a registry over a copy of the bundled model as
// versions 1 (failing the gate), 2 and 3 (passing it); 2 serves first.
func lifecycleServer(t *testing.T) *httptest.Server {
	t.Helper()
	deps := withRecords(t, loadDeps(t))
	deps.Metrics = NewMetrics()
	dir := filepath.Join(t.TempDir(), "triage")
	copyVersion(t, dir, "1", false)
	copyVersion(t, dir, "2", true)
	reg := registry.New(deps.Store, dir, "triage", testFeat, func(a *triage.Artifact) (pipeline.Predictor, func(), error) {
		return pipeline.DirectPredictor{Model: a.Model}, func() {}, nil
	})
	if _, err := reg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Version 3 arrives after the start, as a trained candidate would.
	copyVersion(t, dir, "3", true)
	if _, err := reg.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A pipeline of its own: canary and shadow change the pipeline they are
	// attached to, which the other test servers share.
	pipe := pipeline.New(triage.NewAssessor(testFeat, reg.Serving()), deps.KB, pipeline.DirectPredictor{Model: reg.Serving().Model}, nil, nil, pipeline.Config{})
	reg.Attach(pipe, nil)
	deps.Pipeline, deps.Registry = pipe, reg
	return httptest.NewServer(NewServer(deps))
}

// copyVersion copies models/triage/1 to dir/v with the given verdict.
func copyVersion(t *testing.T, dir, v string, pass bool) {
	t.Helper()
	src, _ := filepath.Abs("../../models/triage/1")
	registrytest.CopyVersion(t, src, dir, v, pass)
}
