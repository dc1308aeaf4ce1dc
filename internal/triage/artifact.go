package triage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"time"

	"medserve/internal/model"
	"medserve/internal/validate"
)

// Manifest describes a saved model version (models/<name>/<version>/).
type Manifest struct {
	Name        string               `json:"name"`
	Version     string               `json:"version"`
	Family      string               `json:"family"`
	Created     string               `json:"created"`
	Features    FeatureSpec          `json:"features"`
	Labels      []string             `json:"labels"` // class index → acuity
	Policy      Policy               `json:"policy"`
	Train       TrainConfig          `json:"train"`
	DataSHA256  string               `json:"data_sha256"`
	DataRows    int                  `json:"data_rows"`
	Validation  map[string]any       `json:"validation"` // headline cross-validated figures and the gate
	Gate        *validate.GateResult `json:"gate,omitempty"`
	GateConfig  validate.GateConfig  `json:"gate_config"`
	Files       map[string]string    `json:"files"` // file name → SHA-256, every file but the manifest
	ModelParams int                  `json:"model_params"`
}

// ErrChecksum means a model file does not match its manifest: the version is
// refused.
var ErrChecksum = errors.New("model file checksum mismatch")

// Artifact is a loaded model version.
type Artifact struct {
	Dir      string
	Manifest Manifest
	Model    model.Model
}

// SaveArtifact writes the model, the extra files (reports) and a manifest
// carrying every file's SHA-256.
func SaveArtifact(dir string, m Manifest, mdl model.Model, extra map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	b, err := model.Marshal(mdl)
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	files := map[string][]byte{"model.json": b}
	for name, data := range extra {
		files[name] = data
	}
	m.Files = map[string]string{}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("save model: %w", err)
		}
		sum := sha256.Sum256(data)
		m.Files[name] = hex.EncodeToString(sum[:])
	}
	if m.Created == "" {
		m.Created = time.Now().UTC().Format(time.RFC3339)
	}
	m.ModelParams = mdl.Params()
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), append(mb, '\n'), 0o644)
}

// LoadArtifact reads a model version, refusing it when any file's checksum
// differs from the manifest or its feature space differs from spec.
func LoadArtifact(dir string, spec FeatureSpec) (*Artifact, error) {
	mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("load model %s: manifest: %w", dir, err)
	}
	if _, ok := m.Files["model.json"]; !ok {
		return nil, fmt.Errorf("load model %s: manifest lists no model.json", dir)
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var modelBytes []byte
	for _, name := range names {
		if filepath.Base(name) != name {
			return nil, fmt.Errorf("load model %s: file name %q", dir, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("load model %s: %w", dir, err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != m.Files[name] {
			return nil, fmt.Errorf("load model %s: %s: %w", dir, name, ErrChecksum)
		}
		if name == "model.json" {
			modelBytes = data
		}
	}
	if !reflect.DeepEqual(m.Features, spec) {
		return nil, fmt.Errorf("load model %s: trained on feature spec v%d, serving v%d (or a different layout)", dir, m.Features.Version, spec.Version)
	}
	mdl, err := model.Unmarshal(modelBytes)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	if mdl.Features() != spec.Dim() || mdl.Classes() != 5 {
		return nil, fmt.Errorf("load model %s: model has %d features and %d classes, want %d and 5", dir, mdl.Features(), mdl.Classes(), spec.Dim())
	}
	return &Artifact{Dir: dir, Manifest: m, Model: mdl}, nil
}
