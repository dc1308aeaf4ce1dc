package model

// lazyRows is the sparse ("lazy") Adam bookkeeping that logistic regression
// and the MLP's first layer share: a feature's row of weights moves only in
// batches that contain the feature. Each feature keeps its own update count
// for bias correction: with the global step count, a rare feature's first
// updates would be amplified several-fold and memorise the few rows it
// occurs in.
type lazyRows struct {
	steps, last []int32
	// mark[f] == stamp records that feature f already sits in touched for
	// this batch; stamps avoid clearing a Features-long array per batch.
	mark    []uint32
	stamp   uint32
	touched []int32
}

func newLazyRows(features, capacity int) *lazyRows {
	return &lazyRows{steps: make([]int32, features), last: make([]int32, features), mark: make([]uint32, features),
		touched: make([]int32, 0, capacity)}
}

// begin starts a batch.
func (l *lazyRows) begin() {
	l.stamp++
	l.touched = l.touched[:0]
}

// touch records that feature f has a gradient in this batch.
func (l *lazyRows) touch(f int32) {
	if l.mark[f] != l.stamp {
		l.mark[f] = l.stamp
		l.touched = append(l.touched, f)
	}
}

// update applies Adam to the touched rows of a feature-major matrix of the
// given width (w, its moments m and v, its gradient g, which it clears) at
// global step step, catching up the L2 gradient of the steps each feature
// sat out, so rare features are penalised as in the dense objective instead
// of escaping regularisation.
func (l *lazyRows) update(opt *adam, w, m, v, g []float64, width int, l2 float64, step int32) {
	for _, f := range l.touched {
		o := int(f) * width
		l.steps[f]++
		reg := l2 * float64(step-l.last[f])
		l.last[f] = step
		opt.update(w[o:o+width], m[o:o+width], v[o:o+width], g[o:o+width], reg, int(l.steps[f]))
		clear(g[o : o+width])
	}
}
