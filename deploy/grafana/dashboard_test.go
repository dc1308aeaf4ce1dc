// Package grafana holds medserve's Grafana dashboard. Its test checks the
// dashboard JSON (every panel has a data source and queries, every query
// names only metrics medserve exports) and holds deploy/prometheus/rules.yml
// to the same list of metrics, since both are written against it.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// metricKind tells how a metric may be queried: a histogram only through
// its _bucket, _sum and _count series.
type metricKind int

const (
	gauge metricKind = iota
	counter
	histogram
)

// knownMetrics are the metrics medserve exports (internal/server/metrics.go,
// internal/monitor/prom.go, the Go and process collectors), plus ALERTS,
// which Prometheus writes for the rules.
var knownMetrics = map[string]metricKind{
	"medserve_http_request_duration_seconds":  histogram,
	"medserve_model_queue_seconds":            histogram,
	"medserve_model_compute_seconds":          histogram,
	"medserve_model_batch_size":               histogram,
	"medserve_cache_events_total":             counter,
	"medserve_cache_hit_rate":                 gauge,
	"medserve_clinical_accuracy":              gauge,
	"medserve_clinical_sensitivity":           gauge,
	"medserve_clinical_specificity":           gauge,
	"medserve_clinical_false_negative_rate":   gauge,
	"medserve_clinical_undertriage_rate":      gauge,
	"medserve_clinical_critical_miss_rate":    gauge,
	"medserve_clinical_escalation_accuracy":   gauge,
	"medserve_clinical_interaction_detection": gauge,
	"medserve_clinical_feedback_samples":      gauge,
	"medserve_clinical_red_flag_answers":      gauge,
	"medserve_safety_score":                   gauge,
	"medserve_compliance_score":               gauge,
	"medserve_input_drift_psi":                gauge,
	"medserve_cpu_utilization":                gauge,
	"medserve_oversight_mode":                 gauge,
	"medserve_compliance_mode":                gauge,
	"medserve_scale_up_requested":             gauge,
	"medserve_alerts":                         gauge,
	"medserve_rate_limited_total":             counter,
	"medserve_failures_total":                 counter,
	"medserve_audit_spool_backlog":            gauge,
	"process_resident_memory_bytes":           gauge,
	"process_cpu_seconds_total":               counter,
	"go_goroutines":                           gauge,
	"ALERTS":                                  gauge,
}

// mustShow are the figures the dashboard must chart (SPEC section 11).
var mustShow = []string{
	"medserve_http_request_duration_seconds", "medserve_model_queue_seconds", "medserve_model_compute_seconds",
	"medserve_cache_hit_rate", "medserve_clinical_accuracy", "medserve_clinical_sensitivity",
	"medserve_clinical_false_negative_rate", "medserve_clinical_critical_miss_rate",
	"medserve_clinical_escalation_accuracy", "medserve_clinical_feedback_samples", "medserve_safety_score",
	"medserve_compliance_score", "medserve_input_drift_psi", "process_resident_memory_bytes",
	"medserve_cpu_utilization", "go_goroutines", "medserve_rate_limited_total", "medserve_alerts", "ALERTS",
}

// metricName finds the metric names in a PromQL expression: medserve's own,
// the process and Go collectors', and ALERTS. Label names and values do not
// match (none starts with these prefixes followed by an underscore).
var metricName = regexp.MustCompile(`\b(?:medserve|process|go)_[a-z0-9_]+\b|\bALERTS\b`)

// templateVar finds Grafana variables in a query.
var templateVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// baseMetric maps a series name to its metric and reports whether the
// series may be queried: a histogram only by its three series.
func baseMetric(series string) (string, bool) {
	if k, ok := knownMetrics[series]; ok {
		return series, k != histogram
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && knownMetrics[base] == histogram {
			return base, true
		}
	}
	return "", false
}

// exprProblems returns what is wrong with the metrics of one expression,
// and the metrics it names.
func exprProblems(expr string) (problems, metrics []string) {
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		return []string{"names no medserve metric"}, nil
	}
	for _, n := range names {
		base, ok := baseMetric(n)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is not a metric medserve exports (or a histogram queried without _bucket/_sum/_count)", n))
			continue
		}
		metrics = append(metrics, base)
	}
	return problems, metrics
}

