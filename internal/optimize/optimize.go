// Package optimize makes a trained triage model smaller or faster — int8
// quantization, pruning, distillation — and judges every candidate the way
// its parent was judged: the optimization is redone inside each of the
// parent's cross-validation folds (same folds, seeds and decision-policy
// tuning as `medserve train triage`), so candidate and parent are scored on
// rows neither trained on, through the same validation gate, together with
// accuracy retention and agreement with the parent. Size and speed are
// measured (heap retained by loading, testing.Benchmark), never assumed.
package optimize

import (
	"fmt"
	"io"
	goruntime "runtime"
	"slices"
	"sync"

	"medserve/internal/validate"
)

// Config configures Run. DefaultConfig holds the shipped values.
type Config struct {
	Methods []string `json:"methods"`
	// Folds is the number of outer cross-validation folds: the parent's
	// validation used 5.
	Folds     int `json:"folds"`
	Bootstrap int `json:"bootstrap"` // resamples behind the 95 % intervals
	// Gate is the parent's gate configuration (its manifest's).
	Gate validate.GateConfig `json:"gate"`
	// MinRetention and MinAgreement are the optimization-specific pass
	// thresholds (SPEC section 6): accuracy retention and agreement with
	// the parent's final acuity, both in second-reader mode.
	MinRetention float64       `json:"min_retention"`
	MinAgreement float64       `json:"min_agreement"`
	Prune        PruneConfig   `json:"prune"`
	Distill      DistillConfig `json:"distill"`
	// Workers is how many folds run at once (default GOMAXPROCS); results
	// do not depend on it.
	Workers int `json:"-"`
	// Progress receives one line per step (nil = silent).
	Progress io.Writer `json:"-"`

	mu *sync.Mutex // serialises Progress across fold workers
}

// PruneConfig configures pruning.
type PruneConfig struct {
	// TreeFraction is the share of a GBT's parameters removed by dropping
	// whole boosting rounds, least important first. Two candidates come
	// of it: the kept trees as they are, and with their leaves re-fitted.
	TreeFraction float64 `json:"tree_fraction"`
	// Sparsity is the share of each logreg/MLP weight matrix zeroed by
	// magnitude pruning.
	Sparsity float64 `json:"sparsity"`
	// UnitFraction is the share of hidden units (MLP) or input features
	// (logreg) removed by structured pruning.
	UnitFraction float64 `json:"unit_fraction"`
	// FineTuneEpochs and FineTuneLearningRate configure the short
	// fine-tune after logreg/MLP pruning (hard labels, class weights).
	FineTuneEpochs       int     `json:"fine_tune_epochs"`
	FineTuneLearningRate float64 `json:"fine_tune_learning_rate"`
}

// DistillConfig configures the student.
type DistillConfig struct {
	Temperature float64 `json:"temperature"`
	// Alpha weighs the soft (teacher) term; 1−Alpha the hard labels.
	Alpha float64 `json:"alpha"`
	// Hidden is the student MLP's width; 0 makes a logistic regression.
	Hidden       int     `json:"hidden"`
	Epochs       int     `json:"epochs"`
	LearningRate float64 `json:"learning_rate"`
	L2           float64 `json:"l2"`
	// MinRows drops features non-zero in fewer training rows.
	MinRows int `json:"min_rows"`
}

// DefaultConfig returns the shipped configuration: every method, 5 folds,
// the seed's gate, retention ≥ 0.98, agreement ≥ 0.95, and the seed's
// distillation recipe (T = 3.0, weight 0.7).
func DefaultConfig() Config {
	return Config{
		Methods: []string{MethodInt8, MethodPrune, MethodDistill}, Folds: 5, Bootstrap: 1000,
		Gate: validate.DefaultGate(), MinRetention: 0.98, MinAgreement: 0.95,
		Prune: PruneConfig{TreeFraction: 0.45, Sparsity: 0.5, UnitFraction: 0.45,
			FineTuneEpochs: 5, FineTuneLearningRate: 1e-3},
		Distill: DistillConfig{Temperature: 3.0, Alpha: 0.7, Hidden: 8, Epochs: 120, LearningRate: 0.01, L2: 1e-3, MinRows: 5},
	}
}

// Check validates the configuration and fills Workers; Run calls it too.
func (c *Config) Check() error {
	if len(c.Methods) == 0 {
		return fmt.Errorf("optimize: no methods")
	}
	for i, m := range c.Methods {
		if !slices.Contains([]string{MethodInt8, MethodPrune, MethodDistill}, m) {
			return fmt.Errorf("optimize: unknown method %q (want int8, prune or distill)", m)
		}
		if slices.Contains(c.Methods[:i], m) {
			return fmt.Errorf("optimize: method %q given twice", m)
		}
	}
	switch {
	case c.Folds < 2:
		return fmt.Errorf("optimize: folds %d < 2", c.Folds)
	case c.Bootstrap < 0:
		return fmt.Errorf("optimize: bootstrap %d < 0", c.Bootstrap)
	case !(c.Prune.TreeFraction >= 0 && c.Prune.TreeFraction < 1), !(c.Prune.Sparsity >= 0 && c.Prune.Sparsity < 1),
		!(c.Prune.UnitFraction >= 0 && c.Prune.UnitFraction < 1):
		return fmt.Errorf("optimize: pruning fractions must lie in [0, 1)")
	case c.Prune.FineTuneEpochs < 0 || (c.Prune.FineTuneEpochs > 0 && !(c.Prune.FineTuneLearningRate > 0)):
		return fmt.Errorf("optimize: fine-tune needs epochs ≥ 0 and a positive learning rate")
	case !(c.Distill.Temperature > 0) || !(c.Distill.Alpha >= 0 && c.Distill.Alpha <= 1):
		return fmt.Errorf("optimize: distillation needs T > 0 and a weight in [0, 1]")
	case c.Distill.Hidden < 0 || c.Distill.Epochs < 1 || !(c.Distill.LearningRate > 0) || !(c.Distill.L2 >= 0) || c.Distill.MinRows < 1:
		return fmt.Errorf("optimize: invalid student configuration %+v", c.Distill)
	}
	if c.Workers <= 0 {
		c.Workers = goruntime.GOMAXPROCS(0)
	}
	c.mu = &sync.Mutex{}
	return nil
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil && c.mu != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		fmt.Fprintf(c.Progress, format+"\n", args...)
	}
}
