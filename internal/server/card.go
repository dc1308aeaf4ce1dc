package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// cardFacts are the authored parts of a model card, kept beside the
// model's versions in models/<name>/card.json: what no metric can say.
type cardFacts struct {
	IntendedUse   string          `json:"intended_use"`
	IntendedUsers []string        `json:"intended_users"`
	OutOfScope    []string        `json:"out_of_scope_uses"`
	TrainingData  json.RawMessage `json:"training_data"`
	Limitations   []string        `json:"limitations"`
}

// validationReport is the part of a version's report.json the card shows:
// the data it was validated on and, for the shipped family, the figures of
// the serving mode (second reader), overall and by subgroup, with intervals.
type validationReport struct {
	Data     json.RawMessage `json:"data"`
	Chosen   string          `json:"chosen"`
	Families []struct {
		Family       string `json:"family"`
		SecondReader struct {
			Metrics   json.RawMessage `json:"metrics"`
			Subgroups json.RawMessage `json:"subgroups"`
			Gate      json.RawMessage `json:"gate"`
		} `json:"second_reader"`
	} `json:"families"`
}

type cardVersion struct {
	Version    string `json:"version"`
	Created    string `json:"created"`
	Stage      string `json:"stage"`
	PromotedBy string `json:"promoted_by"`
}

// modelCard follows the source attributes of the US certification rule for
// predictive decision support (ONC HTI-1): intended use and users, uses it
// must not serve, training data, validation overall and by subgroup with
// intervals, limitations, and version history.
type modelCard struct {
	Model struct {
		Name       string            `json:"name"`
		Version    string            `json:"version"`
		Family     string            `json:"family"`
		Created    string            `json:"created"`
		Parameters int               `json:"parameters"`
		Files      map[string]string `json:"files"`
	} `json:"model"`
	cardFacts
	Validation struct {
		Method    string          `json:"method"`
		Data      json.RawMessage `json:"data"`
		Mode      string          `json:"mode"`
		Overall   json.RawMessage `json:"overall"`
		Subgroups json.RawMessage `json:"subgroups"`
		Gate      json.RawMessage `json:"gate"`
	} `json:"validation"`
	VersionHistory []cardVersion `json:"version_history"`
}

// handleModelCard serves GET /api/v1/models/{name}/card.
func (s *Server) handleModelCard() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := s.artifact().Manifest
		if r.PathValue("name") != m.Name {
			writeProblem(w, r, http.StatusNotFound, "no such model")
			return
		}
		card, err := s.buildCard(r.Context())
		if err != nil {
			writeProblem(w, r, http.StatusInternalServerError, "the model card could not be assembled")
			return
		}
		writeJSON(w, http.StatusOK, card)
	})
}

