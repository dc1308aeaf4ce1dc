// Package registrytest makes model versions for tests of the registry and
// of what drives it: copies of a real model with a chosen verdict.
package registrytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// CopyVersion copies the model version in src (e.g. models/triage/1) to
// modelDir/<v>, with the manifest's version set to v and its gate verdict
// to pass. The other files keep their checksums, so the copy loads.
func CopyVersion(t testing.TB, src, modelDir, v string, pass bool) {
	t.Helper()
	dst := filepath.Join(modelDir, v)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "manifest.json" {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["version"] = v
			g, ok := m["gate"].(map[string]any)
			if !ok {
				t.Fatalf("%s: manifest without a gate", src)
			}
			g["pass"] = pass
			if pass {
				g["failed"] = []string{}
			}
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
