package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"medserve/internal/clinical"
	"medserve/internal/monitor"
	"medserve/internal/pipeline"
	"medserve/internal/store"
	"medserve/internal/triage"
)

// Observer counts answers for the live monitoring (monitor.Collector).
type Observer interface {
	Observe(q clinical.Query, a *triage.Assessment, latency time.Duration, cacheHit bool)
}

// Modes are the cluster-wide operating modes (alert.ModeState).
type Modes interface {
	Compliance() bool
	Set(ctx context.Context, m store.Mode) error
	List(ctx context.Context) ([]store.Mode, error)
}

// modeNames are the modes an admin may set over HTTP.
var modeNames = []string{"oversight", "compliance", "caching", "scale_up"}

func (s *Server) observe(req *pipeline.Request, resp *pipeline.Response) {
	if s.Observer == nil || resp == nil {
		return
	}
	s.Observer.Observe(req.ClinicalQuery(), &resp.Assessment, time.Duration(resp.TimingMS["total"]*float64(time.Millisecond)), resp.Cache.Hit)
}

// monitoringResponse is GET /api/v1/monitoring.
type monitoringResponse struct {
	*monitor.Snapshot
	Modes  []modeJSON  `json:"modes"`
	Alerts []alertJSON `json:"alerts"` // pending and firing
}

type modeJSON struct {
	Name      string    `json:"name"`
	Enabled   bool      `json:"enabled"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	UpdatedAt time.Time `json:"updated_at"`
}

type alertJSON struct {
	ID         int64             `json:"id"`
	Rule       string            `json:"rule"`
	Severity   string            `json:"severity"`
	State      string            `json:"state"`
	Labels     map[string]string `json:"labels"`
	Summary    string            `json:"summary"`
	Value      float64           `json:"value"`
	Threshold  float64           `json:"threshold"`
	StartedAt  time.Time         `json:"started_at"`
	FiredAt    *time.Time        `json:"fired_at"`
	ResolvedAt *time.Time        `json:"resolved_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	IncidentID *int64            `json:"incident_id"`
}

func toAlertJSON(as []store.Alert) []alertJSON {
	out := make([]alertJSON, 0, len(as))
	for _, a := range as {
		j := alertJSON{ID: a.ID, Rule: a.Rule, Severity: a.Severity, State: a.State, Labels: a.Labels, Summary: a.Summary,
			Value: a.Value, Threshold: a.Threshold, StartedAt: a.StartedAt, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt, UpdatedAt: a.UpdatedAt}
		if j.Labels == nil {
			j.Labels = map[string]string{}
		}
		if a.IncidentID != 0 {
			id := a.IncidentID
			j.IncidentID = &id
		}
		out = append(out, j)
	}
	return out
}

func toModeJSON(ms []store.Mode) []modeJSON {
	out := make([]modeJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, modeJSON{Name: m.Name, Enabled: m.Enabled, Reason: m.Reason, Actor: m.Actor, UpdatedAt: m.UpdatedAt})
	}
	return out
}

// snapshotMaxAge: older than this, GET /api/v1/monitoring refreshes first
// (the engine refreshes every alert interval; a replica without it, or
// a test, still answers with current figures).
const snapshotMaxAge = 30 * time.Second

func (s *Server) handleMonitoring() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Monitor == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "monitoring needs the store")
			return
		}
		snap := s.Monitor.Latest()
		if snap == nil || time.Since(snap.Time) > snapshotMaxAge {
			var err error
			if snap, err = s.Monitor.Refresh(r.Context()); err != nil {
				writeProblem(w, r, http.StatusServiceUnavailable, "the monitoring figures could not be read from the store")
				return
			}
		}
		// The snapshot is shared (the engine reads it): never written here.
		writeJSON(w, http.StatusOK, monitoringResponse{Snapshot: snap, Modes: toModeJSON(snap.Modes), Alerts: toAlertJSON(snap.Alerts)})
	})
}

// queryLimit reads ?limit= (1–1000, default def).
func queryLimit(r *http.Request, def int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, false
	}
	return n, true
}

func (s *Server) handleAlerts() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Store == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "alerts need the store")
			return
		}
		var p []string
		state := r.URL.Query().Get("state")
		if !slices.Contains([]string{"", "active", "pending", "firing", "resolved"}, state) {
			p = append(p, "state: active, pending, firing or resolved")
		}
		limit, ok := queryLimit(r, 100)
		if !ok {
			p = append(p, "limit: 1–1000")
		}
		var since time.Time
		if v := r.URL.Query().Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				p = append(p, "since: an RFC 3339 time")
			}
			since = t
		}
		if len(p) > 0 {
			writeProblem(w, r, http.StatusBadRequest, "invalid query", p...)
			return
		}
		as, err := s.Store.Alerts(r.Context(), store.AlertFilter{State: state, Since: since, Limit: limit})
		if err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "alerts could not be read from the store")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"alerts": toAlertJSON(as)})
	})
}

// incidentJSON is an incident; the report only when one is asked for.
type incidentJSON struct {
	ID       int64           `json:"id"`
	AlertID  int64           `json:"alert_id"`
	Rule     string          `json:"rule"`
	Title    string          `json:"title"`
	Severity string          `json:"severity"`
	Status   string          `json:"status"`
	OpenedAt time.Time       `json:"opened_at"`
	ClosedAt *time.Time      `json:"closed_at"`
	Report   json.RawMessage `json:"report,omitempty"`
}

