package triage

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"medserve/internal/model"
	"medserve/internal/validate"
)

func TestLevelFor(t *testing.T) {
	tests := []struct {
		p          []float64
		tau3, tau2 float64
		want       int
	}{
		{[]float64{0.05, 0.1, 0.2, 0.5, 0.15}, 0.5, 0.5, 4}, // P(≤3) .35 < .5
		{[]float64{0.05, 0.1, 0.2, 0.5, 0.15}, 0.3, 0.5, 3}, // P(≤3) .35 ≥ .3: moved to the emergency side
		{[]float64{0.05, 0.1, 0.2, 0.5, 0.15}, 0.3, 0.1, 2}, // P(≤2) .15 ≥ .1
		{[]float64{0.0, 0.05, 0.45, 0.1, 0.4}, 0.6, 0.5, 5}, // argmax 3 but P(≤3) .5 < .6: best non-emergency level
		{[]float64{0.7, 0.1, 0.1, 0.05, 0.05}, 0.5, 0.5, 1}, // argmax 1 stays 1
	}
	for _, tt := range tests {
		if got := levelFor(tt.p, tt.tau3, tt.tau2); got != tt.want {
			t.Errorf("levelFor(%v, %v, %v) = %d, want %d", tt.p, tt.tau3, tt.tau2, got, tt.want)
		}
	}
}

func TestDecideSecondReader(t *testing.T) {
	pol := Policy{Tau3: 0.5, Tau2: 0.5, TauSR3: 0.3, TauSR5: 0.6, TauSR2: 0.5}
	calm := []float64{0.01, 0.04, 0.1, 0.6, 0.25}   // P(≤3) .15
	worried := []float64{0.05, 0.15, 0.2, 0.4, 0.2} // P(≤3) .40
	noFloor := Floor{Acuity: 5}
	// The nurse's level stands when nobody finds the patient more urgent.
	if d := pol.Decide(calm, noFloor, 4); d.Acuity != 4 || d.Review || len(d.Reasons) != 0 {
		t.Errorf("calm, nurse 4: %+v", d)
	}
	// A more urgent nurse is never overruled towards less urgency.
	if d := pol.Decide(calm, noFloor, 2); d.Acuity != 2 || d.Review {
		t.Errorf("calm, nurse 2: %+v", d)
	}
	// The model flags under-triage across the emergency boundary, with
	// review.
	if d := pol.Decide(worried, noFloor, 4); d.Acuity != 3 || !d.Review || !slices.Contains(d.Reasons, "possible under-triage") {
		t.Errorf("worried, nurse 4: %+v", d)
	}
	// A nurse's 5 takes stronger evidence to cross into emergency (τ 0.6 >
	// 0.40); the model's view of 4 versus 5 does not interrupt the nurse.
	if d := pol.Decide(worried, noFloor, 5); d.Acuity != 5 || d.Review {
		t.Errorf("worried, nurse 5: %+v", d)
	}
	// The floor applies in full, in both modes.
	fl := Floor{Acuity: 2, Reasons: []string{"SBP < 90"}}
	if d := pol.Decide(calm, fl, 5); d.Acuity != 2 || !d.Review {
		t.Errorf("floor 2, nurse 5: %+v", d)
	}
	if d := pol.Decide(calm, fl, 0); d.Acuity != 2 || d.ModelAcuity != 4 || !d.Review {
		t.Errorf("floor 2, model alone: %+v", d)
	}
}

func TestTunePolicyReachesTarget(t *testing.T) {
	// Synthetic out-of-fold probabilities: emergencies tend to score higher.
	var ex []Example
	var probs [][]float64
	for i := 0; i < 400; i++ {
		expert := 1 + i%5
		p3 := 0.2 + 0.15*float64(5-expert) + 0.1*float64(i%7)/7
		p := []float64{p3 * 0.1, p3 * 0.3, p3 * 0.6, (1 - p3) * 0.7, (1 - p3) * 0.3}
		nurse := expert
		if i%9 == 0 && expert < 5 {
			nurse = expert + 1 // under-triaged by the nurse
		}
		ex = append(ex, Example{Floor: 5, Nurse: nurse, Expert: expert})
		probs = append(probs, p)
	}
	pol := TunePolicy(ex, probs, 0.95, 0.9, 0.9)
	var alone, second validate.Binary
	for i, e := range ex {
		alone.Add(e.Expert <= 3, pol.Decide(probs[i], Floor{Acuity: 5}, 0).Acuity <= 3)
		second.Add(e.Expert <= 3, pol.Decide(probs[i], Floor{Acuity: 5}, e.Nurse).Acuity <= 3)
	}
	if alone.Recall() < 0.95 || second.Recall() < 0.95 {
		t.Errorf("tuned sensitivity alone %.3f, second reader %.3f; want ≥ 0.95", alone.Recall(), second.Recall())
	}
}

func TestArtifactRefusesChangedFiles(t *testing.T) {
	d := model.Dataset{Features: 8, Classes: 5}
	for i := 0; i < 50; i++ {
		d.X = append(d.X, model.Row{Idx: []int32{int32(i % 8)}, Val: []float32{1}})
		d.Y = append(d.Y, i%5)
	}
	m, err := model.TrainLogReg(d, model.LogRegConfig{Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	spec := FeatureSpec{Version: 1, HashBits: 2, Dense: []string{"a", "b", "c", "d"}}
	dir := t.TempDir()
	if err := SaveArtifact(dir, Manifest{Name: "triage", Version: "1", Family: "logreg", Features: spec}, m, map[string][]byte{"report.md": []byte("# r\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadArtifact(dir, spec); err != nil {
		t.Fatalf("load: %v", err)
	}
	other := spec
	other.Version = 2
	if _, err := LoadArtifact(dir, other); err == nil {
		t.Error("a different feature spec was accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte("# tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadArtifact(dir, spec); err == nil {
		t.Error("a changed file was accepted")
	}
}
