package batcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blocker is an input that makes the harness's RunFunc block until
// released, so tests can queue requests behind a busy worker and know the
// exact queue contents when the next batch is formed. No test depends on
// how long anything takes.
const blocker = -1

// harness wraps a Batcher[int, int] whose RunFunc records every batch and
// answers 10*input.
type harness struct {
	t       *testing.T
	b       *Batcher[int, int]
	obs     *countingObserver
	started chan struct{} // a batch containing blocker has started
	release chan struct{} // closed to let blocked batches finish

	mu      sync.Mutex
	batches [][]int
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, obs: &countingObserver{}, started: make(chan struct{}, 16), release: make(chan struct{})}
	b, err := New(cfg, h.run, h.obs)
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	t.Cleanup(func() {
		h.unblock()
		b.Close()
	})
	return h
}

func (h *harness) run(_ context.Context, in []int) ([]int, error) {
	h.mu.Lock()
	h.batches = append(h.batches, slices.Clone(in))
	h.mu.Unlock()
	if slices.Contains(in, blocker) {
		h.started <- struct{}{}
		<-h.release
	}
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = 10 * v
	}
	return out, nil
}

// unblock releases every blocked batch (idempotent).
func (h *harness) unblock() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

// block submits a blocker and returns once its batch is running, so the
// (single) worker is busy until unblock.
func (h *harness) block() <-chan result {
	h.t.Helper()
	res := h.submitAsync(context.Background(), 0, blocker)
	select {
	case <-h.started:
	case r := <-res:
		h.t.Fatalf("blocker answered before it ran: %+v", r)
	}
	return res
}

func (h *harness) recorded() [][]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.batches)
}

type result struct {
	in, out int
	err     error
}

func (h *harness) submitAsync(ctx context.Context, prio, v int) <-chan result {
	c := make(chan result, 1)
	go func() {
		out, err := h.b.Submit(ctx, prio, v)
		c <- result{v, out, err}
	}()
	return c
}

// enqueue submits v asynchronously and waits until it is queued, so
// arrival order within a level is the order of enqueue calls.
func (h *harness) enqueue(ctx context.Context, prio, v int) <-chan result {
	h.t.Helper()
	before := sum(h.b.QueueLen())
	c := h.submitAsync(ctx, prio, v)
	h.waitQueued(before + 1)
	return c
}

// waitQueued polls until exactly n requests are queued.
func (h *harness) waitQueued(n int) {
	h.t.Helper()
	for i := 0; sum(h.b.QueueLen()) != n; i++ {
		if i > 20000 { // ~1 s of 50 µs naps: something is wrong
			h.t.Fatalf("queue length %v, want total %d", h.b.QueueLen(), n)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

// expectOK receives a result and checks it is 10*input.
func expectOK(t *testing.T, c <-chan result) {
	t.Helper()
	r := <-c
	if r.err != nil || r.out != 10*r.in {
		t.Errorf("Submit(%d) = %d, %v; want %d, nil", r.in, r.out, r.err, 10*r.in)
	}
}

func expectErr(t *testing.T, c <-chan result, want error) {
	t.Helper()
	r := <-c
	if !errors.Is(r.err, want) {
		t.Errorf("Submit(%d) error = %v, want %v", r.in, r.err, want)
	}
}

func ran(batches [][]int, v int) bool {
	for _, b := range batches {
		if slices.Contains(b, v) {
			return true
		}
	}
	return false
}

// countingObserver records Observer calls.
type countingObserver struct {
	queueTimes, computeTimes, batches, batched atomic.Int64
	mu                                         sync.Mutex
	rejected                                   map[string]int
}

func (o *countingObserver) QueueTime(time.Duration)   { o.queueTimes.Add(1) }
func (o *countingObserver) ComputeTime(time.Duration) { o.computeTimes.Add(1) }
func (o *countingObserver) BatchSize(n int)           { o.batches.Add(1); o.batched.Add(int64(n)) }
func (o *countingObserver) Rejected(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rejected == nil {
		o.rejected = map[string]int{}
	}
	o.rejected[reason]++
}

func (o *countingObserver) rejects() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.rejected)
}

func TestNewDefaultsAndValidation(t *testing.T) {
	run := func(context.Context, []int) ([]int, error) { return nil, nil }
	b, err := New(Config{}, run, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := Config{MaxBatchSize: 64, MaxQueueDelay: 200 * time.Microsecond, Priorities: 3, QueueSize: 1024,
		DefaultTimeout: time.Second, Workers: 1}
	if got := b.Config(); got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	if got := b.QueueLen(); !slices.Equal(got, []int{0, 0, 0}) {
		t.Errorf("QueueLen = %v", got)
	}
	for _, c := range []Config{{MaxBatchSize: -1}, {Priorities: -1}, {QueueSize: -1}, {DefaultTimeout: -1}, {Workers: -1}} {
		if _, err := New(c, run, nil); err == nil {
			t.Errorf("New(%+v) accepted a negative value", c)
		}
	}
	if _, err := New[int, int](Config{}, nil, nil); err == nil {
		t.Error("New accepted a nil RunFunc")
	}
}

func TestSizeTriggered(t *testing.T) {
	// The delay never expires within the test, so only the size trigger
	// can run the batch; a broken trigger shows up as ErrTimeout.
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Hour, DefaultTimeout: 5 * time.Second})
	var cs []<-chan result
	for v := 1; v <= 4; v++ {
		cs = append(cs, h.submitAsync(context.Background(), 0, v))
	}
	for _, c := range cs {
		expectOK(t, c)
	}
	got := h.recorded()
	if len(got) != 1 || len(got[0]) != 4 {
		t.Fatalf("batches = %v, want one batch of 4", got)
	}
}

