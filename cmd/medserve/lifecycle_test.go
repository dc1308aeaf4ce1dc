package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"medserve/internal/registry/registrytest"
)

// copyModelVersion copies the bundled model to dir/triage/v with the
// given verdict.
func copyModelVersion(t *testing.T, dir, v string, pass bool) {
	t.Helper()
	registrytest.CopyVersion(t, filepath.Join(bundledModels, "triage", "1"), filepath.Join(dir, "triage"), v, pass)
}

// TestPromotionAndRollbackUnderLoad takes a new version through shadow,
// canary (50 %) and production, rolls it back and promotes it again while
// 8 clients query without pause: no request may fail, and the answers name
// the version that served them.
func TestPromotionAndRollbackUnderLoad(t *testing.T) {
	models := t.TempDir()
	copyModelVersion(t, models, "1", true)
	base, _, stop := startServerWith(t, serveConfig{dataDir: t.TempDir(), models: models, cacheMB: 0}, testEnv(nil))
	copyModelVersion(t, models, "2", true) // a new candidate arrives

	var failed, answered atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				resp, err := http.Post(base+"/api/v1/inference", "application/json", strings.NewReader(fmt.Sprintf(`{"query": "fever and cough %d"}`, i%11)))
				if err != nil {
					failed.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r struct {
					Model struct{ Version string } `json:"model"`
				}
				if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
					failed.Add(1)
					continue
				}
				answered.Add(1)
				mu.Lock()
				seen[r.Model.Version]++
				mu.Unlock()
			}
		}()
	}
	step := func(path, body, want string) {
		t.Helper()
		for answered.Load() < 50 {
			time.Sleep(time.Millisecond)
		}
		code, _, b := post(t, base+path, body)
		if code != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s", path, code, b)
		}
		answered.Store(0)
	}
	step("/api/v1/models/triage/versions/2/promote", `{"stage": "shadow", "reason": "watch it"}`, `"stage":"shadow"`)
	_, _, versions := do(t, "GET", base+"/api/v1/models/triage", "", "")
	_, _, metrics := do(t, "GET", base+"/metrics", "", "")
	if !strings.Contains(string(versions), `"shadow":{"version":"2"`) || !strings.Contains(string(metrics), `medserve_shadow_comparisons_total{result="compared"}`) {
		t.Errorf("the shadow's comparisons are not in the model status and the metrics:\n%.300s", versions)
	}
	step("/api/v1/models/triage/versions/2/promote", `{"stage": "canary", "percent": 50, "reason": "half the traffic"}`, `"stage":"canary"`)
	step("/api/v1/models/triage/versions/2/promote", `{"stage": "production", "reason": "new candidate"}`, `"version":"2"`)
	step("/api/v1/models/triage/rollback", `{"reason": "drill"}`, `"version":"1"`)
	step("/api/v1/models/triage/versions/2/promote", `{"stage": "production", "reason": "again"}`, `"version":"2"`)
	for answered.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	_, _, events := do(t, "GET", base+"/api/v1/audit?action=model.promote", "", "")
	if !strings.Contains(string(events), "triage/2 to canary at 50 %: half the traffic") {
		t.Errorf("a promotion's audit event must say who and why: %.400s", events)
	}
	close(done)
	wg.Wait()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 || seen["1"] == 0 || seen["2"] == 0 {
		t.Fatalf("%d failed requests; answers by version %v", failed.Load(), seen)
	}
	t.Logf("shadow, canary 50 %%, production, rollback, production under load: 0 failed requests; answers by version %v", seen)
}
