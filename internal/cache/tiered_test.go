package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// The pipeline's Cache interface, restated so that this package's tests
// check Tiered against it without importing the pipeline.
var _ interface {
	Do(ctx context.Context, key string, compute func(ctx context.Context) ([]byte, error)) ([]byte, string, error)
} = (*Tiered)(nil)

// fakeLevel is an in-memory Level with hooks for failures and blocking.
type fakeLevel struct {
	name string

	mu     sync.Mutex
	vals   map[string][]byte
	class  map[string]Class
	getErr error
	setErr error

	// getGate, if set, makes Get wait for it to close (or ctx to end);
	// setGate does the same for Set. setEntered receives once per Set call
	// that has started (if set; sends never block the level).
	getGate    chan struct{}
	setGate    chan struct{}
	setEntered chan struct{}

	gets, sets atomic.Int64
}

func newFakeLevel(name string) *fakeLevel {
	return &fakeLevel{name: name, vals: map[string][]byte{}, class: map[string]Class{}}
}

func (f *fakeLevel) Name() string { return f.name }

func (f *fakeLevel) Get(ctx context.Context, key string) ([]byte, bool, error) {
	f.gets.Add(1)
	if f.getGate != nil {
		select {
		case <-f.getGate:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return nil, false, f.getErr
	}
	v, ok := f.vals[key]
	return v, ok, nil
}

func (f *fakeLevel) Set(ctx context.Context, key string, class Class, val []byte) error {
	f.sets.Add(1)
	if f.setEntered != nil {
		select {
		case f.setEntered <- struct{}{}:
		default:
		}
	}
	if f.setGate != nil {
		select {
		case <-f.setGate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	if class.TTL() <= 0 {
		return nil
	}
	f.vals[key] = append([]byte(nil), val...)
	f.class[key] = class
	return nil
}

func (f *fakeLevel) put(key, val string) {
	f.mu.Lock()
	f.vals[key] = []byte(val)
	f.mu.Unlock()
}

func (f *fakeLevel) value(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vals[key]
	return string(v), ok
}

// levelObserver counts events per level, errors and drops included.
type levelObserver struct {
	mu                            sync.Mutex
	hits, misses, errors, dropped map[string]int
}

func newLevelObserver() *levelObserver {
	return &levelObserver{hits: map[string]int{}, misses: map[string]int{}, errors: map[string]int{}, dropped: map[string]int{}}
}

func (o *levelObserver) add(m map[string]int, level string) {
	o.mu.Lock()
	m[level]++
	o.mu.Unlock()
}

func (o *levelObserver) Hit(level string)          { o.add(o.hits, level) }
func (o *levelObserver) Miss(level string)         { o.add(o.misses, level) }
func (o *levelObserver) Evict(level string)        {}
func (o *levelObserver) LevelError(level string)   { o.add(o.errors, level) }
func (o *levelObserver) WriteDropped(level string) { o.add(o.dropped, level) }

func (o *levelObserver) count(m map[string]int, level string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return m[level]
}

// countingCompute returns a compute that answers want and counts its calls.
func countingCompute(n *atomic.Int64, want string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		n.Add(1)
		return []byte(want), nil
	}
}

func TestTieredLevelOrderAndBackfill(t *testing.T) {
	tests := []struct {
		name           string
		l2, l3         string // value held before the call; "" = none
		wantVal        string
		wantLevel      string
		wantComputes   int64
		wantL3Gets     int64
		wantL2, wantL3 string // values held after Close
	}{
		{name: "miss everywhere computes and writes all", wantVal: "computed", wantLevel: "", wantComputes: 1, wantL3Gets: 1, wantL2: "computed", wantL3: "computed"},
		{name: "l2 hit stops the walk", l2: "from-l2", wantVal: "from-l2", wantLevel: "l2", wantL3Gets: 0, wantL2: "from-l2", wantL3: ""},
		{name: "l3 hit backfills l2", l3: "from-l3", wantVal: "from-l3", wantLevel: "l3", wantL3Gets: 1, wantL2: "from-l3", wantL3: "from-l3"},
		{name: "l2 wins over l3", l2: "from-l2", l3: "from-l3", wantVal: "from-l2", wantLevel: "l2", wantL3Gets: 0, wantL2: "from-l2", wantL3: "from-l3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l2, l3 := newFakeLevel("l2"), newFakeLevel("l3")
			if tt.l2 != "" {
				l2.put("k", tt.l2)
			}
			if tt.l3 != "" {
				l3.put("k", tt.l3)
			}
			obs := newLevelObserver()
			c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2, l3}, TieredOptions{Observer: obs})
			var computes atomic.Int64
			v, level, err := c.Do(context.Background(), "k", countingCompute(&computes, "computed"))
			if err != nil || string(v) != tt.wantVal || level != tt.wantLevel {
				t.Fatalf("Do = %q, %q, %v; want %q, %q", v, level, err, tt.wantVal, tt.wantLevel)
			}
			// The answer is now in the L1.
			v, level, err = c.Do(context.Background(), "k", countingCompute(&computes, "again"))
			if err != nil || string(v) != tt.wantVal || level != "l1" {
				t.Fatalf("second Do = %q, %q, %v; want %q from l1", v, level, err, tt.wantVal)
			}
			c.Close()
			if n := computes.Load(); n != tt.wantComputes {
				t.Errorf("computes = %d, want %d", n, tt.wantComputes)
			}
			if n := l2.gets.Load(); n != 1 {
				t.Errorf("l2 gets = %d, want 1", n)
			}
			if n := l3.gets.Load(); n != tt.wantL3Gets {
				t.Errorf("l3 gets = %d, want %d", n, tt.wantL3Gets)
			}
			for _, lv := range []struct {
				f    *fakeLevel
				want string
			}{{l2, tt.wantL2}, {l3, tt.wantL3}} {
				got, _ := lv.f.value("k")
				if got != lv.want {
					t.Errorf("%s holds %q, want %q", lv.f.name, got, lv.want)
				}
			}
			if got := l2.class["k"]; tt.wantL2 != tt.l2 && got != ClinicalDecision {
				t.Errorf("l2 written with class %q, want %q", got, ClinicalDecision)
			}
			if tt.wantLevel != "" && obs.count(obs.hits, tt.wantLevel) != 1 {
				t.Errorf("observer hits[%s] = %d, want 1", tt.wantLevel, obs.count(obs.hits, tt.wantLevel))
			}
		})
	}
}

