package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"medserve/internal/audit"
	"medserve/internal/pipeline"
	"medserve/internal/record"
	"medserve/internal/store"
)

// Recorder makes a request's query records and audit events durable.
type Recorder interface {
	Record(ctx context.Context, e record.Entry) error
	Sync(ctx context.Context) error // wait until what was recorded is in the store
}

// auditNote collects what a handler did with clinical data, for the audit
// entry the audited middleware writes when the handler is done.
type auditNote struct {
	mu      sync.Mutex
	queries []store.QueryRecord
	events  []audit.Event
	patient string // pseudonym of the patient the request concerned
	reqID   string
	actor   string // the authenticated caller; "" = anonymous
	role    string
	reason  string // why, when the caller gave one (a model change)
}

type noteKey struct{}

func noteFrom(ctx context.Context) *auditNote {
	n, _ := ctx.Value(noteKey{}).(*auditNote)
	return n
}

// bufferedWriter holds a handler's response until its audit entry is durable.
type bufferedWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.h }
func (b *bufferedWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// outcome maps an HTTP status to the audit outcome (the compliance status).
func outcome(status int) string {
	switch {
	case status < 400:
		return audit.OutcomeOK
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return audit.OutcomeDenied
	}
	return audit.OutcomeError
}

// audited writes one audit entry for every request to h before any of its
// response leaves the server: an answer is never disclosed, nor reported,
// unless the record of it is durable. When the entry cannot be made durable
// the client gets a 503 and nothing else (SPEC section 11's compliance
// mode refuses what cannot be audited).
//
// A successful request keeps the events and query records the handler
// noted (one per patient answered); any other outcome is one event with
// the status as its reason, and no query records, since no answer left.
func (s *Server) audited(action string, h http.Handler) http.Handler {
	if s.Recorder == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now().UTC()
		note := &auditNote{}
		bw := &bufferedWriter{h: w.Header()}
		h.ServeHTTP(bw, r.WithContext(context.WithValue(r.Context(), noteKey{}, note)))
		if bw.status == 0 {
			bw.status = http.StatusOK
		}
		out := outcome(bw.status)
		note.mu.Lock()
		actor, role := note.actor, note.role
		note.mu.Unlock()
		if actor == "" {
			actor = "anonymous"
		}
		base := audit.Event{Time: start, Actor: actor, Role: role, Action: action, Resource: r.URL.Path, Outcome: out}
		var e record.Entry
		if out == audit.OutcomeOK && len(note.events) > 0 {
			e.Queries = note.queries
			for _, ev := range note.events {
				ev.Time, ev.Actor, ev.Role, ev.Outcome, ev.Resource = base.Time, base.Actor, base.Role, out, base.Resource
				if ev.Action == "" {
					ev.Action = action
				}
				e.Events = append(e.Events, ev)
			}
		} else {
			ev := base
			ev.Patient, ev.RequestID, ev.Reason = note.patient, note.reqID, note.reason
			if ev.RequestID == "" {
				ev.RequestID = newID()
			}
			if out != audit.OutcomeOK {
				ev.Reason = strconv.Itoa(bw.status) + " " + http.StatusText(bw.status)
			}
			e.Events = []audit.Event{ev}
		}
		err := s.Recorder.Record(r.Context(), e)
		if err == nil && s.Modes != nil && s.Modes.Compliance() {
			// Compliance mode: the local spool is not enough, the event
			// must be in the store before the answer leaves.
			err = s.Recorder.Sync(r.Context())
		}
		if err != nil {
			s.metrics.Failures.WithLabelValues("audit", "unrecorded").Inc()
			for k := range w.Header() {
				delete(w.Header(), k)
			}
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, http.StatusServiceUnavailable, "the request could not be recorded in the audit trail, so no answer is given; retry shortly")
			return
		}
		w.WriteHeader(bw.status)
		_, _ = w.Write(bw.body.Bytes())
	})
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pseudonym is the patient's keyed pseudonym, "" when no id was given.
func (s *Server) pseudonym(id string) string {
	if s.PHI == nil || strings.TrimSpace(id) == "" {
		return ""
	}
	return s.PHI.Pseudonym(id)
}

// storedFinding is what the store keeps of a finding: codes and context,
// never the text span, which is the patient's own words.
type storedFinding struct {
	Code         string `json:"code"`
	Type         string `json:"type"`
	Negated      bool   `json:"negated"`
	Possible     bool   `json:"possible,omitempty"`
	Historical   bool   `json:"historical,omitempty"`
	Hypothetical bool   `json:"hypothetical,omitempty"`
	Family       bool   `json:"family,omitempty"`
}

