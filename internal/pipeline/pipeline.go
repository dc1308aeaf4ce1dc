package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"medserve/internal/batcher"
	"medserve/internal/cache"
	"medserve/internal/kb"
	"medserve/internal/model"
	"medserve/internal/triage"
)

// Predictor runs the triage model on one feature row. The batcher is one;
// calling the model directly is another.
type Predictor interface {
	Predict(ctx context.Context, priority int, row model.Row) ([]float64, error)
}

// DirectPredictor calls the model in the caller's goroutine.
type DirectPredictor struct{ Model model.Model }

// Predict runs the model.
func (d DirectPredictor) Predict(_ context.Context, _ int, row model.Row) ([]float64, error) {
	return d.Model.Predict(row, make([]float64, d.Model.Classes())), nil
}

// Cache is the multi-level cache as the pipeline sees it.
type Cache interface {
	Do(ctx context.Context, key string, compute func(ctx context.Context) ([]byte, error)) (val []byte, level string, err error)
}

// Config tunes the pipeline.
type Config struct {
	// Deadline bounds the parallel tasks of one query (default 1 s); a task
	// that misses it is dropped and the answer falls back to the rules.
	Deadline time.Duration
	// TopDifferential is the number of candidate conditions shown.
	TopDifferential int
}

// Pipeline answers queries. It is safe for concurrent use.
type Pipeline struct {
	cur      atomic.Pointer[serving]
	canary   atomic.Pointer[serving] // nil: no canary (variants.go)
	shadow   atomic.Pointer[serving] // nil: no shadow
	shadows  shadowState
	kb       *kb.KB
	cache    Cache
	cacheKey func(parts ...string) string
	cacheOn  atomic.Bool
	// oversight holds the reason while human-oversight mode is on: every
	// answer then carries review_required.
	oversight atomic.Pointer[string]
	cfg       Config
}

// ReasonOversight prefixes the review reason every answer carries while
// human-oversight mode is on.
const ReasonOversight = "human oversight mode: "

// SetOversight switches human-oversight mode on (a non-empty reason, shown
// in every answer's review reasons) or off ("").
func (p *Pipeline) SetOversight(reason string) {
	if reason == "" {
		p.oversight.Store(nil)
		return
	}
	p.oversight.Store(&reason)
}

// Oversight is the reason human-oversight mode is on; "" when off.
func (p *Pipeline) Oversight() string {
	if r := p.oversight.Load(); r != nil {
		return *r
	}
	return ""
}

// SetCaching switches the answer cache on or off; it has no effect on a
// pipeline built without one.
func (p *Pipeline) SetCaching(on bool) { p.cacheOn.Store(on && p.cache != nil && p.cacheKey != nil) }

// Caching reports whether answers are cached.
func (p *Pipeline) Caching() bool { return p.cacheOn.Load() }

// serving is one model version as the pipeline answers with it. A request
// takes the current one when it starts and keeps it to the end, so a swap
// never mixes two versions in one answer.
type serving struct {
	assessor *triage.Assessor
	predict  Predictor
	percent  int // a canary's share of traffic
	inflight atomic.Int64
}

// acquire returns the current version, counted as in use until release.
// The second load closes the race with Swap: a request that counted
// itself on a version already swapped out tries again on the new one, so
// once Swap returns, the old version's count only goes down.
func (p *Pipeline) acquire() *serving { return acquireFrom(&p.cur) }

// acquireFrom is acquire for any of the pipeline's versions; nil when that
// slot is empty.
func acquireFrom(ptr *atomic.Pointer[serving]) *serving {
	for {
		sv := ptr.Load()
		if sv == nil {
			return nil
		}
		sv.inflight.Add(1)
		if ptr.Load() == sv {
			return sv
		}
		sv.inflight.Add(-1)
	}
}

func (sv *serving) release() { sv.inflight.Add(-1) }

// Swap makes as and pr answer every request from now on, without dropping
// or failing one in flight: requests that started on the previous version
// finish on it, and retire (for example closing its batcher) runs once the
// last of them is done. The returned channel closes after retire.
func (p *Pipeline) Swap(as *triage.Assessor, pr Predictor, retire func()) <-chan struct{} {
	return retireWhenIdle(p.cur.Swap(&serving{assessor: as, predict: pr}), retire)
}

