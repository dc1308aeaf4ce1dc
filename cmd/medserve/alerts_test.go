package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// answer is the part of an inference answer the alert scenario reads.
type answer struct {
	RequestID      string   `json:"request_id"`
	Acuity         int      `json:"acuity"`
	ReviewRequired bool     `json:"review_required"`
	ReviewReasons  []string `json:"review_reasons"`
	Model          struct {
		Version string `json:"version"`
	} `json:"model"`
}

func infer(t *testing.T, base, body string) answer {
	t.Helper()
	code, _, b := post(t, base+"/api/v1/inference", body)
	if code != http.StatusOK {
		t.Fatalf("inference: %d %s", code, b)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// webhookReceiver records the alert notifications it is sent.
type webhookReceiver struct {
	mu   sync.Mutex
	got  []map[string]any
	srv  *httptest.Server
	fail bool
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var n map[string]any
		if json.Unmarshal(b, &n) != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.got = append(w.got, n)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookReceiver) pages(rule string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, x := range w.got {
		if x["rule"] == rule && x["page"] == true && x["status"] == "firing" {
			n++
		}
	}
	return n
}

func (w *webhookReceiver) allPages() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, x := range w.got {
		if x["page"] == true {
			n++
		}
	}
	return n
}

// waitFor polls cond every 50 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
	return 0
}

