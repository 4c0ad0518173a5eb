package rollgate_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// waitForSamples polls Health until its samples are exactly stable/canary (the window may be
// read at the next evaluation), and fails with the last value seen otherwise.
func waitForSamples(t *testing.T, c *rollgate.Client, name string, stable, canary uint64) *rollgatev1.RolloutHealth {
	t.Helper()
	var last *rollgatev1.RolloutHealth
	var lastErr error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		last, lastErr = c.Health(testContext(t), name)
		if lastErr == nil && last.GetSamples().GetStable() == stable && last.GetSamples().GetCanary() == canary {
			return last
		}
		if lastErr != nil && connect.CodeOf(lastErr) != connect.CodeUnavailable {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Health(%s): want samples stable %d canary %d, last got %v (err %v)", name, stable, canary, last.GetSamples(), lastErr)
	return nil
}

// sentOrFail returns the outcomes sent so far, failing the test at once when any was dropped.
func sentOrFail(t *testing.T, c *rollgate.Client) uint64 {
	t.Helper()
	st := c.OutcomeStats()
	if st.Dropped > 0 {
		t.Fatalf("outcomes dropped in the background: %+v (run Flush to see the error)", st)
	}
	return st.Sent
}

func TestRecordOutcomeBatchesAndCloseLosesNothing(t *testing.T) {
	setup := newClient(t, shared.URL, rollgate.Options{})
	name := uniqueName("outcomes")
	createRollout(t, setup, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})
	setWeight(t, setup, name, 5000)

	// A flush interval far beyond the test: only the 500-outcome rule and Close send anything.
	c, err := rollgate.New(shared.URL, rollgate.Options{Outcomes: rollgate.OutcomeOptions{FlushInterval: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	var stable, canary uint64
	for i := range 1234 {
		o := rollgate.Outcome{Variant: rollgate.Stable, Success: i%10 != 0, LatencyMS: float64(5 + i%40), Key: "user"}
		if i%3 == 0 {
			o.Variant = rollgate.Canary
			o.Metrics = map[string]float64{"cart_value": float64(i)}
			canary++
		} else {
			stable++
		}
		if err := c.RecordOutcome(name, o); err != nil {
			t.Fatal(err)
		}
	}
	// The 500th and the 1000th outcome each sent a batch at once; 234 wait for Close.
	eventually(t, "two full batches", func() bool { return sentOrFail(t, c) == 1000 })
	if st := c.OutcomeStats(); st.Buffered != 234 || st.Sent != 1000 || st.Accepted != 1000 {
		t.Fatalf("after 1234 outcomes: %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := c.OutcomeStats()
	if st.Buffered != 0 || st.InFlight != 0 || st.Sent != 1234 || st.Accepted != 1234 || st.Ignored != 0 || st.Dropped != 0 || st.Batches != 3 {
		t.Fatalf("after Close: %+v", st)
	}
	if err := c.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Stable, Success: true}); !errors.Is(err, rollgate.ErrClosed) {
		t.Fatalf("RecordOutcome after Close: %v, want ErrClosed", err)
	}
	waitForSamples(t, setup, name, stable, canary)
}

func TestRecordOutcomeFlushesOnItsOwnWithinTheInterval(t *testing.T) {
	setup := newClient(t, shared.URL, rollgate.Options{})
	name := uniqueName("interval")
	createRollout(t, setup, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})

	c := newClient(t, shared.URL, rollgate.Options{}) // default: 1 s or 500 outcomes
	for range 7 {
		if err := c.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Canary, Success: true, LatencyMS: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.OutcomeStats(); st.Buffered+st.InFlight+int(st.Sent) != 7 {
		t.Fatalf("stats %+v", st)
	}
	// No Flush, no Close: the timer sends them.
	eventually(t, "the timer's flush", func() bool { return sentOrFail(t, c) == 7 })
	if st := c.OutcomeStats(); st.Batches != 1 || st.Accepted != 7 {
		t.Fatalf("stats %+v", st)
	}
	waitForSamples(t, setup, name, 0, 7)
}

func TestFlushSendsNowAndReportsRefusals(t *testing.T) {
	setup := newClient(t, shared.URL, rollgate.Options{})
	name := uniqueName("flush")
	createRollout(t, setup, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})

	var mu sync.Mutex
	var background []error
	c := newClient(t, shared.URL, rollgate.Options{Outcomes: rollgate.OutcomeOptions{
		FlushInterval: time.Hour,
		OnError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			background = append(background, err)
		},
	}})
	ctx := testContext(t)
	for range 4 {
		if err := c.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Stable, Success: false, LatencyMS: 40}); err != nil {
			t.Fatal(err)
		}
		if err := c.RecordOutcome("no-such-rollout", rollgate.Outcome{Variant: rollgate.Stable, Success: true, LatencyMS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Flush(ctx)
	var be *rollgate.BatchError
	if !errors.As(err, &be) || be.Rollout != "no-such-rollout" || be.Count != 4 || be.Requeued || connect.CodeOf(be) != connect.CodeNotFound {
		t.Fatalf("Flush: want a dropped NOT_FOUND batch of 4, got %v", err)
	}
	if st := c.OutcomeStats(); st.Sent != 4 || st.Dropped != 4 || st.Buffered != 0 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	if len(background) != 0 {
		t.Fatalf("Flush's failures go to its caller, not OnError: %v", background)
	}
	mu.Unlock()
	waitForSamples(t, setup, name, 4, 0)

	// A batch refused in the background (here: a full batch) goes to OnError.
	small := newClient(t, shared.URL, rollgate.Options{Outcomes: rollgate.OutcomeOptions{
		FlushInterval: time.Hour,
		MaxBatch:      2,
		OnError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			background = append(background, err)
		},
	}})
	for range 2 {
		if err := small.RecordOutcome("no-such-rollout", rollgate.Outcome{Variant: rollgate.Canary, Success: true}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "OnError", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(background) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if !errors.As(background[0], &be) || connect.CodeOf(be) != connect.CodeNotFound || be.Count != 2 {
		t.Fatalf("OnError got %v", background[0])
	}
}

func TestRecordOutcomeRefusesWhatTheServerWould(t *testing.T) {
	c := newClient(t, shared.URL, rollgate.Options{})
	metrics := map[string]float64{}
	for i := range 65 {
		metrics[string(rune('a'+i%26))+string(rune('a'+i/26))] = 1
	}
	bad := []rollgate.Outcome{
		{Variant: rollgate.Variant(0), Success: true},
		{Variant: rollgate.Stable, LatencyMS: math.NaN()},
		{Variant: rollgate.Stable, LatencyMS: math.Inf(1)},
		{Variant: rollgate.Canary, LatencyMS: -1},
		{Variant: rollgate.Canary, Metrics: map[string]float64{"x": math.NaN()}},
		{Variant: rollgate.Canary, Metrics: metrics},
	}
	for _, o := range bad {
		if err := c.RecordOutcome("r", o); err == nil {
			t.Errorf("RecordOutcome(%+v) accepted", o)
		}
	}
	if st := c.OutcomeStats(); st.Buffered != 0 {
		t.Fatalf("refused outcomes were buffered: %+v", st)
	}
	if _, err := rollgate.New(shared.URL, rollgate.Options{Outcomes: rollgate.OutcomeOptions{MaxBatch: 10001}}); err == nil {
		t.Fatal("MaxBatch over the server's per-call limit accepted")
	}
}

func TestFlushRequeuesWhileUnavailable(t *testing.T) {
	counter := &attemptCounter{}
	c, err := rollgate.New("http://"+freePort(t), rollgate.Options{
		Retry:        rollgate.RetryPolicy{MaxAttempts: 2, Backoff: rollgate.Backoff{Initial: time.Millisecond, Max: time.Millisecond}},
		Outcomes:     rollgate.OutcomeOptions{FlushInterval: time.Hour},
		Interceptors: []connect.Interceptor{counter},
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.RecordOutcome("r", rollgate.Outcome{Variant: rollgate.Stable, Success: true}); err != nil {
			t.Fatal(err)
		}
	}
	err = c.Flush(testContext(t))
	var be *rollgate.BatchError
	if !errors.As(err, &be) || !be.Requeued || connect.CodeOf(err) != connect.CodeUnavailable || be.Count != 3 {
		t.Fatalf("want a requeued UNAVAILABLE batch: %v", err)
	}
	if n := counter.n.Load(); n != 2 {
		t.Fatalf("%d attempts, want MaxAttempts = 2", n)
	}
	if st := c.OutcomeStats(); st.Buffered != 3 || st.Dropped != 0 {
		t.Fatalf("the outcomes should wait in the buffer: %+v", st)
	}
	// Close tries once more and reports what it could not deliver.
	if err := c.Close(); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("Close: %v", err)
	}
}

func TestMaxBufferedDropsTheOldestDuringAnOutage(t *testing.T) {
	var mu sync.Mutex
	var overflow []*rollgate.BatchError
	c := newClient(t, "http://"+freePort(t), rollgate.Options{
		Retry: rollgate.RetryPolicy{MaxAttempts: 1},
		Outcomes: rollgate.OutcomeOptions{FlushInterval: time.Hour, MaxBatch: 2, MaxBuffered: 3, OnError: func(err error) {
			var be *rollgate.BatchError
			if errors.As(err, &be) && connect.CodeOf(be) == connect.CodeResourceExhausted {
				mu.Lock()
				overflow = append(overflow, be)
				mu.Unlock()
			}
		}},
	})
	for range 5 {
		if err := c.RecordOutcome("r", rollgate.Outcome{Variant: rollgate.Canary, Success: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(testContext(t)); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("Flush: %v", err)
	}
	st := c.OutcomeStats()
	if st.Buffered != 3 || st.Dropped != 2 || st.Sent != 0 {
		t.Fatalf("want 3 kept and the 2 oldest dropped: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	dropped := 0
	for _, be := range overflow {
		dropped += be.Count
	}
	if dropped != 2 {
		t.Fatalf("OnError heard of %d dropped outcomes, want 2", dropped)
	}
}

// concurrency is a connect interceptor that tracks how many unary calls run at once, from the
// moment it is armed.
type concurrency struct {
	mu          sync.Mutex
	armed       bool
	now, max, n int
}

func (c *concurrency) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		c.mu.Lock()
		c.now++
		if c.armed {
			c.n++
			c.max = max(c.max, c.now)
		}
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.now--
			c.mu.Unlock()
		}()
		return next(ctx, req)
	}
}

func (c *concurrency) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (c *concurrency) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// TestOutageProbesOneBatchAtATimeThenDeliversEverything: once a batch came back UNAVAILABLE,
// batches are no longer sent as they fill; one probe at a time goes out per flush interval,
// and when the server is back (here: a forwarder to the live server on the dead port) the
// first probe through sends everything held.
func TestOutageProbesOneBatchAtATimeThenDeliversEverything(t *testing.T) {
	setup := newClient(t, shared.URL, rollgate.Options{})
	name := uniqueName("outage")
	createRollout(t, setup, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})

	addr := freePort(t)
	calls := &concurrency{}
	c := newClient(t, "http://"+addr, rollgate.Options{
		Retry:        rollgate.RetryPolicy{MaxAttempts: 1},
		Outcomes:     rollgate.OutcomeOptions{FlushInterval: 20 * time.Millisecond, MaxBatch: 10},
		Interceptors: []connect.Interceptor{calls},
	})
	record := func(n int) {
		for range n {
			if err := c.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Canary, Success: true, LatencyMS: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(10)
	eventually(t, "the outage", func() bool { st := c.OutcomeStats(); return st.Outage && st.InFlight == 0 })
	calls.mu.Lock()
	calls.armed = true
	calls.mu.Unlock()
	record(990) // 99 batches' worth: none is sent as it fills
	eventually(t, "ten probes", func() bool { calls.mu.Lock(); defer calls.mu.Unlock(); return calls.n >= 10 })
	calls.mu.Lock()
	if calls.max != 1 {
		t.Fatalf("%d calls at once during the outage, want one probe at a time", calls.max)
	}
	calls.mu.Unlock()
	if st := c.OutcomeStats(); st.Buffered+st.InFlight != 1000 || st.Sent != 0 || st.Dropped != 0 {
		t.Fatalf("stats during the outage: %+v", st)
	}

	forward(t, addr, shared.URL[len("http://"):])
	eventually(t, "everything delivered", func() bool { return sentOrFail(t, c) == 1000 })
	if st := c.OutcomeStats(); st.Outage || st.Buffered != 0 || st.Accepted != 1000 {
		t.Fatalf("stats after the outage: %+v", st)
	}
	waitForSamples(t, setup, name, 0, 1000)
}

// TestFlushWaitsForWhatTheEndOfAnOutageSends: a Flush that starts while the probe is on the
// wire returns only once the batches the probe's success sent from the background are done.
func TestFlushWaitsForWhatTheEndOfAnOutageSends(t *testing.T) {
	setup := newClient(t, shared.URL, rollgate.Options{})
	name := uniqueName("flush-outage")
	createRollout(t, setup, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})

	addr := freePort(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	var once sync.Once
	hook := &attemptCounter{before: func(int32) {
		if armed.Load() {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
	}}
	c := newClient(t, "http://"+addr, rollgate.Options{
		Retry:        rollgate.RetryPolicy{MaxAttempts: 1},
		Outcomes:     rollgate.OutcomeOptions{FlushInterval: 20 * time.Millisecond, MaxBatch: 10},
		Interceptors: []connect.Interceptor{hook},
	})
	for range 1000 {
		if err := c.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Canary, Success: true, LatencyMS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the outage", func() bool { st := c.OutcomeStats(); return st.Outage && st.InFlight == 0 })
	forward(t, addr, shared.URL[len("http://"):])
	armed.Store(true)
	<-entered // the probe is on the wire (held here), the server reachable
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(testContext(t)) }()
	time.Sleep(100 * time.Millisecond) // let Flush start waiting for the probe
	close(release)
	if err := <-flushed; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if st := c.OutcomeStats(); st.Sent != 1000 || st.InFlight != 0 || st.Buffered != 0 {
		t.Fatalf("Flush returned with %+v", st)
	}
}
