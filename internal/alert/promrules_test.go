package alert

import (
	"os"
	"regexp"
	"testing"
)

// TestPrometheusRulesMirrorTheEngine: every rule the engine acts on is
// also in deploy/prometheus/rules.yml under the same name, so what pages
// from Prometheus and what the engine does can be matched up.
func TestPrometheusRulesMirrorTheEngine(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range DefaultRules() {
		if !regexp.MustCompile(`(?m)^\s*- alert: ` + regexp.QuoteMeta(r.Name) + `\s*$`).Match(b) {
			t.Errorf("rule %s is not in deploy/prometheus/rules.yml", r.Name)
		}
	}
}