// retireWhenIdle runs retire once no request uses old any more.
func retireWhenIdle(old *serving, retire func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for old != nil && old.inflight.Load() > 0 {
			time.Sleep(time.Millisecond)
		}
		if retire != nil {
			retire()
		}
	}()
	return done
}

// New builds a pipeline. cache and cacheKey may be nil (no caching).
func New(as *triage.Assessor, k *kb.KB, p Predictor, cache Cache, cacheKey func(parts ...string) string, cfg Config) *Pipeline {
	if cfg.Deadline <= 0 {
		cfg.Deadline = time.Second
	}
	if cfg.TopDifferential <= 0 {
		cfg.TopDifferential = 5
	}
	pl := &Pipeline{kb: k, cache: cache, cacheKey: cacheKey, cfg: cfg}
	pl.cur.Store(&serving{assessor: as, predict: p})
	pl.SetCaching(true)
	return pl
}

// Model names the model version the pipeline serves.
func (p *Pipeline) Model() triage.ModelRef {
	m := p.cur.Load().assessor.Artifact().Manifest
	return triage.ModelRef{Name: m.Name, Version: m.Version, Family: m.Family}
}

// Response is the POST /api/v1/inference answer (SPEC section 4).
type Response struct {
	RequestID string `json:"request_id"`
	triage.Assessment
	Differential       []kb.Candidate     `json:"differential"`
	Interactions       []kb.Alert         `json:"interactions"`
	UnknownMedications []string           `json:"unknown_medications,omitempty"`
	Cache              CacheInfo          `json:"cache"`
	TimingMS           map[string]float64 `json:"timing_ms"`
	// Drivers (options.explain) are the features that moved the model's
	// answer most; absent for a rules-only answer.
	Drivers    []triage.Driver `json:"drivers,omitempty"`
	overloaded bool
	prep       *triage.Prepared // set when this request computed its answer
}

// CacheInfo says whether and where the answer was found in the cache.
type CacheInfo struct {
	Hit   bool   `json:"hit"`
	Level string `json:"level"`
}

// ErrOverloaded means the model's queue for this priority is full: the
// server answers 503 with Retry-After rather than a degraded answer.
var ErrOverloaded = errors.New("model queue full")

// Infer answers one validated request. It always returns an answer: when
// a task fails or misses the deadline the rules-only answer stands, with
// review_required set and the reason given.
func (p *Pipeline) Infer(ctx context.Context, req *Request) (*Response, error) {
	return p.infer(ctx, req, p.cfg.TopDifferential)
}

// ClinicalTopDifferential is the differential length of decision support.
const ClinicalTopDifferential = 10

// InferClinical is Infer for decision support (POST /api/v1/clinical): the
// same analysis with a fuller differential.
func (p *Pipeline) InferClinical(ctx context.Context, req *Request) (*Response, error) {
	return p.infer(ctx, req, ClinicalTopDifferential)
}