func TestSizeTriggeredLeavesRemainder(t *testing.T) {
	// An hour's delay: only the size trigger (or Close) can start a batch.
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Hour, DefaultTimeout: 5 * time.Second})
	first := []<-chan result{h.submitAsync(context.Background(), 0, blocker)}
	for v := 101; v <= 103; v++ {
		first = append(first, h.submitAsync(context.Background(), 0, v))
	}
	<-h.started // the worker is busy with the first batch of four
	var cs []<-chan result
	for v := 1; v <= 6; v++ {
		cs = append(cs, h.enqueue(context.Background(), 0, v))
	}
	h.unblock()
	for _, c := range append(first, cs[:4]...) {
		expectOK(t, c)
	}
	// The two newest wait for a batch size or delay that never comes.
	if got := h.b.QueueLen(); !slices.Equal(got, []int{2, 0, 0}) {
		t.Errorf("QueueLen after the size-triggered batch = %v, want [2 0 0]", got)
	}
	h.b.Close()
	for _, c := range cs[4:] {
		expectOK(t, c)
	}
	got := h.recorded()
	if len(got) != 3 || len(got[0]) != 4 || !slices.Contains(got[0], blocker) ||
		!slices.Equal(got[1], []int{1, 2, 3, 4}) || !slices.Equal(got[2], []int{5, 6}) {
		t.Errorf("batches = %v, want [blocker and 101..103 in any order] [1 2 3 4] [5 6]", got)
	}
}

func TestDelayTriggered(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 100, MaxQueueDelay: 5 * time.Millisecond})
	blk := h.block() // a batch of one: only the delay could have started it
	var cs []<-chan result
	for v := 1; v <= 3; v++ {
		cs = append(cs, h.enqueue(context.Background(), 0, v))
	}
	h.unblock()
	expectOK(t, blk)
	for _, c := range cs {
		expectOK(t, c)
	}
	want := [][]int{{blocker}, {1, 2, 3}}
	if got := h.recorded(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

func TestSingleRequestDelayTriggered(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 100, MaxQueueDelay: time.Millisecond})
	out, err := h.b.Submit(context.Background(), 1, 7)
	if err != nil || out != 70 {
		t.Fatalf("Submit = %d, %v", out, err)
	}
}

func TestNoBatching(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 1})
	var cs []<-chan result
	for v := 1; v <= 20; v++ {
		cs = append(cs, h.submitAsync(context.Background(), v%3, v))
	}
	for _, c := range cs {
		expectOK(t, c)
	}
	for _, b := range h.recorded() {
		if len(b) != 1 {
			t.Fatalf("batch %v with MaxBatchSize 1", b)
		}
	}
}