func TestTieredLevelErrorsAreMisses(t *testing.T) {
	l2, l3 := newFakeLevel("l2"), newFakeLevel("l3")
	l2.getErr = errors.New("connection refused")
	l2.setErr = errors.New("connection refused")
	l3.put("a", "from-l3")
	obs := newLevelObserver()
	c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2, l3}, TieredOptions{Observer: obs})

	var computes atomic.Int64
	v, level, err := c.Do(context.Background(), "a", countingCompute(&computes, "computed"))
	if err != nil || string(v) != "from-l3" || level != "l3" {
		t.Fatalf("Do(a) = %q, %q, %v; want from-l3 from l3", v, level, err)
	}
	l3.mu.Lock()
	l3.getErr = errors.New("database is locked")
	l3.mu.Unlock()
	v, level, err = c.Do(context.Background(), "b", countingCompute(&computes, "computed"))
	if err != nil || string(v) != "computed" || level != "" {
		t.Fatalf("Do(b) = %q, %q, %v; want computed", v, level, err)
	}
	c.Close()

	st := c.Stats()
	if st.GetErrors != 3 { // l2 twice, l3 once
		t.Errorf("GetErrors = %d, want 3", st.GetErrors)
	}
	// l2 gets the backfill of a and the write of b, and refuses both.
	if st.WriteErrors != 2 || st.Written != 1 {
		t.Errorf("WriteErrors, Written = %d, %d; want 2, 1", st.WriteErrors, st.Written)
	}
	if got := obs.count(obs.errors, "l2"); got != 4 {
		t.Errorf("observer errors[l2] = %d, want 4 (2 gets, 2 sets)", got)
	}
	if got := obs.count(obs.errors, "l3"); got != 1 {
		t.Errorf("observer errors[l3] = %d, want 1", got)
	}
	if got := obs.count(obs.misses, "l2"); got != 2 {
		t.Errorf("observer misses[l2] = %d, want 2 (an error is a miss)", got)
	}
}