func (p *Pipeline) infer(ctx context.Context, req *Request, topDiff int) (*Response, error) {
	start := time.Now()
	sv := p.route(req)
	defer sv.release()
	resp := &Response{RequestID: newRequestID(), TimingMS: map[string]float64{}}
	useCache := p.cacheOn.Load() && (req.Options.UseCache == nil || *req.Options.UseCache)
	if !useCache {
		p.compute(ctx, sv, req, resp, topDiff)
	} else {
		key := p.cacheKey(append(p.cacheParts(sv, req), fmt.Sprint(topDiff))...)
		val, level, err := p.cache.Do(ctx, key, func(ctx context.Context) ([]byte, error) {
			p.compute(ctx, sv, req, resp, topDiff)
			if resp.overloaded {
				return nil, ErrOverloaded
			}
			if resp.ReviewRequired && slices.ContainsFunc(resp.ReviewReasons, isFallbackReason) {
				return nil, errNotCacheable // a degraded answer must not be served again
			}
			return json.Marshal(cachedAnswer{Assessment: resp.Assessment, Differential: resp.Differential, Interactions: resp.Interactions, Unknown: resp.UnknownMedications})
		})
		switch {
		case resp.Acuity != 0 || resp.overloaded:
			// This request computed the answer itself (or was refused).
		case err == nil:
			var ca cachedAnswer
			if json.Unmarshal(val, &ca) == nil {
				resp.Assessment, resp.Differential, resp.Interactions, resp.UnknownMedications = ca.Assessment, ca.Differential, ca.Interactions, ca.Unknown
				resp.Cache = CacheInfo{Hit: true, Level: cmpOr(level, "l1")}
			} else {
				p.compute(ctx, sv, req, resp, topDiff)
			}
		default:
			// A concurrent computation failed or was not cacheable:
			// compute this request alone.
			p.compute(ctx, sv, req, resp, topDiff)
		}
	}
	if resp.overloaded {
		return nil, ErrOverloaded
	}
	if req.Options.Explain && len(resp.Probabilities) > 0 {
		// Not cached with the answer: explanations are asked for rarely
		// and computed fresh, reusing this request's preparation when it
		// computed the answer rather than finding it in the cache.
		prep := resp.prep
		if prep == nil {
			pr := sv.assessor.Prepare(req.ClinicalQuery())
			prep = &pr
		}
		resp.Drivers = sv.assessor.Drivers(*prep)
	}
	if r := p.oversight.Load(); r != nil {
		// After the cache: the mode is about now, not about the answer.
		resp.ReviewRequired = true
		resp.ReviewReasons = append(resp.ReviewReasons, ReasonOversight+*r)
	}
	resp.TimingMS["total"] = ms(time.Since(start))
	if sv == p.cur.Load() {
		p.shadowCompare(req, resp, topDiff)
	}
	return resp, nil
}

var errNotCacheable = errors.New("answer not cacheable")

type cachedAnswer struct {
	Assessment   triage.Assessment `json:"a"`
	Differential []kb.Candidate    `json:"d"`
	Interactions []kb.Alert        `json:"i"`
	Unknown      []string          `json:"u,omitempty"`
}