func TestNoDelayTakesWhatIsQueued(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 8, MaxQueueDelay: -1})
	blk := h.block()
	var cs []<-chan result
	for v := 1; v <= 3; v++ {
		cs = append(cs, h.enqueue(context.Background(), 0, v))
	}
	h.unblock()
	expectOK(t, blk)
	for _, c := range cs {
		expectOK(t, c)
	}
	want := [][]int{{blocker}, {1, 2, 3}}
	if got := h.recorded(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

func TestPriorityOrderWithinBatch(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 5, MaxQueueDelay: time.Millisecond})
	blk := h.block()
	var cs []<-chan result
	// value = 10*priority + arrival index within the level
	for _, p := range []struct{ prio, v int }{{2, 21}, {0, 1}, {1, 11}, {2, 22}, {0, 2}, {1, 12}} {
		cs = append(cs, h.enqueue(context.Background(), p.prio, p.v))
	}
	if got := h.b.QueueLen(); !slices.Equal(got, []int{2, 2, 2}) {
		t.Errorf("QueueLen = %v, want [2 2 2]", got)
	}
	h.unblock()
	expectOK(t, blk)
	for _, c := range cs {
		expectOK(t, c)
	}
	// Size-triggered batch of 5: the most urgent first, FIFO within a
	// level; the least urgent, newest request is left for the next batch.
	want := [][]int{{blocker}, {1, 2, 11, 12, 21}, {22}}
	if got := h.recorded(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

func TestPriorityOrderAcrossBatches(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 1})
	blk := h.block()
	var cs []<-chan result
	for _, p := range []int{2, 0, 1} {
		cs = append(cs, h.enqueue(context.Background(), p, 100+p))
	}
	h.unblock()
	expectOK(t, blk)
	for _, c := range cs {
		expectOK(t, c)
	}
	want := [][]int{{blocker}, {100}, {101}, {102}}
	if got := h.recorded(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

func TestPriorityClamped(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 1})
	blk := h.block()
	a := h.enqueue(context.Background(), -5, 1)
	b := h.enqueue(context.Background(), 99, 2)
	if got := h.b.QueueLen(); !slices.Equal(got, []int{1, 0, 1}) {
		t.Errorf("QueueLen = %v, want [1 0 1]", got)
	}
	h.unblock()
	expectOK(t, blk)
	expectOK(t, a)
	expectOK(t, b)
}

func TestQueueFull(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 1, QueueSize: 2})
	blk := h.block()
	cs := []<-chan result{
		h.enqueue(context.Background(), 1, 1),
		h.enqueue(context.Background(), 1, 2),
	}
	// The call itself must return: the level is full, nothing to wait for.
	if _, err := h.b.Submit(context.Background(), 1, 3); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third Submit at a full level: err = %v, want ErrQueueFull", err)
	}
	cs = append(cs, h.enqueue(context.Background(), 0, 4), h.enqueue(context.Background(), 2, 5))
	if got := h.b.QueueLen(); !slices.Equal(got, []int{1, 2, 1}) {
		t.Errorf("QueueLen = %v, want [1 2 1]", got)
	}
	h.unblock()
	expectOK(t, blk)
	for _, c := range cs {
		expectOK(t, c)
	}
	if ran(h.recorded(), 3) {
		t.Error("rejected input reached RunFunc")
	}
	if got := h.obs.rejects(); got["queue_full"] != 1 || len(got) != 1 {
		t.Errorf("Rejected = %v, want queue_full once", got)
	}
}

func TestContextDeadlineShortensTimeout(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Millisecond, DefaultTimeout: time.Hour})
	blk := h.block()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c := h.submitAsync(ctx, 0, 1)
	expectErr(t, c, ErrTimeout) // answered while the worker is still blocked
	if got := h.b.QueueLen(); sum(got) != 0 {
		t.Errorf("QueueLen after timeout = %v, want empty", got)
	}
	ok := h.enqueue(context.Background(), 0, 2)
	h.unblock()
	expectOK(t, blk)
	expectOK(t, ok)
	if ran(h.recorded(), 1) {
		t.Error("timed-out input reached RunFunc")
	}
	if got := h.obs.rejects(); got["timeout"] != 1 || len(got) != 1 {
		t.Errorf("Rejected = %v, want timeout once", got)
	}
}

func TestDefaultTimeoutNotLengthenedByContext(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Millisecond, DefaultTimeout: 20 * time.Millisecond})
	blk := h.block()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	expectErr(t, h.submitAsync(ctx, 0, 1), ErrTimeout)
	expectErr(t, h.submitAsync(context.Background(), 2, 2), ErrTimeout)
	h.unblock()
	expectOK(t, blk)
	if got := h.recorded(); ran(got, 1) || ran(got, 2) {
		t.Errorf("timed-out input reached RunFunc: %v", got)
	}
}

func TestCancelledWhileQueued(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Millisecond})
	blk := h.block()
	ctx, cancel := context.WithCancel(context.Background())
	c := h.enqueue(ctx, 1, 1)
	ok := h.enqueue(context.Background(), 1, 2)
	cancel()
	expectErr(t, c, context.Canceled) // answered while the worker is still blocked
	if got := h.b.QueueLen(); !slices.Equal(got, []int{0, 1, 0}) {
		t.Errorf("QueueLen after cancel = %v, want [0 1 0]", got)
	}
	h.unblock()
	expectOK(t, blk)
	expectOK(t, ok)
	if ran(h.recorded(), 1) {
		t.Error("cancelled input reached RunFunc")
	}
	if got := h.obs.rejects(); got["cancelled"] != 1 || len(got) != 1 {
		t.Errorf("Rejected = %v, want cancelled once", got)
	}
}

