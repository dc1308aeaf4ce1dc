package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"medserve/internal/clinical"
	"medserve/internal/gateway"
	"medserve/internal/kb"
	"medserve/internal/monitor"
	"medserve/internal/phi"
	"medserve/internal/pipeline"
	"medserve/internal/store"
	"medserve/internal/text"
	"medserve/internal/triage"
	"medserve/internal/validate"
)

// Deps are everything the server serves.
type Deps struct {
	Pipeline *pipeline.Pipeline
	Text     *text.Engine
	KB       *kb.KB
	Triage   *triage.Artifact
	Features triage.FeatureSpec
	Metrics  *Metrics
	// Ready reports readiness: true only once models are loaded and warmed.
	Ready   *atomic.Bool
	Version string
	// Recorder makes each request's query records and audit events durable
	// before its answer is sent; nil turns auditing off (tests of other parts).
	Recorder Recorder
	Store    store.Store  // history and audit reads
	PHI      *phi.Keyring // pseudonyms and sealing of identifiers and free text
	// QueryHash is a keyed hash (HMAC) for the stored query hash.
	QueryHash func(parts ...string) string
	Gateway   Gateway
	Registry  Registry // model versions and stages; nil: the started version only
	// Live monitoring (step 8); each may be nil.
	Monitor  *monitor.Monitor
	Observer Observer
	Modes    Modes
}

// Server holds the handlers' dependencies.
type Server struct {
	Deps
	metrics  *Metrics
	inflight *gateway.InFlightLimit
	limits   sync.Map // zone + key limits → ratelimit.Limit (guard.go)
}

// NewServer builds the HTTP handler.
func NewServer(d Deps) http.Handler {
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	if d.Ready == nil {
		d.Ready = new(atomic.Bool)
	}
	if d.Gateway.MetricsNets == nil {
		d.Gateway.MetricsNets = gateway.DefaultMetricsNetworks()
	}
	s := &Server{Deps: d, metrics: d.Metrics, inflight: gateway.InFlight(d.Gateway.MaxInFlight)}
	s.metrics.shadowFrom(d.Pipeline)
	mux := http.NewServeMux()
	s.routes(mux)
	// Around every route: the in-flight cap first (cheapest refusal),
	// then CORS, security headers and compression of what is answered.
	var h http.Handler = mux
	h = gateway.Gzip(1024)(h)
	h = gateway.SecurityHeaders(d.Gateway.HSTS)(h)
	// The origin list is checked when the configuration is read (serve
	// refuses to start on a bad one); here a bad list means no CORS.
	if cors, err := gateway.CORS(d.Gateway.CORSOrigins); err == nil {
		h = cors(h)
	}
	h = s.inflight.Wrap(h)
	// The client's address, from X-Forwarded-For only behind a trusted
	// proxy, for rate limits and the /metrics network check.
	return gateway.RealIP(d.Gateway.TrustedProxies)(h)
}

func (s *Server) handleInference() http.Handler { return s.handleQuery("inference", s.Pipeline.Infer) }

// handleClinical is decision support: the same analysis, fuller differential.
func (s *Server) handleClinical() http.Handler {
	return s.handleQuery("clinical", s.Pipeline.InferClinical)
}

func (s *Server) handleQuery(action string, infer func(context.Context, *pipeline.Request) (*pipeline.Response, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req pipeline.Request
		if !decode(w, r, &req) {
			return
		}
		if p := req.Problems(); len(p) > 0 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", pipeline.ProblemList(p)...)
			return
		}
		resp, err := infer(r.Context(), &req)
		if errors.Is(err, pipeline.ErrOverloaded) {
			s.metrics.Failures.WithLabelValues("triage", "rejected").Inc()
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, http.StatusServiceUnavailable, "the model's queue is full; retry shortly")
			return
		}
		s.noteAnswer(r.Context(), action, &req, resp)
		s.observe(&req, resp)
		writeJSON(w, http.StatusOK, resp)
	})
}

type analyzeRequest struct {
	Text    string   `json:"text"`
	Targets []string `json:"targets,omitempty"`
}

func (s *Server) handleAnalyze() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req analyzeRequest
		if !decode(w, r, &req) {
			return
		}
		if len(req.Targets) > 64 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", "targets: more than 64")
			return
		}
		a := s.Text.Analyze(req.Text, text.Options{Targets: req.Targets})
		writeJSON(w, http.StatusOK, nonNilAnalysis(a))
	})
}

func nonNilAnalysis(a text.Analysis) text.Analysis {
	if a.Findings == nil {
		a.Findings = []clinical.Finding{}
	}
	if a.Quantities == nil {
		a.Quantities = []clinical.Quantity{}
	}
	if a.Implausible == nil {
		a.Implausible = []clinical.Implausible{}
	}
	return a
}

type interactionsRequest struct {
	Medications []string `json:"medications"`
}

func (s *Server) handleInteractions() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req interactionsRequest
		if !decode(w, r, &req) {
			return
		}
		if req.Medications == nil {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", "medications: required")
			return
		}
		if len(req.Medications) > 1000 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", "medications: more than 1,000 entries")
			return
		}
		writeJSON(w, http.StatusOK, s.KB.CheckInteractions(req.Medications))
	})
}

// modelInfo is one model in GET /api/v1/models.
type modelInfo struct {
	Name     string               `json:"name"`
	Version  string               `json:"version"`
	Family   string               `json:"family"`
	State    string               `json:"state"`
	Gate     *validate.GateResult `json:"gate,omitempty"`
	Features int                  `json:"features"`
	Policy   triage.Policy        `json:"policy"`
	Files    map[string]string    `json:"files"`
}

func (s *Server) handleModels() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := s.artifact().Manifest
		writeJSON(w, http.StatusOK, map[string]any{"models": []modelInfo{{
			Name: m.Name, Version: m.Version, Family: m.Family, State: "production", Gate: m.Gate,
			Features: s.Features.Dim(), Policy: m.Policy, Files: m.Files,
		}}})
	})
}

func (s *Server) handleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"live": true})
	})
}

func (s *Server) handleReady() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.Ready.Load() {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
}

// mustJSON is for values that cannot fail to encode; like writeJSON it
// does not escape HTML, so v1 and v2 carry the same bytes.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