// cacheParts is everything that changes the answer (SPEC section 9): the
// model version, the clinical content, the nurse's level. The patient id is
// not part of it: the answer does not depend on who the patient is, and the
// key is keyed-hashed anyway.
func (p *Pipeline) cacheParts(sv *serving, req *Request) []string {
	m := sv.assessor.Artifact().Manifest
	content := *req
	content.Patient.ID = ""
	content.Options = Options{}
	b, _ := json.Marshal(content)
	return []string{"inference/v1", m.Name, m.Version, string(b)}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func isFallbackReason(r string) bool { return strings.HasPrefix(r, "fallback:") }

// compute runs the pipeline stages into resp.
func (p *Pipeline) compute(ctx context.Context, sv *serving, req *Request, resp *Response, topDiff int) {
	q := req.ClinicalQuery()
	t0 := time.Now()
	prep := sv.assessor.Prepare(q)
	resp.prep = &prep
	resp.TimingMS["nlp"] = ms(time.Since(t0))

	ctx, cancel := context.WithTimeout(ctx, p.cfg.Deadline)
	defer cancel()

	type modelResult struct {
		probs []float64
		err   error
		dur   time.Duration
	}
	modelCh := make(chan modelResult, 1)
	go func() {
		t := time.Now()
		probs, err := sv.predict.Predict(ctx, priority(prep.Floor.Acuity), prep.Row)
		modelCh <- modelResult{probs, err, time.Since(t)}
	}()
	diffCh := make(chan []kb.Candidate, 1)
	go func() {
		// The age may come from the text ("58yo"): the prepared query
		// has it merged.
		pt := kb.Patient{Age: prep.Query.Age, Sex: q.Sex}
		diffCh <- p.kb.Differential(prep.Analysis.Findings, pt, topDiff)
	}()
	interCh := make(chan kb.InteractionReport, 1)
	go func() { interCh <- p.kb.CheckInteractions(req.Medications) }()

	var reasons []string
	var probs []float64
	select {
	case r := <-modelCh:
		resp.TimingMS["model"] = ms(r.dur)
		if errors.Is(r.err, batcher.ErrQueueFull) {
			resp.overloaded = true
			return
		}
		if r.err != nil {
			reasons = append(reasons, fmt.Sprintf("fallback: model unavailable (%v); rules-only answer", r.err))
		} else {
			probs = r.probs
		}
	case <-ctx.Done():
		reasons = append(reasons, "fallback: model missed the deadline; rules-only answer")
	}
	select {
	case d := <-diffCh:
		resp.Differential = d
	case <-ctx.Done():
		resp.Differential = []kb.Candidate{}
		reasons = append(reasons, "fallback: differential missed the deadline")
	}
	select {
	case ir := <-interCh:
		resp.Interactions = ir.Interactions
		resp.UnknownMedications = ir.Unknown
	case <-ctx.Done():
		resp.Interactions = []kb.Alert{}
		reasons = append(reasons, "fallback: interaction check missed the deadline")
	}

	t1 := time.Now()
	if probs != nil {
		resp.Assessment = sv.assessor.Finish(q, prep, probs)
	} else {
		resp.Assessment = sv.assessor.RulesOnly(q, prep)
	}
	if len(reasons) > 0 {
		resp.ReviewRequired = true
		resp.ReviewReasons = append(resp.ReviewReasons, reasons...)
	}
	if len(resp.UnknownMedications) > 0 {
		resp.ReviewRequired = true
		resp.ReviewReasons = append(resp.ReviewReasons, "unknown medication not checked for interactions: "+strings.Join(resp.UnknownMedications, ", "))
	}
	for _, a := range resp.Interactions {
		if a.Severity == "contraindicated" {
			resp.ReviewRequired = true
			resp.ReviewReasons = append(resp.ReviewReasons, "contraindicated drug combination: "+a.Drugs[0]+" + "+a.Drugs[1])
			break
		}
	}
	resp.TimingMS["synthesis"] = ms(time.Since(t1))
}

// priority maps the safety floor to a batcher priority: the most urgent
// patients are computed first.
func priority(floor int) int {
	switch {
	case floor <= 2:
		return 0
	case floor == 3:
		return 1
	}
	return 2
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newRequestID makes a random 128-bit request id.
func newRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("req-%d", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// BatchedPredictor sends rows through the dynamic batcher.
type BatchedPredictor struct {
	b *batcher.Batcher[model.Row, []float64]
}

// NewBatchedPredictor runs m in batches formed by a dynamic batcher.
func NewBatchedPredictor(m model.Model, cfg batcher.Config, obs batcher.Observer) (*BatchedPredictor, error) {
	run := func(_ context.Context, in []model.Row) ([][]float64, error) {
		out := make([][]float64, len(in))
		flat := make([]float64, len(in)*m.Classes())
		for i := range in {
			out[i] = m.Predict(in[i], flat[i*m.Classes():(i+1)*m.Classes()])
		}
		return out, nil
	}
	b, err := batcher.New(cfg, run, obs)
	if err != nil {
		return nil, fmt.Errorf("batcher: %w", err)
	}
	return &BatchedPredictor{b: b}, nil
}

// Predict queues the row at a priority and waits for its probabilities.
func (p *BatchedPredictor) Predict(ctx context.Context, priority int, row model.Row) ([]float64, error) {
	return p.b.Submit(ctx, priority, row)
}

// Close drains the queue.
func (p *BatchedPredictor) Close() { p.b.Close() }

// L1Cache adapts the in-process cache to the pipeline: answers are stored
// in one cache class.
type L1Cache struct {
	L1    *cache.L1
	Class cache.Class
}

// Do returns the cached answer, or computes it once for all concurrent
// callers of the same key; level is "l1" on a hit, "" when computed.
func (c L1Cache) Do(ctx context.Context, key string, compute func(ctx context.Context) ([]byte, error)) ([]byte, string, error) {
	v, hit, err := c.L1.Do(ctx, key, c.Class, compute)
	if hit {
		return v, c.L1.Name(), err
	}
	return v, "", err
}
