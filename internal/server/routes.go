package server

import (
	"net/http"
	"time"

	"medserve/internal/gateway"
)

// Rate-limit zones (SPEC section 8); a route no zone names is in the
// inference zone.
const (
	zoneInference = "inference"
	zoneClinical  = "clinical"
	zoneHealth    = "health"
)

// routes is the whole API surface: for each route its zone, who may call
// it, its timeout and whether it is audited.
func (s *Server) routes(mux *http.ServeMux) {
	// api is an authenticated route: rate limit (before anything is
	// audited), audit (action "" = not audited, e.g. model metadata),
	// roles, timeout.
	api := func(pattern, route, zone, action string, roles []string, timeout time.Duration, h http.Handler) {
		h = gateway.Timeout(timeout)(h)
		h = s.authorize(roles, h)
		if action != "" {
			h = s.audited(action, h)
		} else {
			h = s.auditDenials(route, h)
		}
		mux.Handle(pattern, s.metrics.instrument(route, s.limit(zone, h)))
	}
	// public is a route without authentication (health, documentation).
	public := func(pattern, route string, h http.Handler) {
		mux.Handle(pattern, s.metrics.instrument(route, s.limit(zoneHealth, h)))
	}

	// Every route that touches clinical data is audited: its audit entry
	// is durable before its response leaves (records.go).
	api("POST /api/v1/inference", "/api/v1/inference", zoneInference, "inference", rolesInference, timeoutInference, s.handleInference())
	api("POST /api/v1/clinical", "/api/v1/clinical", zoneClinical, "clinical", rolesInference, timeoutClinical, s.handleClinical())
	api("POST /api/v1/analyze", "/api/v1/analyze", zoneInference, "analyze", rolesInference, timeoutInference, s.handleAnalyze())
	api("POST /api/v1/interactions", "/api/v1/interactions", zoneInference, "interactions", rolesInference, timeoutInference, s.handleInteractions())
	api("POST /api/v1/patients/history", "/api/v1/patients/history", zoneInference, "patient.history.read", rolesHistory, timeoutClinical, s.handleHistory())
	api("POST /api/v1/feedback", "/api/v1/feedback", zoneInference, "feedback.write", rolesHistory, timeoutClinical, s.handleFeedback())
	api("GET /api/v1/audit", "/api/v1/audit", zoneInference, "audit.read", rolesAudit, timeoutClinical, s.handleAuditGet())
	api("POST /api/v1/audit/search", "/api/v1/audit/search", zoneInference, "audit.read", rolesAudit, timeoutClinical, s.handleAuditSearch())
	api("GET /api/v1/models", "/api/v1/models", zoneInference, "", rolesAny, timeoutInference, s.handleModels())
	api("GET /api/v1/models/{name}", "/api/v1/models/{name}", zoneInference, "", rolesAny, timeoutInference, s.handleModelVersions())
	api("POST /api/v1/models/{name}/versions/{version}/promote", "/api/v1/models/{name}/versions/{version}/promote", zoneInference, "model.promote", rolesAdmin, timeoutClinical, s.handlePromote())
	api("POST /api/v1/models/{name}/rollback", "/api/v1/models/{name}/rollback", zoneInference, "model.rollback", rolesAdmin, timeoutClinical, s.handleRollback())
	api("GET /api/v1/models/{name}/card", "/api/v1/models/{name}/card", zoneInference, "", rolesAny, timeoutInference, s.handleModelCard())

	// Monitoring and alerts: figures and states, no PHI.
	api("GET /api/v1/monitoring", "/api/v1/monitoring", zoneInference, "", rolesAny, timeoutClinical, s.handleMonitoring())
	api("GET /api/v1/alerts", "/api/v1/alerts", zoneInference, "", rolesAny, timeoutClinical, s.handleAlerts())
	api("GET /api/v1/incidents", "/api/v1/incidents", zoneInference, "", rolesAny, timeoutClinical, s.handleIncidents())
	api("GET /api/v1/incidents/{id}", "/api/v1/incidents/{id}", zoneInference, "", rolesAny, timeoutClinical, s.handleIncident())
	api("POST /api/v1/incidents/{id}/close", "/api/v1/incidents/{id}/close", zoneInference, "incident.close", rolesAdmin, timeoutClinical, s.handleCloseIncident())
	api("GET /api/v1/modes", "/api/v1/modes", zoneInference, "", rolesAny, timeoutClinical, s.handleModes())
	api("PUT /api/v1/modes/{name}", "/api/v1/modes/{name}", zoneInference, "mode.set", rolesAdmin, timeoutClinical, s.handleSetMode())

	public("GET /health/live", "/health/live", s.handleLive())
	public("GET /health/ready", "/health/ready", s.handleReady())
	public("GET /openapi.json", "/openapi.json", s.handleOpenAPI())
	// Metrics: from allowed networks or with the metrics token only.
	public("GET /metrics", "/metrics", gateway.AllowNetworks(s.Gateway.MetricsNets, s.Gateway.MetricsToken, s.metrics.Handler()))

	// Open Inference Protocol (KServe V2 REST).
	api("GET /v2", "/v2", zoneInference, "", rolesAny, timeoutInference, s.handleV2Server())
	public("GET /v2/health/live", "/v2/health/live", s.handleLive())
	public("GET /v2/health/ready", "/v2/health/ready", s.handleReady())
	api("GET /v2/models/{name}", "/v2/models/{name}", zoneInference, "", rolesAny, timeoutInference, s.handleV2Model())
	api("GET /v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}", zoneInference, "", rolesAny, timeoutInference, s.handleV2Model())
	api("GET /v2/models/{name}/ready", "/v2/models/{name}/ready", zoneInference, "", rolesAny, timeoutInference, s.handleV2ModelReady())
	api("GET /v2/models/{name}/versions/{version}/ready", "/v2/models/{name}/versions/{version}/ready", zoneInference, "", rolesAny, timeoutInference, s.handleV2ModelReady())
	api("POST /v2/models/{name}/infer", "/v2/models/{name}/infer", zoneInference, "model.infer", rolesInference, timeoutInference, s.handleV2Infer())
	api("POST /v2/models/{name}/versions/{version}/infer", "/v2/models/{name}/versions/{version}/infer", zoneInference, "model.infer", rolesInference, timeoutInference, s.handleV2Infer())

	mux.Handle("/", s.metrics.instrument("other", s.limit(zoneInference, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such route")
	}))))
}