// TestAlertScenario is SPEC section 11 end to end: clinicians' feedback
// drives version 2's sensitivity below 0.95 → the alert fires → production
// rolls back to version 1 → an incident exists with its report → new
// answers name version 1 and, under human oversight, all require review →
// an admin clears oversight and answers stop carrying the reason.
func TestAlertScenario(t *testing.T) {
	t.Parallel()
	models := t.TempDir()
	copyModelVersion(t, models, "1", true)
	hook := newWebhookReceiver(t)
	base, logs, stop := startServerWith(t, serveConfig{dataDir: t.TempDir(), models: models, cacheMB: 0,
		mon: monitorConfig{interval: 200 * time.Millisecond, minSamples: 30, webhook: hook.srv.URL}}, testEnv(nil))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("[%6.2fs] "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}
	copyModelVersion(t, models, "2", true)
	if code, _, b := post(t, base+"/api/v1/models/triage/versions/2/promote", `{"stage": "production", "reason": "new version"}`); code != 200 {
		t.Fatalf("promote: %d %s", code, b)
	}
	logf("version 2 promoted to production")

	// 40 answers from version 2; clinicians then report every answer
	// below urgent as truly acuity 2 (missed urgent patients) and the
	// urgent ones as right.
	complaints := []string{"sore throat for two days", "chest pain and shortness of breath", "mild ankle sprain", "cough, runny nose",
		"severe headache, vomiting", "rash on arm", "abdominal pain", "ear ache", "back pain after lifting", "fever and cough"}
	var missed, right int
	var answers []answer
	for i := 0; i < 40; i++ {
		// Normal vitals and a nurse's level 4 or 5 make the model answer
		// some of them non-urgent.
		a := infer(t, base, fmt.Sprintf(`{"query": %q, "patient": {"id": "MRN-A%d", "age": 30},
			"vitals": {"sbp": 124, "dbp": 78, "hr": 72, "rr": 14, "temp_c": 36.8, "spo2": 99, "pain": 1, "avpu": "alert"},
			"context": {"arrival_mode": "walk-in", "nurse_acuity": %d}}`, complaints[i%len(complaints)], i, 4+i%2))
		if a.Model.Version != "2" {
			t.Fatalf("answer %d from version %q, want 2", i, a.Model.Version)
		}
		answers = append(answers, a)
	}
	// Feedback arrives after the answers (the alert may act as soon as
	// 30 have come in).
	for _, a := range answers {
		truth := a.Acuity
		if a.Acuity >= 4 {
			truth, missed = 2, missed+1
		} else {
			right++
		}
		if code, _, b := post(t, base+"/api/v1/feedback", fmt.Sprintf(`{"request_id": %q, "true_acuity": %d, "disposition": "ward"}`, a.RequestID, truth)); code != 200 {
			t.Fatalf("feedback: %d %s", code, b)
		}
	}
	if missed < 3 {
		t.Fatalf("the scenario needs missed urgent patients: %d of 40 answers were acuity ≥ 4", missed)
	}
	logf("40 answers from version 2 and 40 feedbacks sent: %d urgent patients answered ≥ 4, %d right; sensitivity %d/%d", missed, right, right, right+missed)

	// The alert fires and production rolls back.
	type alertsBody struct {
		Alerts []struct {
			ID         int64             `json:"id"`
			Rule       string            `json:"rule"`
			State      string            `json:"state"`
			Labels     map[string]string `json:"labels"`
			Value      float64           `json:"value"`
			IncidentID *int64            `json:"incident_id"`
		} `json:"alerts"`
	}
	var sens struct {
		id, incident int64
		value        float64
	}
	took := waitFor(t, "SensitivityDegraded firing", func() bool {
		_, _, b := do(t, "GET", base+"/api/v1/alerts", "", "")
		var ab alertsBody
		_ = json.Unmarshal(b, &ab)
		for _, a := range ab.Alerts {
			if a.Rule == "SensitivityDegraded" && a.State != "pending" && a.IncidentID != nil {
				sens.id, sens.incident, sens.value = a.ID, *a.IncidentID, a.Value
				return true
			}
		}
		return false
	})
	logf("alert SensitivityDegraded #%d fired %.2fs after the last feedback: sensitivity %.3f < 0.95, incident #%d", sens.id, took.Seconds(), sens.value, sens.incident)

	oversight := func(a answer) bool {
		for _, r := range a.ReviewReasons {
			if strings.HasPrefix(r, "human oversight mode: ") {
				return a.ReviewRequired
			}
		}
		return false
	}
	// The alert is stored as firing (with its incident) before its
	// actions run: the rollback and oversight follow within moments.
	var a answer
	actedIn := waitFor(t, "answers from version 1 under human oversight", func() bool {
		a = infer(t, base, `{"query": "sore throat for two days"}`)
		return a.Model.Version == "1" && oversight(a)
	})
	logf("answers come from version 1 under oversight %.2fs after the alert was seen firing", actedIn.Seconds())
	logf("new answers: version %s, review_required %v, reasons %q", a.Model.Version, a.ReviewRequired, a.ReviewReasons)

	// The incident's report: what fired, the metrics, the actions, the versions.
	code, _, b := do(t, "GET", fmt.Sprintf("%s/api/v1/incidents/%d", base, sens.incident), "", "")
	var inc struct {
		Rule   string `json:"rule"`
		Status string `json:"status"`
		Report struct {
			Actions []struct {
				Action string `json:"action"`
				OK     bool   `json:"ok"`
				Detail string `json:"detail"`
			} `json:"actions"`
			Versions map[string]string `json:"model_versions"`
			Metrics  struct {
				Clinical []map[string]any `json:"clinical"`
			} `json:"metrics"`
		} `json:"report"`
	}
	if code != 200 || json.Unmarshal(b, &inc) != nil {
		t.Fatalf("incident: %d %s", code, b)
	}
	if inc.Rule != "SensitivityDegraded" || inc.Report.Versions["before"] != "triage/2" || inc.Report.Versions["after"] != "triage/1" || len(inc.Report.Metrics.Clinical) == 0 {
		t.Fatalf("incident report: %s", b)
	}
	var acted []string
	for _, x := range inc.Report.Actions {
		acted = append(acted, fmt.Sprintf("%s ok=%v (%s)", x.Action, x.OK, x.Detail))
	}
	joined := strings.Join(acted, "; ")
	if !strings.Contains(joined, "rollback ok=true") || !strings.Contains(joined, "oversight ok=true") || !strings.Contains(joined, "page ok=true") {
		t.Fatalf("incident actions: %s", joined)
	}
	logf("incident #%d report: versions %v; actions: %s", sens.incident, inc.Report.Versions, joined)
	if hook.pages("SensitivityDegraded") != 1 {
		t.Fatalf("the webhook got %d pages for SensitivityDegraded, want 1", hook.pages("SensitivityDegraded"))
	}
	// FNR, escalation and the safety score fail for the same version:
	// they join this incident rather than paging again.
	waitFor(t, "related alerts in the incident", func() bool {
		_, _, b := do(t, "GET", fmt.Sprintf("%s/api/v1/incidents/%d", base, sens.incident), "", "")
		return strings.Contains(string(b), `"related_alerts"`) && strings.Contains(string(b), `"rule":"FalseNegativeRateHigh"`)
	})
	if n := hook.allPages(); n != 1 {
		t.Fatalf("%d pages for one failing version, want 1", n)
	}
	_, _, b = do(t, "GET", base+"/api/v1/incidents", "", "")
	if n := strings.Count(string(b), `"id":`); n != 1 {
		t.Fatalf("%d incidents for one failing version, want 1: %s", n, b)
	}

	// Version 2 no longer serves: its alerts resolve; nothing fires twice.
	waitFor(t, "alert resolved", func() bool {
		_, _, b := do(t, "GET", base+"/api/v1/alerts?state=resolved", "", "")
		return strings.Contains(string(b), `"rule":"SensitivityDegraded"`)
	})
	_, _, b = do(t, "GET", base+"/api/v1/alerts", "", "")
	if n := strings.Count(string(b), `"rule":"SensitivityDegraded"`); n != 1 {
		t.Fatalf("SensitivityDegraded listed %d times (deduplication): %s", n, b)
	}
	logf("alert SensitivityDegraded resolved: version 2 no longer serves")

	// Oversight stays on until an admin clears it.
	time.Sleep(500 * time.Millisecond)
	if !oversight(infer(t, base, `{"query": "rash on arm"}`)) {
		t.Fatal("oversight ended without an admin")
	}
	code, _, b = do(t, "PUT", base+"/api/v1/modes/oversight", "", `{"enabled": false, "reason": "clinical lead reviewed version 1"}`, "Content-Type", "application/json")
	if code != 200 {
		t.Fatalf("clear oversight: %d %s", code, b)
	}
	if a := infer(t, base, `{"query": "rash on arm"}`); oversight(a) || a.Model.Version != "1" {
		t.Fatalf("after the admin cleared oversight: %+v", a)
	}
	logf("admin cleared oversight: answers no longer carry the oversight reason")
	code, _, b = do(t, "POST", fmt.Sprintf("%s/api/v1/incidents/%d/close", base, sens.incident), "", `{"reason": "rolled back to version 1; version 2 withdrawn"}`, "Content-Type", "application/json")
	if code != 200 || !strings.Contains(string(b), `"status":"closed"`) || !strings.Contains(string(b), "version 2 withdrawn") {
		t.Fatalf("close incident: %d %s", code, b)
	}
	logf("admin closed incident #%d", sens.incident)

	// The figures behind it are on /api/v1/monitoring and /metrics.
	_, _, b = do(t, "GET", base+"/api/v1/monitoring", "", "")
	if !strings.Contains(string(b), `"version":"triage/2","domain":"all"`) {
		t.Fatalf("monitoring: %.600s", b)
	}
	_, _, b = do(t, "GET", base+"/metrics", "", "")
	if !strings.Contains(string(b), `medserve_clinical_sensitivity{domain="all",version="triage/2"}`) {
		t.Fatalf("metrics lack the clinical figures")
	}
	if !strings.Contains(string(b), `medserve_model_info{family="gbt",model="triage",version="1"} 1`) || strings.Contains(string(b), `medserve_model_info{family="gbt",model="triage",version="2"}`) {
		t.Fatalf("medserve_model_info does not name the version in production after the rollback")
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "alert") {
			t.Log(line)
		}
	}
}

