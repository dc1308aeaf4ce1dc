package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestModelCardContents(t *testing.T) {
	h := NewServer(loadDeps(t))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/models/triage/card", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	var c struct {
		Model struct {
			Files map[string]string `json:"files"`
		} `json:"model"`
		OutOfScope   []string `json:"out_of_scope_uses"`
		TrainingData struct {
			Source, Period, Population string
		} `json:"training_data"`
		Limitations []string `json:"limitations"`
		Validation  struct {
			Overall   map[string]json.RawMessage            `json:"overall"`
			Subgroups map[string]map[string]json.RawMessage `json:"subgroups"`
		} `json:"validation"`
		VersionHistory []struct{ Version, PromotedBy string } `json:"version_history"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	var sens struct{ Value, Lo, Hi float64 }
	if err := json.Unmarshal(c.Validation.Overall["sensitivity"], &sens); err != nil || !(sens.Lo <= sens.Value && sens.Value <= sens.Hi) || sens.Value == 0 {
		t.Errorf("overall sensitivity with its interval: %+v %v", sens, err)
	}
	if len(c.Validation.Subgroups) == 0 || len(c.Validation.Subgroups["age_band"]) < 2 {
		t.Errorf("subgroup figures missing: %v", c.Validation.Subgroups)
	}
	if c.TrainingData.Source == "" || c.TrainingData.Period == "" || c.TrainingData.Population == "" || len(c.OutOfScope) == 0 || len(c.Model.Files) == 0 {
		t.Errorf("card lacks training data, out-of-scope uses or file checksums: %s", w.Body.String()[:300])
	}
	gateNoted := false
	for _, l := range c.Limitations {
		gateNoted = gateNoted || strings.Contains(l, "did not pass the validation gate")
	}
	if !gateNoted {
		t.Error("the bundled model failed the gate, and the card's limitations must say so")
	}
	if len(c.VersionHistory) != 1 || c.VersionHistory[0].Version != "1" {
		t.Errorf("version history: %+v", c.VersionHistory)
	}
}
