// Package validate computes clinical validation metrics: confusion matrices,
// sensitivity and specificity, and the scores of annotated evaluation sets.
package validate

// Binary is a 2×2 confusion matrix for one yes/no label.
type Binary struct {
	TP int `json:"tp"`
	FP int `json:"fp"`
	FN int `json:"fn"`
	TN int `json:"tn"`
}

// Add counts one case.
func (b *Binary) Add(gold, predicted bool) {
	switch {
	case gold && predicted:
		b.TP++
	case !gold && predicted:
		b.FP++
	case gold && !predicted:
		b.FN++
	default:
		b.TN++
	}
}

// N is the number of cases counted.
func (b Binary) N() int { return b.TP + b.FP + b.FN + b.TN }

func ratio(num, den int) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

// Precision is TP/(TP+FP), 0 when nothing was predicted positive.
func (b Binary) Precision() float64 { return ratio(b.TP, b.TP+b.FP) }

// Recall (sensitivity) is TP/(TP+FN).
func (b Binary) Recall() float64 { return ratio(b.TP, b.TP+b.FN) }

// Specificity is TN/(TN+FP).
func (b Binary) Specificity() float64 { return ratio(b.TN, b.TN+b.FP) }

// F1 is the harmonic mean of precision and recall.
func (b Binary) F1() float64 { return ratio(2*b.TP, 2*b.TP+b.FP+b.FN) }

// Accuracy is the share of cases predicted right.
func (b Binary) Accuracy() float64 { return ratio(b.TP+b.TN, b.N()) }

// BinaryReport is a Binary with its derived figures, for JSON reports.
type BinaryReport struct {
	Binary
	N           int     `json:"n"`
	Precision   float64 `json:"precision"`
	Recall      float64 `json:"recall"`
	Specificity float64 `json:"specificity"`
	F1          float64 `json:"f1"`
	Accuracy    float64 `json:"accuracy"`
}

// Report derives the figures.
func (b Binary) Report() BinaryReport {
	return BinaryReport{Binary: b, N: b.N(), Precision: b.Precision(), Recall: b.Recall(),
		Specificity: b.Specificity(), F1: b.F1(), Accuracy: b.Accuracy()}
}