func toIncidentJSON(in store.Incident, withReport bool) incidentJSON {
	j := incidentJSON{ID: in.ID, AlertID: in.AlertID, Rule: in.Rule, Title: in.Title, Severity: in.Severity, Status: in.Status,
		OpenedAt: in.OpenedAt, ClosedAt: in.ClosedAt}
	if withReport {
		j.Report = json.RawMessage(in.Report)
		if !json.Valid(j.Report) {
			j.Report = json.RawMessage("{}")
		}
	}
	return j
}

func (s *Server) handleIncidents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Store == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "incidents need the store")
			return
		}
		limit, ok := queryLimit(r, 100)
		if !ok {
			writeProblem(w, r, http.StatusBadRequest, "invalid query", "limit: 1–1000")
			return
		}
		ins, err := s.Store.Incidents(r.Context(), limit)
		if err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "incidents could not be read from the store")
			return
		}
		out := make([]incidentJSON, 0, len(ins))
		for _, in := range ins {
			out = append(out, toIncidentJSON(in, false))
		}
		writeJSON(w, http.StatusOK, map[string]any{"incidents": out})
	})
}

// incidentID reads the {id} of an incident route (answering the problem
// itself when there is none to read).
func (s *Server) incidentID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	if s.Store == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "incidents need the store")
		return 0, false
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeProblem(w, r, http.StatusBadRequest, "invalid request", "id: a positive integer")
		return 0, false
	}
	return id, true
}

// loadIncident reads an incident, answering 404 or 503 itself.
func (s *Server) loadIncident(w http.ResponseWriter, r *http.Request, id int64) (store.Incident, bool) {
	in, err := s.Store.Incident(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeProblem(w, r, http.StatusNotFound, "no such incident")
		return in, false
	}
	if err != nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "the incident could not be read from the store")
		return in, false
	}
	return in, true
}

func (s *Server) handleIncident() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.incidentID(w, r)
		if !ok {
			return
		}
		if in, ok := s.loadIncident(w, r, id); ok {
			writeJSON(w, http.StatusOK, toIncidentJSON(in, true))
		}
	})
}

func (s *Server) handleModes() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Modes == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "modes need the store")
			return
		}
		ms, err := s.Modes.List(r.Context())
		if err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "modes could not be read from the store")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"modes": toModeJSON(ms)})
	})
}

type setModeRequest struct {
	Enabled *bool  `json:"enabled"`
	Reason  string `json:"reason"`
}

// handleSetMode is an admin's switch: clearing human oversight after a
// clinician has reviewed the model is the usual use.
func (s *Server) handleSetMode() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Modes == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "modes need the store")
			return
		}
		name := r.PathValue("name")
		if !slices.Contains(modeNames, name) {
			writeProblem(w, r, http.StatusNotFound, "no such mode", "name: "+strings.Join(modeNames, ", "))
			return
		}
		var req setModeRequest
		if !decode(w, r, &req) {
			return
		}
		var p []string
		if req.Enabled == nil {
			p = append(p, "enabled: required, true or false")
		}
		if strings.TrimSpace(req.Reason) == "" || len(req.Reason) > 1024 {
			p = append(p, "reason: required (why), at most 1 KiB")
		}
		if len(p) > 0 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", p...)
			return
		}
		m := store.Mode{Name: name, Enabled: *req.Enabled, Reason: req.Reason, Actor: actorOf(r), UpdatedAt: time.Now().UTC()}
		if err := s.Modes.Set(r.Context(), m); err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "the mode could not be stored")
			return
		}
		writeJSON(w, http.StatusOK, toModeJSON([]store.Mode{m})[0])
	})
}

type closeIncidentRequest struct {
	Reason string `json:"reason"`
}

// handleCloseIncident is an admin closing an incident once it has been
// dealt with; who and why go into its report (and the audit trail).
func (s *Server) handleCloseIncident() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.incidentID(w, r)
		if !ok {
			return
		}
		var req closeIncidentRequest
		if !decode(w, r, &req) {
			return
		}
		if strings.TrimSpace(req.Reason) == "" || len(req.Reason) > 1024 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", "reason: required (what was done), at most 1 KiB")
			return
		}
		in, ok := s.loadIncident(w, r, id)
		if !ok {
			return
		}
		if in.Status == "closed" {
			writeProblem(w, r, http.StatusConflict, "the incident is already closed")
			return
		}
		now := time.Now().UTC()
		rep := map[string]json.RawMessage{}
		_ = json.Unmarshal([]byte(in.Report), &rep)
		closed, _ := json.Marshal(map[string]any{"actor": actorOf(r), "reason": req.Reason, "time": now})
		rep["closed"] = closed
		b, _ := json.Marshal(rep)
		in.Status, in.ClosedAt, in.Report = "closed", &now, string(b)
		in, err := s.Store.SaveIncident(r.Context(), in)
		if err != nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "the incident could not be stored")
			return
		}
		writeJSON(w, http.StatusOK, toIncidentJSON(in, true))
	})
}
