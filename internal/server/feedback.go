package server

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"medserve/internal/store"
)

// feedbackRequest is POST /api/v1/feedback: a clinician's ground truth for
// an answered request, joined to the stored query.
type feedbackRequest struct {
	RequestID              string   `json:"request_id"`
	TrueAcuity             int      `json:"true_acuity"`
	ConfirmedDiagnosis     string   `json:"confirmed_diagnosis,omitempty"`
	Disposition            string   `json:"disposition,omitempty"`
	TreatmentEffectiveness *float64 `json:"treatment_effectiveness,omitempty"`
	// InteractionConfirmed: the patient had a clinically relevant drug
	// interaction (true) or had none (false); the answer's alerts are
	// measured against it.
	InteractionConfirmed *bool  `json:"interaction_confirmed,omitempty"`
	Comment              string `json:"comment,omitempty"`
}

func (f *feedbackRequest) problems() []string {
	var p []string
	if strings.TrimSpace(f.RequestID) == "" || len(f.RequestID) > 128 {
		p = append(p, "request_id: required, at most 128 bytes")
	}
	if f.TrueAcuity < 1 || f.TrueAcuity > 5 {
		p = append(p, "true_acuity: 1–5 (KTAS level the clinician confirmed)")
	}
	if len(f.ConfirmedDiagnosis) > 64 {
		p = append(p, "confirmed_diagnosis: at most 64 bytes (an ICD-10 code)")
	}
	switch f.Disposition {
	case "", "discharged", "ward", "icu", "transfer", "died":
	default:
		p = append(p, "disposition: discharged, ward, icu, transfer or died")
	}
	if e := f.TreatmentEffectiveness; e != nil && (math.IsNaN(*e) || *e < 0 || *e > 1) {
		p = append(p, "treatment_effectiveness: 0–1")
	}
	if len(f.Comment) > 4096 || !utf8.ValidString(f.Comment) {
		p = append(p, "comment: at most 4 KiB of UTF-8")
	}
	return p
}

// adComment binds a sealed feedback comment to its row.
func adComment(requestID string) string { return "feedback.comment:" + requestID }

func (s *Server) handleFeedback() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Store == nil || s.PHI == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "feedback needs the store")
			return
		}
		var req feedbackRequest
		if !decode(w, r, &req) {
			return
		}
		if p := req.problems(); len(p) > 0 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", p...)
			return
		}
		notePatient(r.Context(), "", req.RequestID)
		f := store.Feedback{RequestID: req.RequestID, TrueAcuity: req.TrueAcuity, ConfirmedDiagnosis: req.ConfirmedDiagnosis,
			Disposition: req.Disposition, TreatmentEffectiveness: req.TreatmentEffectiveness,
			InteractionConfirmed: req.InteractionConfirmed, Time: time.Now().UTC()}
		if req.Comment != "" {
			// Free text from a clinician may name the patient: sealed at rest.
			sealed, err := s.PHI.Seal([]byte(req.Comment), adComment(req.RequestID))
			if err != nil {
				writeProblem(w, r, http.StatusServiceUnavailable, "the comment could not be sealed")
				return
			}
			f.Comment = sealed
		}
		// The answer may still be in the audit spool: wait for it briefly.
		if s.Recorder != nil {
			sctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			_ = s.Recorder.Sync(sctx)
			cancel()
		}
		err := s.Store.SaveFeedback(r.Context(), f)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, map[string]any{"request_id": req.RequestID, "stored": true})
		case errors.Is(err, store.ErrNotFound):
			writeProblem(w, r, http.StatusNotFound, "no stored answer with that request_id")
		default:
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, http.StatusServiceUnavailable, "the store is unavailable")
		}
	})
}