// panel is the part of a Grafana panel the test reads.
type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    *gridPos    `json:"gridPos"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a row's panels
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct {
	H, W, X, Y int
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	return &d
}

// flatten lists every panel, rows' nested panels included.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// datasourceVar returns the dashboard's Prometheus data source variable as
// it is referenced in panels: "${datasource}" or "${DS_PROMETHEUS}".
func datasourceVar(d *dashboard) string {
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			return "${" + v.Name + "}"
		}
	}
	for _, in := range d.Inputs {
		if in.Type == "datasource" && in.PluginID == "prometheus" {
			return "${" + in.Name + "}"
		}
	}
	return ""
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title != "medserve" {
		t.Errorf("uid %q, title %q: want a uid and the title medserve", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later", d.SchemaVersion)
	}
	dsVar := datasourceVar(d)
	if dsVar == "" {
		t.Fatal("no Prometheus data source variable (templating type datasource, or a DS_PROMETHEUS input)")
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}

	ids := map[int]string{}
	shown := map[string]bool{}
	for _, p := range flatten(d.Panels) {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", where, prev)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("%s: no title", where)
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != dsVar {
			t.Errorf("%s: datasource %+v, want prometheus %s", where, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: target refId %q missing or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != dsVar {
				t.Errorf("%s/%s: target datasource %+v, want %s", where, tg.RefID, tg.Datasource, dsVar)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s/%s: empty expr", where, tg.RefID)
				continue
			}
			problems, metrics := exprProblems(tg.Expr)
			for _, pr := range problems {
				t.Errorf("%s/%s: %s: %s", where, tg.RefID, pr, tg.Expr)
			}
			for _, m := range metrics {
				shown[m] = true
			}
			for _, v := range templateVar.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[v[1]] {
					t.Errorf("%s/%s: variable $%s is not defined", where, tg.RefID, v[1])
				}
			}
		}
	}
	for _, m := range mustShow {
		if !shown[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestExprProblems holds the metric-name check to what it must catch.
func TestExprProblems(t *testing.T) {
	cases := []struct {
		expr string
		ok   bool
	}{
		{`sum by (route) (rate(medserve_http_request_duration_seconds_count{job=~"$job"}[5m]))`, true},
		{`histogram_quantile(0.95, sum by (le) (rate(medserve_model_queue_seconds_bucket[5m])))`, true},
		{`ALERTS{service="medserve"}`, true},
		{`medserve_clinical_accuracy{domain="all"} and on (version, domain) medserve_clinical_feedback_samples >= 30`, true},
		{`medserve_clinical_acuracy`, false},                        // misspelt
		{`rate(medserve_http_request_duration_seconds[5m])`, false}, // a histogram's bare name is no series
		{`medserve_cache_hit_rate_bucket`, false},                   // a gauge has no buckets
		{`up{job="medserve"}`, false},                               // no medserve metric at all
		{`sum(rate(http_requests_total[5m]))`, false},
	}
	for _, c := range cases {
		problems, _ := exprProblems(c.expr)
		if (len(problems) == 0) != c.ok {
			t.Errorf("%s: problems %v, want ok=%v", c.expr, problems, c.ok)
		}
	}
}

// rulesFile is the part of a Prometheus rules file the test reads.
type rulesFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestRules holds deploy/prometheus/rules.yml to the metric list, and each
// alert to what Alertmanager routing and the runbook need. promtool checks
// the syntax and, with rules_test.yml, the behaviour (scripts/check-deploy).
func TestRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFile
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("rules.yml: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	clinical := regexp.MustCompile(`medserve_clinical_[a-z_]+`)
	// Feedback figures rest on feedback samples; the critical-symptom miss
	// rate is counted on answers and rests on red-flag answers.
	guard := regexp.MustCompile(`and on \(version, domain\)\s+max by \(version, domain\) \(medserve_clinical_(feedback_samples|red_flag_answers)\) >= 30`)
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert + r.Record
			alerts = append(alerts, r.Alert)
			problems, _ := exprProblems(r.Expr)
			for _, p := range problems {
				t.Errorf("%s: %s", where, p)
			}
			if r.Alert == "" {
				continue
			}
			if r.For == "" {
				t.Errorf("%s: no for:", where)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", where, s)
			}
			if r.Labels["service"] != "medserve" {
				t.Errorf("%s: want label service: medserve (the dashboard selects ALERTS by it)", where)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", where, a)
				}
			}
			if _, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#"); !anchors[anchor] {
				t.Errorf("%s: runbook_url %q: deploy/README.md has no heading \"### %s\"", where, r.Annotations["runbook_url"], r.Alert)
			}
			// Every clinical figure acts only on enough feedback.
			if uses := clinical.FindAllString(r.Expr, -1); len(slices.DeleteFunc(uses, func(s string) bool {
				return s == "medserve_clinical_feedback_samples" || s == "medserve_clinical_red_flag_answers"
			})) > 0 && !guard.MatchString(r.Expr) {
				t.Errorf("%s: a clinical rule without the 30-sample guard", where)
			}
		}
	}
	sort.Strings(alerts)
	want := []string{"AccuracyDegraded", "CPUHigh", "CacheHitRateLow", "ComplianceBelowTarget", "CriticalSymptomMissed",
		"DomainAccuracyDegraded", "EscalationAccuracyLow", "FalseNegativeRateHigh", "InputDrift", "InteractionDetectionLow",
		"MemoryHigh", "ResponseTimeCritical", "ResponseTimeWarning", "SafetyScoreLow", "SensitivityDegraded"}
	for _, w := range want {
		if _, found := slices.BinarySearch(alerts, w); !found {
			t.Errorf("rules.yml has no alert %s (SPEC section 11)", w)
		}
	}
}

// TestDashboardQueriesParse hands every dashboard query, its variables
// replaced by plain values, to promtool as a recording rule: a query
// Prometheus cannot parse fails here rather than as an empty panel.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found (Debian package prometheus)")
		}
		t.Skip("promtool not installed")
	}
	d := loadDashboard(t)
	replacer := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"$job", ".*", "$version", ".*", "$domain", ".*")
	var sb strings.Builder
	sb.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range flatten(d.Panels) {
		for _, tg := range p.Targets {
			expr, err := json.Marshal(replacer.Replace(tg.Expr)) // a JSON string is a YAML string
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sb, "      - record: dashboard:panel%d_%s\n        expr: %s\n", p.ID, strings.ToLower(tg.RefID), expr)
			n++
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the %d dashboard queries: %v\n%s", n, err, out)
	}
}