type storedCandidate struct {
	Condition   string  `json:"condition"`
	ICD10       string  `json:"icd10"`
	Probability float64 `json:"probability"`
}

// sealedQuery is the free text of a query as sealed at rest.
type sealedQuery struct {
	Query       string   `json:"query"`
	Medications []string `json:"medications,omitempty"`
}

// Associated data binds each sealed value to its column and row, so a
// ciphertext copied into another row or column does not open.
func adText(requestID string) string    { return "queries.text_sealed:" + requestID }
func adPatient(requestID string) string { return "queries.patient_sealed:" + requestID }

// noteAnswer records, for the audit entry, that req was answered with resp.
func (s *Server) noteAnswer(ctx context.Context, action string, req *pipeline.Request, resp *pipeline.Response) {
	note := noteFrom(ctx)
	if note == nil || s.PHI == nil {
		return
	}
	q := store.QueryRecord{
		RequestID:         resp.RequestID,
		PatientPseudonym:  s.pseudonym(req.Patient.ID),
		Time:              time.Now().UTC(),
		Domain:            string(resp.Domain),
		Urgency:           string(resp.Urgency),
		Acuity:            resp.Acuity,
		Confidence:        resp.Probabilities[strconv.Itoa(resp.Acuity)],
		ResponseMS:        resp.TimingMS["total"],
		ModelVersion:      resp.Model.Name + "/" + resp.Model.Version,
		CacheHit:          resp.Cache.Hit,
		InteractionAlerts: len(resp.Interactions),
	}
	fs := make([]storedFinding, 0, len(resp.Findings))
	for _, f := range resp.Findings {
		fs = append(fs, storedFinding{Code: f.Code, Type: string(f.Type), Negated: f.Negated, Possible: f.Possible, Historical: f.Historical, Hypothetical: f.Hypothetical, Family: f.Family})
	}
	b, _ := json.Marshal(fs)
	q.FindingsJSON = string(b)
	cs := make([]storedCandidate, 0, len(resp.Differential))
	for _, c := range resp.Differential {
		cs = append(cs, storedCandidate{Condition: c.Condition, ICD10: c.ICD10, Probability: c.Probability})
	}
	b, _ = json.Marshal(cs)
	q.DifferentialJSON = string(b)
	if s.QueryHash != nil {
		q.QueryHash = s.QueryHash("query/v1", strings.ToLower(strings.Join(strings.Fields(req.Query), " ")))
	}
	b, _ = json.Marshal(sealedQuery{Query: req.Query, Medications: req.Medications})
	var err error
	if q.TextSealed, err = s.PHI.Seal(b, adText(q.RequestID)); err != nil {
		q.TextSealed = "" // a random-source failure; the answer still counts
	}
	if req.Patient.ID != "" {
		q.PatientSealed, _ = s.PHI.Seal([]byte(strings.TrimSpace(req.Patient.ID)), adPatient(q.RequestID))
	}
	note.mu.Lock()
	defer note.mu.Unlock()
	note.queries = append(note.queries, q)
	note.events = append(note.events, audit.Event{Action: action, Patient: q.PatientPseudonym, RequestID: q.RequestID})
}

// noteReason records why the caller made a change, for its audit event.
func noteReason(ctx context.Context, why string) {
	if note := noteFrom(ctx); note != nil {
		note.mu.Lock()
		note.reason = why
		note.mu.Unlock()
	}
}

// notePatient names the patient and request an audited request concerned.
func notePatient(ctx context.Context, pseudonym, requestID string) {
	if note := noteFrom(ctx); note != nil {
		note.mu.Lock()
		note.patient, note.reqID = pseudonym, requestID
		note.mu.Unlock()
	}
}

// historyRequest is POST /api/v1/patients/history: the identifier travels
// in the body, never in a URL, where proxies and access logs keep it.
type historyRequest struct {
	PatientID string `json:"patient_id"`
	Limit     int    `json:"limit,omitempty"`
}

type historyQuery struct {
	RequestID    string          `json:"request_id"`
	Time         time.Time       `json:"time"`
	Domain       string          `json:"domain"`
	Urgency      string          `json:"urgency"`
	Acuity       int             `json:"acuity"`
	Confidence   float64         `json:"confidence"`
	Findings     json.RawMessage `json:"findings"`
	Differential json.RawMessage `json:"differential"`
	ModelVersion string          `json:"model_version"`
	CacheHit     bool            `json:"cache_hit"`
	ResponseMS   float64         `json:"response_ms"`
	Query        string          `json:"query"`
	Medications  []string        `json:"medications"`
}

