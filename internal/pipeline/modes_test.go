package pipeline

import (
	"context"
	"strings"
	"testing"

	"medserve/internal/cache"
)

// TestOversightMode: while human oversight is on every answer requires
// review with the reason, a cached answer too; off, the answer is the
// model's own again, and the cache never kept the oversight reason.
func TestOversightMode(t *testing.T) {
	as, k, art := deps(t)
	c := L1Cache{L1: cache.NewL1(1<<20, nil), Class: cache.ClinicalDecision}
	p := New(as, k, DirectPredictor{Model: art.Model}, c, func(parts ...string) string { return strings.Join(parts, "|") }, Config{})
	ask := func() *Response {
		t.Helper()
		r, err := p.Infer(context.Background(), &Request{Query: "mild ankle sprain", Context: Context{NurseAcuity: 5}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	has := func(r *Response) bool {
		for _, x := range r.ReviewReasons {
			if x == ReasonOversight+"alert SensitivityDegraded (incident #1)" {
				return r.ReviewRequired
			}
		}
		return false
	}
	if has(ask()) {
		t.Fatal("oversight reason without oversight")
	}
	p.SetOversight("alert SensitivityDegraded (incident #1)")
	if p.Oversight() == "" {
		t.Fatal("Oversight() empty after SetOversight")
	}
	for i, hit := range []bool{true, true} {
		r := ask()
		if !has(r) || r.Cache.Hit != hit {
			t.Fatalf("answer %d under oversight: review %v reasons %q cache %+v", i, r.ReviewRequired, r.ReviewReasons, r.Cache)
		}
	}
	p.SetOversight("")
	if r := ask(); has(r) || !r.Cache.Hit {
		t.Fatalf("after oversight ended: reasons %q cache %+v", r.ReviewReasons, r.Cache)
	}
}

// TestCachingSwitch: the alert engine can switch a configured cache on and
// off; a pipeline built without one stays uncached.
func TestCachingSwitch(t *testing.T) {
	as, k, art := deps(t)
	c := L1Cache{L1: cache.NewL1(1<<20, nil), Class: cache.ClinicalDecision}
	p := New(as, k, DirectPredictor{Model: art.Model}, c, func(parts ...string) string { return strings.Join(parts, "|") }, Config{})
	p.SetCaching(false)
	hit := func() bool {
		r, err := p.Infer(context.Background(), &Request{Query: "sore throat"})
		if err != nil {
			t.Fatal(err)
		}
		return r.Cache.Hit
	}
	if hit() || hit() || p.Caching() {
		t.Fatal("cached while caching is off")
	}
	p.SetCaching(true)
	if hit(); !hit() {
		t.Fatal("no cache hit once caching is on")
	}
	bare := New(as, k, DirectPredictor{Model: art.Model}, nil, nil, Config{})
	bare.SetCaching(true)
	if bare.Caching() {
		t.Fatal("a pipeline without a cache reports caching on")
	}
}