func (s *Server) buildCard(ctx context.Context) (*modelCard, error) {
	art := s.artifact()
	m := art.Manifest
	var c modelCard
	c.Model.Name, c.Model.Version, c.Model.Family, c.Model.Created = m.Name, m.Version, m.Family, m.Created
	c.Model.Parameters, c.Model.Files = m.ModelParams, m.Files

	b, err := os.ReadFile(filepath.Join(filepath.Dir(art.Dir), "card.json"))
	if err != nil {
		return nil, fmt.Errorf("model card facts: %w", err)
	}
	if err := json.Unmarshal(b, &c.cardFacts); err != nil {
		return nil, fmt.Errorf("model card facts: %w", err)
	}
	if m.Gate != nil && !m.Gate.Pass {
		// The gate's verdict belongs with the limitations, where a reader
		// of the card looks for reasons not to rely on the model.
		c.Limitations = append(c.Limitations, "This version did not pass the validation gate (SPEC section 6): every answer carries review_required with \"model below validation thresholds\".")
	}

	b, err = os.ReadFile(filepath.Join(art.Dir, "report.json"))
	if err != nil {
		return nil, fmt.Errorf("model card report: %w", err)
	}
	var rep validationReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("model card report: %w", err)
	}
	c.Validation.Method = "stratified cross-validation on the development rows; every figure is out-of-fold (each row answered by a model fitted without it), with 95% bootstrap intervals"
	c.Validation.Data, c.Validation.Mode = rep.Data, "second-reader"
	for _, f := range rep.Families {
		if f.Family == rep.Chosen {
			c.Validation.Overall, c.Validation.Subgroups, c.Validation.Gate = f.SecondReader.Metrics, f.SecondReader.Subgroups, f.SecondReader.Gate
		}
	}
	if c.Validation.Overall == nil {
		return nil, fmt.Errorf("model card report: no figures for the chosen family %q", rep.Chosen)
	}
	// The registry's history: every change of stage, with who and when.
	if s.Registry != nil && s.Store != nil {
		hist, err := s.Store.Promotions(ctx, m.Name)
		if err != nil {
			return nil, fmt.Errorf("model card history: %w", err)
		}
		for _, p := range hist {
			c.VersionHistory = append(c.VersionHistory, cardVersion{Version: p.Version, Created: p.Time.UTC().Format(time.RFC3339),
				Stage: p.To, PromotedBy: p.Actor + ": " + p.Reason})
		}
	}
	if len(c.VersionHistory) == 0 {
		c.VersionHistory = []cardVersion{{Version: m.Version, Created: m.Created, Stage: "production", PromotedBy: "bundled with the release (no promotion recorded)"}}
	}
	return &c, nil
}

// versionInfo is one version of a model in GET /api/v1/models/{name}.
type versionInfo struct {
	Version    string          `json:"version"`
	State      string          `json:"state"` // production (serving), candidate
	Family     string          `json:"family"`
	Created    string          `json:"created"`
	Parameters int             `json:"parameters"`
	DataRows   int             `json:"data_rows"`
	Validation json.RawMessage `json:"validation"` // headline cross-validated figures
	Gate       json.RawMessage `json:"gate"`       // the gate's verdict and failed checks
}

// handleModelVersions serves GET /api/v1/models/{name}: every version in
// the model directory with its state and validation report. Manifests are
// read, not models: listing never loads weights.
func (s *Server) handleModelVersions() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := s.artifact().Manifest
		if r.PathValue("name") != m.Name {
			writeProblem(w, r, http.StatusNotFound, "no such model")
			return
		}
		dir := filepath.Dir(s.artifact().Dir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			writeProblem(w, r, http.StatusInternalServerError, "the model directory could not be read")
			return
		}
		// The store's stages where the registry keeps them.
		stages := map[string]string{}
		if s.Registry != nil && s.Store != nil {
			if recs, err := s.Store.Models(r.Context(), m.Name); err == nil {
				for _, rec := range recs {
					stages[rec.Version] = rec.Stage
				}
			}
		}
		versions := []versionInfo{}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name(), "manifest.json"))
			if err != nil {
				continue // not a version directory
			}
			var mf struct {
				Version     string          `json:"version"`
				Family      string          `json:"family"`
				Created     string          `json:"created"`
				ModelParams int             `json:"model_params"`
				DataRows    int             `json:"data_rows"`
				Validation  json.RawMessage `json:"validation"`
				Gate        json.RawMessage `json:"gate"`
			}
			if json.Unmarshal(b, &mf) != nil || mf.Version != e.Name() {
				continue
			}
			state := stages[mf.Version]
			if state == "" {
				state = "candidate"
			}
			if mf.Version == m.Version {
				state = "production"
			}
			versions = append(versions, versionInfo{Version: mf.Version, State: state, Family: mf.Family, Created: mf.Created,
				Parameters: mf.ModelParams, DataRows: mf.DataRows, Validation: orNull(mf.Validation), Gate: orNull(mf.Gate)})
		}
		out := map[string]any{"name": m.Name, "serving": m.Version, "versions": versions}
		if sh, ok := s.Pipeline.Shadow(); ok {
			out["shadow"] = sh
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func orNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}