type historySummary struct {
	Queries          int        `json:"queries"`
	LastVisit        *time.Time `json:"last_visit"`
	MostUrgentAcuity int        `json:"most_urgent_acuity"`
	Domains          []string   `json:"domains"`
}

type historyResponse struct {
	Patient string         `json:"patient"` // the pseudonym under the current key
	Summary historySummary `json:"summary"`
	Queries []historyQuery `json:"queries"`
}

// maxHistory bounds one history answer.
const maxHistory = 1000

func (s *Server) handleHistory() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Store == nil || s.PHI == nil {
			writeProblem(w, r, http.StatusServiceUnavailable, "patient history needs the store")
			return
		}
		var req historyRequest
		if !decode(w, r, &req) {
			return
		}
		var probs []string
		if strings.TrimSpace(req.PatientID) == "" {
			probs = append(probs, "patient_id: required")
		} else if len(req.PatientID) > 256 {
			probs = append(probs, "patient_id: longer than 256 bytes")
		}
		if req.Limit < 0 || req.Limit > maxHistory {
			probs = append(probs, "limit: outside 0–1000")
		}
		if len(probs) > 0 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", probs...)
			return
		}
		limit := req.Limit
		if limit == 0 {
			limit = 100
		}
		pseuds := s.PHI.Pseudonyms(req.PatientID)
		reqID := newID()
		notePatient(r.Context(), pseuds[0], reqID)
		// Read your writes: a query answered a moment ago is still in the
		// spool; wait briefly for the flusher rather than show a stale list.
		if s.Recorder != nil {
			sctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			_ = s.Recorder.Sync(sctx)
			cancel()
		}
		recs, err := s.Store.PatientHistory(r.Context(), pseuds, limit)
		if err != nil {
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, http.StatusServiceUnavailable, "the store is unavailable")
			return
		}
		sum, err := s.Store.PatientSummary(r.Context(), pseuds)
		if err != nil {
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, http.StatusServiceUnavailable, "the store is unavailable")
			return
		}
		resp := historyResponse{Patient: pseuds[0], Queries: make([]historyQuery, 0, len(recs)),
			Summary: historySummary{Queries: sum.Queries, MostUrgentAcuity: sum.MostUrgentAcuity, Domains: sum.Domains}}
		if resp.Summary.Domains == nil {
			resp.Summary.Domains = []string{}
		}
		if !sum.LastVisit.IsZero() {
			lv := sum.LastVisit
			resp.Summary.LastVisit = &lv
		}
		for _, q := range recs {
			hq := historyQuery{RequestID: q.RequestID, Time: q.Time, Domain: q.Domain, Urgency: q.Urgency, Acuity: q.Acuity,
				Confidence: q.Confidence, Findings: rawOr(q.FindingsJSON), Differential: rawOr(q.DifferentialJSON),
				ModelVersion: q.ModelVersion, CacheHit: q.CacheHit, ResponseMS: q.ResponseMS, Medications: []string{}}
			if q.TextSealed != "" {
				var sq sealedQuery
				if b, err := s.PHI.Open(q.TextSealed, adText(q.RequestID)); err == nil && json.Unmarshal(b, &sq) == nil {
					hq.Query = sq.Query
					if sq.Medications != nil {
						hq.Medications = sq.Medications
					}
				}
			}
			resp.Queries = append(resp.Queries, hq)
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func rawOr(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("[]")
	}
	return json.RawMessage(s)
}