func TestAlreadyDoneContext(t *testing.T) {
	h := newHarness(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.b.Submit(ctx, 0, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	if _, err := h.b.Submit(ctx, 0, 1); !errors.Is(err, ErrTimeout) {
		t.Errorf("expired context: err = %v", err)
	}
	if len(h.recorded()) != 0 {
		t.Error("dead request reached RunFunc")
	}
}

// quietCtx never signals on Done, so only batch formation can notice that
// it is cancelled or past its deadline: it tests that path on its own.
type quietCtx struct {
	context.Context
	cancelled atomic.Bool
	deadline  time.Time
}

func (c *quietCtx) Done() <-chan struct{} { return nil }
func (c *quietCtx) Deadline() (time.Time, bool) {
	return c.deadline, !c.deadline.IsZero()
}
func (c *quietCtx) Err() error {
	if c.cancelled.Load() {
		return context.Canceled
	}
	return nil
}

func TestFormationDropsCancelled(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Millisecond})
	blk := h.block()
	ctx := &quietCtx{Context: context.Background()}
	c := h.enqueue(ctx, 0, 1)
	ok := h.enqueue(context.Background(), 0, 2)
	ctx.cancelled.Store(true)
	h.unblock()
	expectOK(t, blk)
	expectErr(t, c, context.Canceled)
	expectOK(t, ok)
	want := [][]int{{blocker}, {2}}
	if got := h.recorded(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

func TestFormationDropsExpired(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Millisecond, DefaultTimeout: time.Hour})
	blk := h.block()
	ctx := &quietCtx{Context: context.Background(), deadline: time.Now().Add(2 * time.Millisecond)}
	c := h.enqueue(ctx, 0, 1)
	ok := h.enqueue(context.Background(), 0, 2)
	for time.Now().Before(ctx.deadline) {
		time.Sleep(time.Millisecond)
	}
	h.unblock()
	expectOK(t, blk)
	expectErr(t, c, ErrTimeout)
	expectOK(t, ok)
	want := [][]int{{blocker}, {2}}
	if got := h.recorded(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

func TestCloseDrains(t *testing.T) {
	// An hour's delay and a batch size never reached: only Close's drain
	// can run these.
	h := newHarness(t, Config{MaxBatchSize: 100, MaxQueueDelay: time.Hour, Priorities: 2, DefaultTimeout: time.Hour})
	var cs []<-chan result
	for v := 1; v <= 10; v++ {
		cs = append(cs, h.enqueue(context.Background(), v%2, v))
	}
	h.b.Close()
	for _, c := range cs {
		expectOK(t, c)
	}
	want := [][]int{{2, 4, 6, 8, 10, 1, 3, 5, 7, 9}}
	if got := h.recorded(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches = %v, want %v", got, want)
	}
	if _, err := h.b.Submit(context.Background(), 0, 11); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close: err = %v, want ErrClosed", err)
	}
	h.b.Close() // idempotent
	if got := h.obs.rejects(); got["closed"] != 1 || len(got) != 1 {
		t.Errorf("Rejected = %v, want closed once", got)
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 2, MaxQueueDelay: time.Hour, Workers: 2, DefaultTimeout: time.Hour})
	blk := h.submitAsync(context.Background(), 0, blocker)
	other := h.submitAsync(context.Background(), 0, 1)
	<-h.started
	queued := h.enqueue(context.Background(), 0, 2)
	closed := make(chan struct{})
	go func() {
		h.b.Close()
		close(closed)
	}()
	// The queued request is drained by the second worker while the first
	// is still blocked; Close must not return before the blocked batch.
	expectOK(t, queued)
	select {
	case <-closed:
		t.Fatal("Close returned while a batch was in flight")
	default:
	}
	h.unblock()
	<-closed
	expectOK(t, blk)
	expectOK(t, other)
}

