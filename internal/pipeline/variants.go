package pipeline

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"sync/atomic"

	"medserve/internal/triage"
)

// Canary and shadow: a candidate version answers a share of the traffic
// (canary), or scores live traffic beside production without its answers
// ever being returned (shadow). Both use the same in-flight accounting as
// Swap, so replacing or removing them never fails a request.

// SetCanary makes as/pr answer percent % of requests (by a hash of the
// request's clinical content, so a repeated request stays on one version);
// as == nil removes the canary. retire runs when the previous canary is idle.
func (p *Pipeline) SetCanary(as *triage.Assessor, pr Predictor, percent int, retire func()) <-chan struct{} {
	var sv *serving
	if as != nil {
		sv = &serving{assessor: as, predict: pr, percent: percent}
	}
	return retireWhenIdle(p.canary.Swap(sv), retire)
}

// SetShadow makes as/pr score every production answer in the background;
// as == nil removes the shadow. Its comparison counters start again.
func (p *Pipeline) SetShadow(as *triage.Assessor, pr Predictor, retire func()) <-chan struct{} {
	var sv *serving
	if as != nil {
		sv = &serving{assessor: as, predict: pr}
	}
	p.shadows.reset()
	return retireWhenIdle(p.shadow.Swap(sv), retire)
}

// route picks the version that answers req: the canary for its share of
// requests, else production.
func (p *Pipeline) route(req *Request) *serving {
	if c := acquireFrom(&p.canary); c != nil {
		if bucket(req) < c.percent {
			return c
		}
		c.release()
	}
	return p.acquire()
}

// bucket maps a request's clinical content (not the patient id or the
// options) to 0–99.
func bucket(req *Request) int {
	content := *req
	content.Patient.ID = ""
	content.Options = Options{}
	b, _ := json.Marshal(content)
	h := fnv.New32a()
	h.Write(b)
	return int(h.Sum32() % 100)
}

// shadowState counts the shadow's comparisons with production.
type shadowState struct {
	busy                                atomic.Int64
	compared, agreed, underTriage, lost atomic.Int64
}

func (s *shadowState) reset() {
	s.compared.Store(0)
	s.agreed.Store(0)
	s.underTriage.Store(0)
	s.lost.Store(0)
}

// maxShadowInFlight bounds the background work a shadow may add: beyond
// it a comparison is skipped (and counted), never queued.
const maxShadowInFlight = 4

// ShadowStats are the shadow's comparisons with production so far.
type ShadowStats struct {
	Version     string `json:"version"`
	Compared    int64  `json:"compared"`
	Agreed      int64  `json:"agreed"`
	UnderTriage int64  `json:"would_under_triage"` // the shadow's acuity was less urgent than the answer given
	Skipped     int64  `json:"skipped"`            // not compared: the shadow was busy
}

// Shadow reports the shadow version's comparisons; ok is false without a shadow.
func (p *Pipeline) Shadow() (ShadowStats, bool) {
	sv := p.shadow.Load()
	if sv == nil {
		return ShadowStats{}, false
	}
	s := &p.shadows
	return ShadowStats{Version: sv.assessor.Artifact().Manifest.Version, Compared: s.compared.Load(), Agreed: s.agreed.Load(),
		UnderTriage: s.underTriage.Load(), Skipped: s.lost.Load()}, true
}

// shadowCompare scores req with the shadow version in the background and
// compares its acuity with the answer production gave.
func (p *Pipeline) shadowCompare(req *Request, resp *Response, topDiff int) {
	sv := acquireFrom(&p.shadow)
	if sv == nil {
		return
	}
	s := &p.shadows
	if s.busy.Add(1) > maxShadowInFlight {
		s.busy.Add(-1)
		s.lost.Add(1)
		sv.release()
		return
	}
	given, reqCopy := resp.Acuity, *req
	go func() {
		defer s.busy.Add(-1)
		defer sv.release()
		shadowResp := &Response{TimingMS: map[string]float64{}}
		p.compute(context.Background(), sv, &reqCopy, shadowResp, topDiff)
		if shadowResp.overloaded || shadowResp.Acuity == 0 {
			s.lost.Add(1)
			return
		}
		s.compared.Add(1)
		switch {
		case shadowResp.Acuity == given:
			s.agreed.Add(1)
		case shadowResp.Acuity > given:
			s.underTriage.Add(1)
		}
	}()
}