func TestTieredComputeErrorReturnedNotStored(t *testing.T) {
	l2 := newFakeLevel("l2")
	c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2}, TieredOptions{})
	boom := errors.New("model unavailable")
	_, level, err := c.Do(context.Background(), "k", func(context.Context) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) || level != "" {
		t.Fatalf("Do = %q, %v; want the compute error", level, err)
	}
	c.Close()
	if n := l2.sets.Load(); n != 0 {
		t.Fatalf("l2 sets = %d, want 0", n)
	}
}

func TestTieredGetBoundedByTimeout(t *testing.T) {
	l2 := newFakeLevel("l2")
	l2.getGate = make(chan struct{}) // never opens: a hung Redis
	l2.put("k", "stale")
	c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2}, TieredOptions{GetTimeout: 1})
	defer c.Close()
	var computes atomic.Int64
	v, level, err := c.Do(context.Background(), "k", countingCompute(&computes, "computed"))
	if err != nil || string(v) != "computed" || level != "" {
		t.Fatalf("Do = %q, %q, %v; want computed after the level timed out", v, level, err)
	}
	if st := c.Stats(); st.GetErrors != 1 {
		t.Fatalf("GetErrors = %d, want 1", st.GetErrors)
	}
}

func TestTieredQueueFullDrops(t *testing.T) {
	l2 := newFakeLevel("l2")
	l2.setGate = make(chan struct{})
	l2.setEntered = make(chan struct{}, 1)
	obs := newLevelObserver()
	c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2}, TieredOptions{QueueSize: 1, Workers: 1, Observer: obs})
	var computes atomic.Int64
	do := func(key string) {
		t.Helper()
		if _, _, err := c.Do(context.Background(), key, countingCompute(&computes, "v-"+key)); err != nil {
			t.Fatal(err)
		}
	}
	do("a")
	<-l2.setEntered // the only writer is now stuck in a's write
	do("b")         // queued
	do("c")         // queue full: dropped
	do("d")         // dropped
	if st := c.Stats(); st.Dropped != 2 {
		t.Fatalf("Dropped = %d, want 2", st.Dropped)
	}
	if got := obs.count(obs.dropped, "l2"); got != 2 {
		t.Fatalf("observer dropped[l2] = %d, want 2", got)
	}
	close(l2.setGate)
	c.Close()
	if n := l2.sets.Load(); n != 2 {
		t.Fatalf("l2 sets = %d, want 2 (a and b)", n)
	}
	for _, k := range []string{"a", "b"} {
		if v, ok := l2.value(k); !ok || v != "v-"+k {
			t.Errorf("l2[%s] = %q, %v", k, v, ok)
		}
	}
	if _, ok := l2.value("c"); ok {
		t.Error("dropped write of c was stored")
	}
}

func TestTieredCloseDrains(t *testing.T) {
	const n = 20
	l2, l3 := newFakeLevel("l2"), newFakeLevel("l3")
	l2.setGate = make(chan struct{})
	c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2, l3}, TieredOptions{QueueSize: n, Workers: 2})
	var computes atomic.Int64
	for i := range n {
		k := strconv.Itoa(i)
		if _, _, err := c.Do(context.Background(), k, countingCompute(&computes, "v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while l2 writes were still blocked")
	default:
	}
	close(l2.setGate)
	<-closed
	for i := range n {
		k := strconv.Itoa(i)
		for _, f := range []*fakeLevel{l2, l3} {
			if v, ok := f.value(k); !ok || v != "v"+k {
				t.Fatalf("after Close %s[%s] = %q, %v", f.name, k, v, ok)
			}
		}
	}
	if st := c.Stats(); st.Written != 2*n || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want %d written, none dropped", st, 2*n)
	}

	// After Close, Do still answers but writes nothing.
	v, level, err := c.Do(context.Background(), "late", countingCompute(&computes, "late"))
	if err != nil || string(v) != "late" || level != "" {
		t.Fatalf("Do after Close = %q, %q, %v", v, level, err)
	}
	if _, ok := l3.value("late"); ok {
		t.Fatal("write after Close was stored")
	}
	if st := c.Stats(); st.Dropped != 2 {
		t.Fatalf("Dropped after Close = %d, want 2 (one per level)", st.Dropped)
	}
	c.Close() // idempotent
}