func TestRunErrorFailsBatch(t *testing.T) {
	boom := errors.New("boom")
	for name, run := range map[string]RunFunc[int, int]{
		"error":     func(context.Context, []int) ([]int, error) { return nil, boom },
		"count":     func(_ context.Context, in []int) ([]int, error) { return make([]int, len(in)-1), nil },
		"panic":     func(context.Context, []int) ([]int, error) { panic("boom") },
		"nil-slice": func(context.Context, []int) ([]int, error) { return nil, nil },
	} {
		t.Run(name, func(t *testing.T) {
			obs := &countingObserver{}
			b, err := New(Config{MaxBatchSize: 3, MaxQueueDelay: time.Hour, DefaultTimeout: 5 * time.Second}, run, obs)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			want := map[string]error{"error": boom, "count": ErrOutputCount, "panic": ErrPanic, "nil-slice": ErrOutputCount}[name]
			// Two rounds: the second shows the worker survived the first.
			for round := range 2 {
				var wg sync.WaitGroup
				errs := make([]error, 3)
				for i := range errs {
					wg.Go(func() { _, errs[i] = b.Submit(context.Background(), 0, i) })
				}
				wg.Wait()
				for i, err := range errs {
					if !errors.Is(err, want) {
						t.Errorf("round %d request %d: err = %v, want %v", round, i, err, want)
					}
				}
			}
			if got := obs.rejects(); got["backend"] != 6 || len(got) != 1 {
				t.Errorf("Rejected = %v, want backend 6 times", got)
			}
		})
	}
}

func TestObserver(t *testing.T) {
	h := newHarness(t, Config{MaxBatchSize: 4, MaxQueueDelay: time.Hour, DefaultTimeout: 5 * time.Second})
	var cs []<-chan result
	for v := 1; v <= 8; v++ {
		cs = append(cs, h.submitAsync(context.Background(), 0, v))
	}
	for _, c := range cs {
		expectOK(t, c)
	}
	o := h.obs
	if o.queueTimes.Load() != 8 || o.batched.Load() != 8 || o.batches.Load() != 2 || o.computeTimes.Load() != 2 {
		t.Errorf("observer: queue times %d, batched %d, batches %d, compute times %d; want 8, 8, 2, 2",
			o.queueTimes.Load(), o.batched.Load(), o.batches.Load(), o.computeTimes.Load())
	}
}

func TestConcurrentStress(t *testing.T) {
	type in struct{ g, i int }
	var batches, total atomic.Int64
	run := func(_ context.Context, xs []in) ([]string, error) {
		batches.Add(1)
		total.Add(int64(len(xs)))
		out := make([]string, len(xs))
		for k, x := range xs {
			out[k] = fmt.Sprintf("%d/%d", x.g, x.i)
		}
		return out, nil
	}
	obs := &countingObserver{}
	b, err := New(Config{MaxBatchSize: 16, MaxQueueDelay: 50 * time.Microsecond, Workers: 3, QueueSize: 64,
		DefaultTimeout: 10 * time.Second}, run, obs)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, perG = 32, 1000 / 32
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range perG + 1 {
				if g*(perG+1)+i >= 1000 {
					return
				}
				out, err := b.Submit(context.Background(), rng.IntN(4)-1, in{g, i})
				if want := fmt.Sprintf("%d/%d", g, i); err != nil || out != want {
					failures.Add(1)
					t.Errorf("Submit(%d/%d) = %q, %v", g, i, out, err)
				}
			}
		})
	}
	wg.Wait()
	b.Close()
	if failures.Load() != 0 || total.Load() != 1000 {
		t.Fatalf("failures %d, inputs run %d (want 0, 1000)", failures.Load(), total.Load())
	}
	if obs.batched.Load() != 1000 || obs.batches.Load() != batches.Load() || obs.queueTimes.Load() != 1000 {
		t.Errorf("observer batched %d in %d batches (run saw %d), queue times %d",
			obs.batched.Load(), obs.batches.Load(), batches.Load(), obs.queueTimes.Load())
	}
	t.Logf("1000 requests in %d batches", batches.Load())
}

func TestRingRemove(t *testing.T) {
	for n := 1; n <= 9; n++ {
		for rm := range n {
			q := newRing[int](n)
			// Rotate the ring so the contents wrap around the buffer end.
			for i := range n / 2 {
				q.push(-i)
			}
			for range n / 2 {
				q.pop()
			}
			var want []int
			for i := range n {
				if !q.push(i) {
					t.Fatalf("push %d of %d failed", i, n)
				}
				if i != rm {
					want = append(want, i)
				}
			}
			if q.push(n) {
				t.Fatalf("push beyond limit %d succeeded", n)
			}
			if !q.remove(rm) || q.remove(rm) {
				t.Fatalf("remove(%d) from %d", rm, n)
			}
			var got []int
			for q.n > 0 {
				got = append(got, q.pop())
			}
			if !slices.Equal(got, want) {
				t.Errorf("n=%d remove %d: got %v, want %v", n, rm, got, want)
			}
		}
	}
}