// TestInputDriftAlert: answers whose inputs no longer look like the
// training data (here: every patient 85 and hypoxic) raise the drift
// warning long before any feedback could.
func TestInputDriftAlert(t *testing.T) {
	t.Parallel()
	base, _, stop := startServerWith(t, serveConfig{dataDir: t.TempDir(), cacheMB: 0,
		mon: monitorConfig{interval: 200 * time.Millisecond, forOverride: "0s"}}, testEnv(nil))
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	for i := 0; i < 120; i++ {
		infer(t, base, fmt.Sprintf(`{"query": "short of breath %d", "patient": {"age": 85, "sex": "female"},
			"vitals": {"spo2": 86, "rr": 28, "hr": 110}, "context": {"arrival_mode": "ambulance"}}`, i))
	}
	var mon struct {
		Drift struct {
			Answers int                `json:"answers"`
			PSI     map[string]float64 `json:"psi"`
			Max     float64            `json:"max"`
			Feature string             `json:"feature"`
		} `json:"drift"`
	}
	waitFor(t, "InputDrift firing", func() bool {
		_, _, b := do(t, "GET", base+"/api/v1/alerts?state=firing", "", "")
		return strings.Contains(string(b), `"rule":"InputDrift"`)
	})
	// Every answer counted once the replicas' last counts are in.
	waitFor(t, "all 120 answers in the drift figures", func() bool {
		_, _, b := do(t, "GET", base+"/api/v1/monitoring", "", "")
		return json.Unmarshal(b, &mon) == nil && mon.Drift.Answers == 120
	})
	if mon.Drift.PSI["spo2"] <= 0.25 || mon.Drift.PSI["age"] <= 0.25 {
		t.Fatalf("drift figures: %+v", mon.Drift)
	}
	t.Logf("120 answers for 85-year-old hypoxic patients: PSI %v; largest %s %.2f; InputDrift firing", mon.Drift.PSI, mon.Drift.Feature, mon.Drift.Max)
}