func TestTieredSingleflightAcrossLevels(t *testing.T) {
	for _, l3Has := range []bool{false, true} {
		t.Run(fmt.Sprintf("l3 hit %v", l3Has), func(t *testing.T) {
			const callers = 30
			l1 := NewL1(1<<20, nil)
			l2, l3 := newFakeLevel("l2"), newFakeLevel("l3")
			l2.getGate = make(chan struct{})
			want := "computed"
			if l3Has {
				want = "from-l3"
				l3.put("k", want)
			}
			c := NewTiered(l1, ClinicalDecision, []Level{l2, l3}, TieredOptions{GetTimeout: 1 << 40})
			var computes atomic.Int64
			var wg sync.WaitGroup
			vals := make([]string, callers)
			errs := make([]error, callers)
			for i := range callers {
				wg.Go(func() {
					v, _, err := c.Do(context.Background(), "k", countingCompute(&computes, "computed"))
					vals[i], errs[i] = string(v), err
				})
			}
			waitWaiters(t, l1, "k", callers) // all joined one lookup, held at l2
			close(l2.getGate)
			wg.Wait()
			c.Close()
			for i := range callers {
				if errs[i] != nil || vals[i] != want {
					t.Fatalf("caller %d: %q, %v; want %q", i, vals[i], errs[i], want)
				}
			}
			wantComputes := int64(1)
			if l3Has {
				wantComputes = 0
			}
			if g2, g3, n := l2.gets.Load(), l3.gets.Load(), computes.Load(); g2 != 1 || g3 != 1 || n != wantComputes {
				t.Fatalf("l2 gets, l3 gets, computes = %d, %d, %d; want 1, 1, %d", g2, g3, n, wantComputes)
			}
			if n := l2.sets.Load(); n != 1 {
				t.Fatalf("l2 sets = %d, want 1", n)
			}
		})
	}
}

func TestTieredCallerCancelled(t *testing.T) {
	l2 := newFakeLevel("l2")
	l2.getGate = make(chan struct{})
	c := NewTiered(NewL1(1<<20, nil), ClinicalDecision, []Level{l2}, TieredOptions{GetTimeout: 1 << 40})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, level, err := c.Do(ctx, "k", func(context.Context) ([]byte, error) { return []byte("v"), nil })
		if level != "" {
			err = fmt.Errorf("level %q with error %w", level, err)
		}
		done <- err
	}()
	for l2.gets.Load() == 0 {
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	close(l2.getGate)
}

func TestTieredConcurrentRace(t *testing.T) {
	l2, l3 := newFakeLevel("l2"), newFakeLevel("l3")
	c := NewTiered(NewL1(4<<10, nil), ClinicalDecision, []Level{l2, l3}, TieredOptions{QueueSize: 8})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := strconv.Itoa((i * (g + 1)) % 97)
				v, _, err := c.Do(context.Background(), k, func(context.Context) ([]byte, error) { return []byte("v" + k), nil })
				if err != nil || string(v) != "v"+k {
					t.Errorf("Do(%s) = %q, %v", k, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	c.Close()
}

func BenchmarkTieredDoL1Hit(b *testing.B) {
	l2 := newFakeLevel("l2")
	c := NewTiered(NewL1(64<<20, nil), ClinicalDecision, []Level{l2}, TieredOptions{})
	defer c.Close()
	key := mustKeyer(b, "k1", []byte(testSecretStr)).Key("clinical_decision", "patient-123")
	ctx := context.Background()
	compute := func(context.Context) ([]byte, error) { return make([]byte, 2048), nil }
	if _, _, err := c.Do(ctx, key, compute); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, level, _ := c.Do(ctx, key, compute); level != "l1" {
			b.Fatalf("level %q", level)
		}
	}
}