// auditSearch is POST /api/v1/audit/search; GET /api/v1/audit takes the
// same fields as query parameters, with the patient only as a pseudonym.
type auditSearch struct {
	PatientID string `json:"patient_id,omitempty"`
	Patient   string `json:"patient,omitempty"` // a pseudonym
	Actor     string `json:"actor,omitempty"`
	Action    string `json:"action,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Outcome   string `json:"outcome,omitempty"`
	From      string `json:"from,omitempty"` // RFC 3339
	To        string `json:"to,omitempty"`
	After     int64  `json:"after,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

type auditResponse struct {
	Events []audit.Event `json:"events"`
	// Next is the After that continues the listing; 0 when this page was the last.
	Next int64 `json:"next"`
}

func (s *Server) handleAuditGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for k := range q {
			switch k {
			case "patient", "actor", "action", "request_id", "outcome", "from", "to", "after", "limit":
			case "patient_id":
				writeProblem(w, r, http.StatusBadRequest, "invalid request", "patient_id: a patient identifier must not go in a URL; POST it to /api/v1/audit/search, or give its pseudonym as patient")
				return
			default:
				writeProblem(w, r, http.StatusBadRequest, "invalid request", k+": unknown parameter")
				return
			}
		}
		as := auditSearch{Patient: q.Get("patient"), Actor: q.Get("actor"), Action: q.Get("action"), RequestID: q.Get("request_id"),
			Outcome: q.Get("outcome"), From: q.Get("from"), To: q.Get("to")}
		var probs []string
		if v := q.Get("after"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				probs = append(probs, "after: not an integer")
			}
			as.After = n
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				probs = append(probs, "limit: not an integer")
			}
			as.Limit = n
		}
		if len(probs) > 0 {
			writeProblem(w, r, http.StatusBadRequest, "invalid request", probs...)
			return
		}
		s.answerAudit(w, r, as)
	})
}

func (s *Server) handleAuditSearch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as auditSearch
		if !decode(w, r, &as) {
			return
		}
		s.answerAudit(w, r, as)
	})
}

// maxAuditPage bounds one page of audit events.
const maxAuditPage = 1000

func (s *Server) answerAudit(w http.ResponseWriter, r *http.Request, as auditSearch) {
	if s.Store == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "the audit trail needs the store")
		return
	}
	f := store.AuditFilter{Actor: as.Actor, Action: as.Action, RequestID: as.RequestID, Outcome: as.Outcome, AfterSeq: as.After, Limit: as.Limit}
	var probs []string
	parseTime := func(name, v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			probs = append(probs, name+": not an RFC 3339 time")
		}
		return t
	}
	f.From, f.To = parseTime("from", as.From), parseTime("to", as.To)
	switch as.Outcome {
	case "", audit.OutcomeOK, audit.OutcomeDenied, audit.OutcomeError:
	default:
		probs = append(probs, "outcome: not ok, denied or error")
	}
	if as.Limit < 0 || as.Limit > maxAuditPage {
		probs = append(probs, "limit: outside 0–1000")
	}
	if as.After < 0 {
		probs = append(probs, "after: negative")
	}
	if as.PatientID != "" && as.Patient != "" {
		probs = append(probs, "patient_id, patient: give one")
	}
	if len(probs) > 0 {
		writeProblem(w, r, http.StatusBadRequest, "invalid request", probs...)
		return
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	switch {
	case as.PatientID != "" && s.PHI != nil:
		f.Patients = s.PHI.Pseudonyms(as.PatientID)
	case as.PatientID != "":
		writeProblem(w, r, http.StatusServiceUnavailable, "patient filters need the PHI key")
		return
	case as.Patient != "":
		f.Patients = []string{as.Patient}
	}
	if len(f.Patients) > 0 {
		notePatient(r.Context(), f.Patients[0], "")
	}
	if s.Recorder != nil {
		sctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		_ = s.Recorder.Sync(sctx)
		cancel()
	}
	evs, err := s.Store.AuditEvents(r.Context(), f)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, "the store is unavailable")
		return
	}
	resp := auditResponse{Events: evs}
	if resp.Events == nil {
		resp.Events = []audit.Event{}
	}
	if len(evs) == f.Limit {
		resp.Next = evs[len(evs)-1].Seq
	}
	writeJSON(w, http.StatusOK, resp)
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// auditDenials audits only the refusals (401, 403) of a route that touches
// no clinical data, so that every denial is in the trail without an event
// per metadata read.
func (s *Server) auditDenials(route string, h http.Handler) http.Handler {
	if s.Recorder == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now().UTC()
		note := &auditNote{}
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), noteKey{}, note)))
		if sw.status != http.StatusUnauthorized && sw.status != http.StatusForbidden {
			return
		}
		note.mu.Lock()
		actor, role := note.actor, note.role
		note.mu.Unlock()
		if actor == "" {
			actor = "anonymous"
		}
		ev := audit.Event{Time: start, Actor: actor, Role: role, Action: "access " + route, Resource: r.URL.Path,
			RequestID: newID(), Outcome: audit.OutcomeDenied, Reason: strconv.Itoa(sw.status) + " " + http.StatusText(sw.status)}
		if err := s.Recorder.Record(r.Context(), record.Entry{Events: []audit.Event{ev}}); err != nil {
			s.metrics.Failures.WithLabelValues("audit", "unrecorded").Inc()
		}
	})
}
