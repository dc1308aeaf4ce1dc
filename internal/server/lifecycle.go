package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"medserve/internal/registry"
	"medserve/internal/triage"
)

// Registry is the model lifecycle the admin routes drive (package registry).
type Registry interface {
	Serving() *triage.Artifact
	Promote(ctx context.Context, version, stage string, percent int, actor, reason string) error
	Rollback(ctx context.Context, actor, reason string) (string, error)
}

// artifact is the model version serving now: the registry's after a
// promotion or rollback, else the one the server started with.
func (s *Server) artifact() *triage.Artifact {
	if s.Registry != nil {
		if a := s.Registry.Serving(); a != nil {
			return a
		}
	}
	return s.Triage
}

type promoteRequest struct {
	Stage   string `json:"stage"`
	Percent int    `json:"percent,omitempty"`
	Reason  string `json:"reason"`
}

type rollbackRequest struct {
	Reason string `json:"reason"`
}

// actorOf is who is changing the model, for the registry's history (the
// audit event names the same caller).
func actorOf(r *http.Request) string {
	if a, ok := principalFrom(r.Context()); ok && a.err == nil {
		return a.p.ID
	}
	return "anonymous"
}

func (s *Server) handlePromote() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Registry == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "the model registry needs the store")
			return
		}
		if r.PathValue("name") != s.artifact().Manifest.Name {
			writeProblem(w, r, http.StatusNotFound, "no such model")
			return
		}
		var req promoteRequest
		if !decode(w, r, &req) {
			return
		}
		var probs []string
		switch req.Stage {
		case registry.StageShadow, registry.StageCanary, registry.StageProduction:
		default:
			probs = append(probs, "stage: one of shadow, canary, production")
		}
		if strings.TrimSpace(req.Reason) == "" {
			probs = append(probs, "reason: required (it goes into the audit trail)")
		}
		if req.Percent < 0 || req.Percent > 100 || (req.Percent != 0 && req.Stage != registry.StageCanary) {
			probs = append(probs, "percent: 0–100, for a canary only")
		}
		if len(probs) > 0 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", probs...)
			return
		}
		version := r.PathValue("version")
		noteReason(r.Context(), fmt.Sprintf("%s/%s to %s%s: %s", r.PathValue("name"), version, req.Stage, percentText(req), req.Reason))
		err := s.Registry.Promote(r.Context(), version, req.Stage, req.Percent, actorOf(r), req.Reason)
		var gerr *registry.GateError
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, map[string]any{"name": r.PathValue("name"), "version": version, "stage": req.Stage})
		case errors.Is(err, registry.ErrUnknownVersion):
			writeProblem(w, r, http.StatusNotFound, "no such version")
		case errors.As(err, &gerr):
			writeProblem(w, r, http.StatusUnprocessableEntity, "the version's validation report does not pass the gate; promotion refused", gerr.Failed...)
		default:
			writeProblem(w, r, http.StatusServiceUnavailable, "the promotion could not be made; the serving version is unchanged")
		}
	})
}

func (s *Server) handleRollback() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Registry == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "the model registry needs the store")
			return
		}
		if r.PathValue("name") != s.artifact().Manifest.Name {
			writeProblem(w, r, http.StatusNotFound, "no such model")
			return
		}
		var req rollbackRequest
		if !decode(w, r, &req) {
			return
		}
		if strings.TrimSpace(req.Reason) == "" {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", "reason: required (it goes into the audit trail)")
			return
		}
		from := s.artifact().Manifest.Version
		noteReason(r.Context(), "rollback from "+from+": "+req.Reason)
		to, err := s.Registry.Rollback(r.Context(), actorOf(r), req.Reason)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, map[string]any{"name": r.PathValue("name"), "from": from, "version": to})
		case errors.Is(err, registry.ErrNoRollback):
			writeProblem(w, r, http.StatusConflict, "no earlier validated version to roll back to; the serving version is unchanged")
		default:
			writeProblem(w, r, http.StatusServiceUnavailable, "the rollback could not be made; the serving version is unchanged")
		}
	})
}

func percentText(req promoteRequest) string {
	if req.Stage != registry.StageCanary {
		return ""
	}
	return fmt.Sprintf(" at %d %%", req.Percent)
}
