package server

import "net/http"

// routes is the whole API surface.
func (s *Server) routes(mux *http.ServeMux) {
	handle := func(pattern, route string, h http.Handler) {
		mux.Handle(pattern, s.metrics.instrument(route, h))
	}
	// Every route that touches clinical data is audited: its audit entry
	// is durable before its response leaves (records.go).
	handle("POST /api/v1/inference", "/api/v1/inference", s.audited("inference", s.handleInference()))
	handle("POST /api/v1/clinical", "/api/v1/clinical", s.audited("clinical", s.handleClinical()))
	handle("POST /api/v1/analyze", "/api/v1/analyze", s.audited("analyze", s.handleAnalyze()))
	handle("POST /api/v1/interactions", "/api/v1/interactions", s.audited("interactions", s.handleInteractions()))
	handle("POST /api/v1/patients/history", "/api/v1/patients/history", s.audited("patient.history.read", s.handleHistory()))
	handle("GET /api/v1/audit", "/api/v1/audit", s.audited("audit.read", s.handleAuditGet()))
	handle("POST /api/v1/audit/search", "/api/v1/audit/search", s.audited("audit.read", s.handleAuditSearch()))
	handle("GET /api/v1/models", "/api/v1/models", s.handleModels())
	handle("GET /health/live", "/health/live", s.handleLive())
	handle("GET /health/ready", "/health/ready", s.handleReady())
	handle("GET /metrics", "/metrics", s.metrics.Handler())
	handle("GET /openapi.json", "/openapi.json", s.handleOpenAPI())

	// Open Inference Protocol (KServe V2 REST).
	handle("GET /v2", "/v2", s.handleV2Server())
	handle("GET /v2/health/live", "/v2/health/live", s.handleLive())
	handle("GET /v2/health/ready", "/v2/health/ready", s.handleReady())
	handle("GET /v2/models/{name}", "/v2/models/{name}", s.handleV2Model())
	handle("GET /v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}", s.handleV2Model())
	handle("GET /v2/models/{name}/ready", "/v2/models/{name}/ready", s.handleV2ModelReady())
	handle("GET /v2/models/{name}/versions/{version}/ready", "/v2/models/{name}/versions/{version}/ready", s.handleV2ModelReady())
	handle("POST /v2/models/{name}/infer", "/v2/models/{name}/infer", s.audited("model.infer", s.handleV2Infer()))
	handle("POST /v2/models/{name}/versions/{version}/infer", "/v2/models/{name}/versions/{version}/infer", s.audited("model.infer", s.handleV2Infer()))

	mux.Handle("/", s.metrics.instrument("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such route")
	})))
}
