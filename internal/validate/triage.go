package validate

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
)

// Triage acuity runs 1 (resuscitation) … 5 (non-urgent); SPEC section 6
// calls acuity 1–3 "emergency" and asks for 1–2 as a second cut.
const (
	triageLevels  = 5
	emergencyCut  = 3    // acuity ≤ 3 is positive
	urgentCut     = 2    // acuity ≤ 2 is positive for the *12 figures
	eceBinCount   = 10   // equal-width bins on [0,1]
	probTolerance = 0.01 // a probability vector may miss a sum of 1 by this much (rounding in stored outputs)
	// pcgStream is the fixed second PCG word, so the seed alone decides the resamples.
	pcgStream = 0x9e3779b97f4a7c15
	// MissingGroup is the subgroup label of cases that lack the group or leave it empty;
	// they are kept as a split of their own so poor results on them stay visible.
	MissingGroup = "(missing)"
)

// TriageCase is one patient: true and predicted acuity 1–5, the model's class probabilities
// (index 0 = acuity 1; nil when not available) and subgroup labels.
type TriageCase struct {
	True   int               `json:"true"`
	Pred   int               `json:"pred"`
	Prob   []float64         `json:"prob,omitempty"`
	Groups map[string]string `json:"groups,omitempty"`
}

// Interval is a point estimate with its 95 % bootstrap interval.
type Interval struct {
	Value float64 `json:"value"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
}

// TriageMetrics are the figures of one set of cases.
//
// Degenerate sets never yield NaN or Inf: a ratio whose denominator is 0
// (sensitivity without true positives, specificity without negatives, kappa
// when both ratings use one single level, any figure of an empty set) is 0,
// and N, Invalid, ProbN and the confusion matrices show why. 0 is chosen over
// 1 so an empty or one-sided set can never pass a gate by accident. FNR is
// computed as FN/(TP+FN), which equals 1 − sensitivity whenever it is defined
// and is also 0 when it is not.
type TriageMetrics struct {
	N         int `json:"n"`         // valid cases scored
	Invalid   int `json:"invalid"`   // cases skipped because an acuity lies outside 1–5
	ProbN     int `json:"prob_n"`    // cases whose probabilities were usable for calibration
	Bootstrap int `json:"bootstrap"` // resamples behind the intervals (0: Lo = Hi = Value)

	Sensitivity Interval `json:"sensitivity"` // emergency = acuity 1–3
	Specificity Interval `json:"specificity"`
	FNR         Interval `json:"fnr"`
	Accuracy    Interval `json:"accuracy"` // binary (emergency) accuracy

	Sensitivity12 Interval `json:"sensitivity_12"` // acuity 1–2 as positive
	Specificity12 Interval `json:"specificity_12"`
	FNR12         Interval `json:"fnr_12"`
	Accuracy12    Interval `json:"accuracy_12"`

	ExactAccuracy Interval `json:"exact_accuracy"` // same level on the 5-level scale
	UnderTriage   Interval `json:"under_triage"`   // predicted less urgent than truth (pred > true)
	OverTriage    Interval `json:"over_triage"`    // predicted more urgent than truth (pred < true)
	WeightedKappa Interval `json:"weighted_kappa"` // linearly weighted Cohen's kappa over the 5 levels

	Brier        *Interval `json:"brier,omitempty"`         // multiclass Brier score, in [0,2]
	ECE          *Interval `json:"ece,omitempty"`           // top-class confidence vs. argmax correct
	ECEEmergency *Interval `json:"ece_emergency,omitempty"` // P(acuity ≤ 3) vs. observed emergency rate

	Confusion [5][5]int `json:"confusion"` // rows true 1..5, cols predicted 1..5
	Binary    Binary    `json:"binary"`    // emergency confusion (TP/FP/FN/TN)
	Binary12  Binary    `json:"binary_12"` // acuity 1–2 confusion
}

// Indices into the per-resample figure vector; one slot per Interval above.
const (
	figSens = iota
	figSpec
	figFNR
	figAcc
	figSens12
	figSpec12
	figFNR12
	figAcc12
	figExact
	figUnder
	figOver
	figKappa
	figBrier
	figECE
	figECEEm
	figCount
)

// scoredCase is a valid case reduced to what the bootstrap loop touches,
// so a resample costs one random draw and a few additions per case.
type scoredCase struct {
	t, p    int8 // 0-based true and predicted level
	hasProb bool
	binTop  int8
	binEm   int8
	brier   float64 // Σ_k (p_k − y_k)²
	diffTop float64 // 1[argmax = true] − max p
	diffEm  float64 // 1[true ≤ 3] − P(acuity ≤ 3)
}

// probSums are the calibration sums of a (re)sample; ECE is Σ_b |Σ diff| / n.
type probSums struct {
	n     int
	brier float64
	top   [eceBinCount]float64
	em    [eceBinCount]float64
}

func (s *probSums) add(c *scoredCase) {
	if !c.hasProb {
		return
	}
	s.n++
	s.brier += c.brier
	s.top[c.binTop] += c.diffTop
	s.em[c.binEm] += c.diffEm
}

// EvaluateTriage computes every metric with B bootstrap resamples (percentile intervals), deterministic for a seed.
// Resamples in which a figure is undefined (e.g. no positives drawn) are left out of that figure's percentiles.
func EvaluateTriage(cases []TriageCase, bootstrap int, seed uint64) TriageMetrics {
	var m TriageMetrics
	scored := make([]scoredCase, 0, len(cases))
	var ps probSums
	for i := range cases {
		c, ok := scoreCase(&cases[i])
		if !ok {
			m.Invalid++
			continue
		}
		scored = append(scored, c)
		m.Confusion[c.t][c.p]++
		ps.add(&c)
	}
	m.N = len(scored)
	m.ProbN = ps.n
	m.Binary = binaryAt(&m.Confusion, emergencyCut)
	m.Binary12 = binaryAt(&m.Confusion, urgentCut)
	point, _ := figures(&m.Confusion, &ps)

	if bootstrap < 0 || m.N == 0 {
		bootstrap = 0
	}
	m.Bootstrap = bootstrap
	var reps [figCount][]float64
	if bootstrap > 0 {
		reps = resample(scored, bootstrap, seed)
	}
	iv := func(f int) Interval { return interval(point[f], reps[f]) }
	m.Sensitivity, m.Specificity, m.FNR, m.Accuracy = iv(figSens), iv(figSpec), iv(figFNR), iv(figAcc)
	m.Sensitivity12, m.Specificity12, m.FNR12, m.Accuracy12 = iv(figSens12), iv(figSpec12), iv(figFNR12), iv(figAcc12)
	m.ExactAccuracy, m.UnderTriage, m.OverTriage, m.WeightedKappa = iv(figExact), iv(figUnder), iv(figOver), iv(figKappa)
	if ps.n > 0 {
		b, e, ee := iv(figBrier), iv(figECE), iv(figECEEm)
		m.Brier, m.ECE, m.ECEEmergency = &b, &e, &ee
	}
	return m
}

// scoreCase validates one case and precomputes its calibration terms.
func scoreCase(c *TriageCase) (scoredCase, bool) {
	if c.True < 1 || c.True > triageLevels || c.Pred < 1 || c.Pred > triageLevels {
		return scoredCase{}, false
	}
	s := scoredCase{t: int8(c.True - 1), p: int8(c.Pred - 1)}
	q, ok := normalizeProb(c.Prob)
	if !ok {
		return s, true
	}
	s.hasProb = true
	top := 0 // ties go to the more urgent level, the safer reading
	for k := range q {
		y := 0.0
		if k == int(s.t) {
			y = 1
		}
		s.brier += (q[k] - y) * (q[k] - y)
		if q[k] > q[top] {
			top = k
		}
	}
	correct := 0.0
	if top == int(s.t) {
		correct = 1
	}
	s.binTop = eceBin(q[top])
	s.diffTop = correct - q[top]
	pe := min(q[0]+q[1]+q[2], 1) // rounding can push the sum a hair above 1
	em := 0.0
	if int(s.t) < emergencyCut {
		em = 1
	}
	s.binEm = eceBin(pe)
	s.diffEm = em - pe
	return s, true
}

// normalizeProb accepts five finite, non-negative probabilities summing to 1
// within probTolerance and rescales them to sum exactly 1; anything else is
// treated as "no probabilities" rather than guessed at, and shows as ProbN < N.
func normalizeProb(p []float64) ([triageLevels]float64, bool) {
	var q [triageLevels]float64
	if len(p) != triageLevels {
		return q, false
	}
	sum := 0.0
	for _, v := range p {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return q, false
		}
		sum += v
	}
	if math.Abs(sum-1) > probTolerance {
		return q, false
	}
	for k, v := range p {
		q[k] = v / sum
	}
	return q, true
}

// eceBin maps a probability to one of ten equal-width bins; 1.0 joins the last bin.
func eceBin(p float64) int8 {
	return int8(min(max(int(p*eceBinCount), 0), eceBinCount-1))
}

// binaryAt collapses the 5×5 matrix: positive means acuity ≤ cut.
func binaryAt(c *[5][5]int, cut int) Binary {
	var b Binary
	for t := range c {
		for p, n := range c[t] {
			gold, pred := t < cut, p < cut
			switch {
			case gold && pred:
				b.TP += n
			case !gold && pred:
				b.FP += n
			case gold && !pred:
				b.FN += n
			default:
				b.TN += n
			}
		}
	}
	return b
}

// figures computes every figure from counts alone, which is what keeps the
// bootstrap cheap. ok reports whether a figure is defined (non-zero denominator).
func figures(c *[5][5]int, ps *probSums) (v [figCount]float64, ok [figCount]bool) {
	n, diag, under, over := 0, 0, 0, 0
	for t := range c {
		for p, k := range c[t] {
			n += k
			switch {
			case p == t:
				diag += k
			case p > t:
				under += k
			default:
				over += k
			}
		}
	}
	for i, cut := range [2]int{emergencyCut, urgentCut} {
		b := binaryAt(c, cut)
		off := i * (figSens12 - figSens)
		v[figSens+off], ok[figSens+off] = b.Recall(), b.TP+b.FN > 0
		v[figFNR+off], ok[figFNR+off] = ratio(b.FN, b.TP+b.FN), b.TP+b.FN > 0
		v[figSpec+off], ok[figSpec+off] = b.Specificity(), b.TN+b.FP > 0
		v[figAcc+off], ok[figAcc+off] = b.Accuracy(), n > 0
	}
	v[figExact], v[figUnder], v[figOver] = ratio(diag, n), ratio(under, n), ratio(over, n)
	ok[figExact], ok[figUnder], ok[figOver] = n > 0, n > 0, n > 0
	v[figKappa], ok[figKappa] = kappaOf(c)
	if ps.n > 0 {
		var top, em float64
		for b := range ps.top {
			top += math.Abs(ps.top[b])
			em += math.Abs(ps.em[b])
		}
		pn := float64(ps.n)
		v[figBrier], v[figECE], v[figECEEm] = ps.brier/pn, top/pn, em/pn
		ok[figBrier], ok[figECE], ok[figECEEm] = true, true, true
	}
	return v, ok
}

// kappaOf is linearly weighted kappa written as 1 − observed/expected
// disagreement, with weights |i−j|; both sums are integers, so the only
// rounding is the final division. Undefined (expected disagreement 0, i.e.
// both raters used one and the same level) gives 0, false.
func kappaOf(c *[5][5]int) (float64, bool) {
	var rows, cols [triageLevels]int64
	var n, obs int64
	for t := range c {
		for p, k := range c[t] {
			rows[t] += int64(k)
			cols[p] += int64(k)
			n += int64(k)
			obs += int64(absInt(t-p) * k)
		}
	}
	var exp int64
	for t := range rows {
		for p := range cols {
			exp += int64(absInt(t-p)) * rows[t] * cols[p]
		}
	}
	if exp == 0 {
		return 0, false
	}
	// float64 products avoid int64 overflow on very large sets.
	return 1 - float64(n)*float64(obs)/float64(exp), true
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// WeightedKappa is linearly weighted Cohen's kappa for ratings 1..5.
// Pairs with a rating outside 1..5 are skipped, extra elements of the longer
// slice are ignored, and an undefined kappa is 0.
func WeightedKappa(true_, pred []int) float64 {
	var c [5][5]int
	for i := range min(len(true_), len(pred)) {
		t, p := true_[i], pred[i]
		if t < 1 || t > triageLevels || p < 1 || p > triageLevels {
			continue
		}
		c[t-1][p-1]++
	}
	k, _ := kappaOf(&c)
	return k
}

// resample draws B bootstrap samples of the scored cases and returns, per
// figure, the sorted values of the resamples where that figure is defined.
func resample(scored []scoredCase, b int, seed uint64) [figCount][]float64 {
	rng := rand.New(rand.NewPCG(seed, pcgStream))
	var reps [figCount][]float64
	for f := range reps {
		reps[f] = make([]float64, 0, b)
	}
	n := len(scored)
	for range b {
		var c [5][5]int
		var ps probSums
		for range n {
			sc := &scored[rng.IntN(n)]
			c[sc.t][sc.p]++
			ps.add(sc)
		}
		v, ok := figures(&c, &ps)
		for f := range v {
			if ok[f] {
				reps[f] = append(reps[f], v[f])
			}
		}
	}
	for f := range reps {
		slices.Sort(reps[f])
	}
	return reps
}

// interval takes the 2.5 and 97.5 percentiles of sorted replicates; without
// replicates the interval collapses onto the point estimate.
func interval(value float64, sorted []float64) Interval {
	if len(sorted) == 0 {
		return Interval{Value: value, Lo: value, Hi: value}
	}
	return Interval{Value: value, Lo: percentile(sorted, 0.025), Hi: percentile(sorted, 0.975)}
}

// percentile interpolates linearly between order statistics (R's type 7).
func percentile(sorted []float64, q float64) float64 {
	h := q * float64(len(sorted)-1)
	i := int(h)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (h-float64(i))*(sorted[i+1]-sorted[i])
}

// BySubgroup evaluates each subgroup separately: map[group name]map[label]TriageMetrics.
// Every group name used by any case gets a split; cases without that name (or
// with an empty label) fall under MissingGroup. Each split has its own seed,
// derived from seed, name and label, so splits do not share resamples.
func BySubgroup(cases []TriageCase, bootstrap int, seed uint64) map[string]map[string]TriageMetrics {
	var names []string
	seen := map[string]bool{}
	for _, c := range cases {
		for name := range c.Groups {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	out := make(map[string]map[string]TriageMetrics, len(names))
	for _, name := range names {
		split := map[string][]TriageCase{}
		var order []string // first-seen order keeps the work deterministic
		for _, c := range cases {
			lbl := c.Groups[name]
			if lbl == "" {
				lbl = MissingGroup
			}
			if _, ok := split[lbl]; !ok {
				order = append(order, lbl)
			}
			split[lbl] = append(split[lbl], c)
		}
		res := make(map[string]TriageMetrics, len(order))
		for _, lbl := range order {
			res[lbl] = EvaluateTriage(split[lbl], bootstrap, subgroupSeed(seed, name, lbl))
		}
		out[name] = res
	}
	return out
}

func subgroupSeed(seed uint64, name, lbl string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(lbl))
	return seed ^ h.Sum64()
}
