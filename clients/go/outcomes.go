package rollgate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// Limits the server enforces on every outcome (docs/design.md §8); RecordOutcome checks them first so
// that one bad outcome never costs the batch it would have joined.
const (
	maxMetricsPerOutcome = 64
	maxOutcomesPerCall   = 10000
)

// Outcome is what happened to one request routed by rollgate.
type Outcome struct {
	// Variant is the side that served the request: Stable or Canary (from RouteResult.Variant).
	Variant Variant
	// Success is false for a failed request.
	Success bool
	// LatencyMS is the request's latency in milliseconds, finite and ≥ 0.
	LatencyMS float64
	// Metrics are up to 64 custom metrics with finite values, for metric gates.
	Metrics map[string]float64
	// InvariantViolations counts broken invariants, for invariant gates.
	InvariantViolations uint32
	// Key is the routed key (optional).
	Key string
	// Time is when it happened; zero means when the server receives the batch.
	Time time.Time
}

func (o Outcome) proto() (*rollgatev1.Outcome, error) {
	if o.Variant != Stable && o.Variant != Canary {
		return nil, fmt.Errorf("rollgate: outcome variant: must be Stable or Canary, got %v", o.Variant)
	}
	if math.IsNaN(o.LatencyMS) || math.IsInf(o.LatencyMS, 0) || o.LatencyMS < 0 {
		return nil, fmt.Errorf("rollgate: outcome latency_ms: must be finite and >= 0, got %v", o.LatencyMS)
	}
	if len(o.Metrics) > maxMetricsPerOutcome {
		return nil, fmt.Errorf("rollgate: outcome metrics: at most %d, got %d", maxMetricsPerOutcome, len(o.Metrics))
	}
	for name, v := range o.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("rollgate: outcome metrics[%q]: must be finite, got %v", name, v)
		}
	}
	m := &rollgatev1.Outcome{
		Variant:             o.Variant,
		Success:             o.Success,
		LatencyMs:           o.LatencyMS,
		InvariantViolations: o.InvariantViolations,
		Key:                 o.Key,
	}
	if len(o.Metrics) > 0 {
		m.Metrics = make(map[string]float64, len(o.Metrics))
		for k, v := range o.Metrics {
			m.Metrics[k] = v
		}
	}
	if !o.Time.IsZero() {
		m.Time = timestamppb.New(o.Time)
	}
	return m, nil
}

// OutcomeOptions configures how outcomes are buffered and flushed.
type OutcomeOptions struct {
	// FlushInterval: everything buffered is sent this long after the first outcome was
	// buffered. Default 1 s.
	FlushInterval time.Duration
	// MaxBatch: a rollout's outcomes are sent as soon as this many are buffered; it is also
	// the largest batch sent in one call. Default 500, at most 10,000.
	MaxBatch int
	// MaxBuffered caps the outcomes waiting while the server is unreachable (one probe batch
	// of at most MaxBatch may be on the wire besides them); past it the oldest are dropped,
	// counted in OutcomeStats.Overflow and reported to OnError. Default 100,000.
	MaxBuffered int
	// OnError, if set, hears about every batch that failed in the background (flushed by the
	// timer or by MaxBatch); Flush and Close return their errors instead. The error is a
	// *BatchError.
	OnError func(err error)
}

func (o OutcomeOptions) withDefaults() (OutcomeOptions, error) {
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 500
	}
	if o.MaxBatch < 1 || o.MaxBatch > maxOutcomesPerCall {
		return o, fmt.Errorf("rollgate: Outcomes.MaxBatch: must be 1..%d (the server's per-call limit), got %d", maxOutcomesPerCall, o.MaxBatch)
	}
	if o.MaxBuffered <= 0 {
		o.MaxBuffered = 100000
	}
	if o.MaxBuffered < o.MaxBatch {
		o.MaxBuffered = o.MaxBatch
	}
	return o, nil
}

// BatchError is a batch of outcomes that could not be delivered.
type BatchError struct {
	// Rollout the outcomes belong to.
	Rollout string
	// Count of outcomes in the batch.
	Count int
	// Requeued is true when the outcomes went back into the buffer to be sent again (the
	// server was UNAVAILABLE through every retry); false when they were dropped (the server
	// refused the batch as a whole, e.g. INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED).
	Requeued bool
	// Err is the call's error; connect.CodeOf(err) gives its code.
	Err error
}

// Error implements error.
func (e *BatchError) Error() string {
	fate := "dropped"
	if e.Requeued {
		fate = "kept to send again"
	}
	return fmt.Sprintf("rollgate: %d outcomes of %q not delivered (%s): %v", e.Count, e.Rollout, fate, e.Err)
}

// Unwrap returns the call's error.
func (e *BatchError) Unwrap() error { return e.Err }

// OutcomeStats counts what the outcome buffer did.
type OutcomeStats struct {
	// Buffered outcomes wait to be sent.
	Buffered int
	// InFlight outcomes are in batches on the wire.
	InFlight int
	// Sent outcomes were delivered; of those, the server reports Accepted (added to the window)
	// and Ignored (outside the window).
	Sent, Accepted, Ignored uint64
	// Dropped outcomes were given up on: refused by the server, or over MaxBuffered.
	Dropped uint64
	// Overflow counts the outcomes of Dropped that went because MaxBuffered were held.
	Overflow uint64
	// Outage is true while the server is taken as unreachable: the last batch came back
	// UNAVAILABLE. Batches are then not sent as they fill; one batch at a time probes the
	// server every FlushInterval (or at once when a local router reconnects), and the first
	// that gets through sends everything held.
	Outage bool
	// Batches is the number of RecordOutcome calls that succeeded.
	Batches uint64
}

// RecordOutcome buffers one outcome of a rollout; it returns at once. The outcomes go out in
// batches (one RecordOutcome call per rollout and batch) when MaxBatch are buffered for the
// rollout or FlushInterval after the first was buffered, whichever comes first.
//
// It returns an error only for an outcome the server would refuse (unknown variant, latency
// NaN, infinite or negative, more than 64 metrics, a non-finite metric) and after Close.
func (c *Client) RecordOutcome(rollout string, o Outcome) error {
	m, err := o.proto()
	if err != nil {
		return err
	}
	return c.outcomes.add(rollout, m)
}

// Flush sends every buffered outcome now and waits for it and for the batches already on the
// wire. It returns the failures of the batches it sent (each a *BatchError, joined).
func (c *Client) Flush(ctx context.Context) error {
	return c.outcomes.flush(ctx)
}

// OutcomeStats returns the outcome buffer's counters.
func (c *Client) OutcomeStats() OutcomeStats {
	return c.outcomes.stats()
}

type sendFunc func(ctx context.Context, rollout string, batch []*rollgatev1.Outcome) (*rollgatev1.RecordOutcomeResponse, error)

// outcomeBuffer queues outcomes per rollout and sends them in batches.
type outcomeBuffer struct {
	send sendFunc
	opts OutcomeOptions

	mu       sync.Mutex
	queues   map[string][]*rollgatev1.Outcome
	buffered int
	timer    *time.Timer
	closed   bool
	// inFlight holds a channel per batch on the wire, closed when the batch is done.
	inFlight  map[chan struct{}]int
	inFlightN int
	// outage is set when a batch came back UNAVAILABLE and cleared by the next one delivered.
	outage   bool
	counters OutcomeStats
}

func newOutcomeBuffer(send sendFunc, opts OutcomeOptions) *outcomeBuffer {
	return &outcomeBuffer{send: send, opts: opts, queues: map[string][]*rollgatev1.Outcome{}, inFlight: map[chan struct{}]int{}}
}

type pendingBatch struct {
	rollout  string
	outcomes []*rollgatev1.Outcome
	done     chan struct{}
}

func (b *outcomeBuffer) add(rollout string, m *rollgatev1.Outcome) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	q := append(b.queues[rollout], m)
	b.buffered++
	var full *pendingBatch
	if len(q) >= b.opts.MaxBatch && !b.outage {
		full = b.startLocked(rollout, q[:b.opts.MaxBatch:b.opts.MaxBatch])
		q = q[b.opts.MaxBatch:]
	}
	if len(q) == 0 {
		delete(b.queues, rollout)
	} else {
		b.queues[rollout] = q
	}
	dropped := b.trimLocked()
	b.armLocked()
	b.mu.Unlock()
	b.report(dropped)
	if full != nil {
		go b.dispatch(context.Background(), full, true) //nolint:errcheck // reported to OnError
	}
	return nil
}

// startLocked takes a batch out of the buffer and registers it as in flight.
func (b *outcomeBuffer) startLocked(rollout string, batch []*rollgatev1.Outcome) *pendingBatch {
	p := &pendingBatch{rollout: rollout, outcomes: batch, done: make(chan struct{})}
	b.buffered -= len(batch)
	b.inFlight[p.done] = len(batch)
	b.inFlightN += len(batch)
	return p
}

// takeAllLocked takes every buffered outcome out, in batches of at most MaxBatch.
func (b *outcomeBuffer) takeAllLocked() []*pendingBatch {
	var batches []*pendingBatch
	for rollout, q := range b.queues {
		for len(q) > 0 {
			n := min(len(q), b.opts.MaxBatch)
			batches = append(batches, b.startLocked(rollout, q[:n:n]))
			q = q[n:]
		}
		delete(b.queues, rollout)
	}
	return batches
}

// armLocked starts the flush timer when outcomes are buffered and none is running.
func (b *outcomeBuffer) armLocked() {
	if b.timer != nil || b.closed || b.buffered == 0 {
		return
	}
	b.timer = time.AfterFunc(b.opts.FlushInterval, b.onTimer)
}

func (b *outcomeBuffer) stopTimerLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
}

func (b *outcomeBuffer) onTimer() {
	b.mu.Lock()
	b.timer = nil
	var batches []*pendingBatch
	if b.outage {
		batches = b.probeLocked()
	} else {
		batches = b.takeAllLocked()
	}
	b.mu.Unlock()
	for _, p := range batches {
		go b.dispatch(context.Background(), p, true) //nolint:errcheck // reported to OnError
	}
}

// probeLocked takes one batch out to probe the server during an outage, unless one is on the
// wire already.
func (b *outcomeBuffer) probeLocked() []*pendingBatch {
	if len(b.inFlight) > 0 {
		return nil
	}
	for rollout, q := range b.queues {
		n := min(len(q), b.opts.MaxBatch)
		p := b.startLocked(rollout, q[:n:n])
		if n == len(q) {
			delete(b.queues, rollout)
		} else {
			b.queues[rollout] = q[n:]
		}
		return []*pendingBatch{p}
	}
	return nil
}

// serverBack is told by a local router that the server answers again: during an outage the
// probe goes now rather than at the next tick.
func (b *outcomeBuffer) serverBack() {
	b.mu.Lock()
	var batches []*pendingBatch
	if b.outage && !b.closed {
		batches = b.probeLocked()
	}
	b.mu.Unlock()
	for _, p := range batches {
		go b.dispatch(context.Background(), p, true) //nolint:errcheck // reported to OnError
	}
}

// trimLocked drops the oldest outcomes while more than MaxBuffered wait (during an outage at
// most one batch is on the wire besides them: see probeLocked).
func (b *outcomeBuffer) trimLocked() []error {
	var errs []error
	for rollout, q := range b.queues {
		if b.buffered <= b.opts.MaxBuffered {
			break
		}
		n := min(len(q), b.buffered-b.opts.MaxBuffered)
		q = q[n:]
		b.buffered -= n
		b.counters.Dropped += uint64(n)
		b.counters.Overflow += uint64(n)
		if len(q) == 0 {
			delete(b.queues, rollout)
		} else {
			b.queues[rollout] = q
		}
		errs = append(errs, &BatchError{Rollout: rollout, Count: n, Err: connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("outcome buffer full (%d): oldest outcomes dropped", b.opts.MaxBuffered))})
	}
	return errs
}

func (b *outcomeBuffer) report(errs []error) {
	if b.opts.OnError == nil {
		return
	}
	for _, err := range errs {
		b.opts.OnError(err)
	}
}

// dispatch sends one batch (the client retries UNAVAILABLE with backoff inside the call). A
// batch still UNAVAILABLE goes back to the front of its rollout's queue; any other failure
// drops it, since the server refuses a batch as a whole and sending it again cannot help.
func (b *outcomeBuffer) dispatch(ctx context.Context, p *pendingBatch, background bool) error {
	resp, err := b.send(ctx, p.rollout, p.outcomes)
	var dropped []error
	var resume []*pendingBatch
	b.mu.Lock()
	delete(b.inFlight, p.done)
	b.inFlightN -= len(p.outcomes)
	var berr *BatchError
	if err == nil {
		b.counters.Sent += uint64(len(p.outcomes))
		b.counters.Accepted += uint64(resp.GetAccepted())
		b.counters.Ignored += uint64(resp.GetIgnored())
		b.counters.Batches++
		if b.outage {
			// The server is back: send everything held now, not at the next tick.
			b.outage = false
			if background {
				b.stopTimerLocked()
				resume = b.takeAllLocked()
			}
		}
	} else {
		berr = &BatchError{Rollout: p.rollout, Count: len(p.outcomes), Err: err}
		if connect.CodeOf(err) == connect.CodeUnavailable {
			b.outage = true
			berr.Requeued = true
			b.queues[p.rollout] = append(p.outcomes[:len(p.outcomes):len(p.outcomes)], b.queues[p.rollout]...)
			b.buffered += len(p.outcomes)
			dropped = b.trimLocked()
		} else {
			b.counters.Dropped += uint64(len(p.outcomes))
		}
	}
	b.armLocked()
	b.mu.Unlock()
	b.report(dropped)
	for _, q := range resume {
		go b.dispatch(context.Background(), q, true) //nolint:errcheck // reported to OnError
	}
	if berr != nil && background {
		b.report([]error{berr})
	}
	// Done only once reported: Flush, waiting for it, returns after OnError heard of it.
	close(p.done)
	if berr == nil {
		return nil
	}
	return berr
}

// flush waits for the batches on the wire (a failed one may come back to the buffer), then
// sends everything buffered and waits for that too.
func (b *outcomeBuffer) flush(ctx context.Context) error {
	b.mu.Lock()
	b.stopTimerLocked()
	b.mu.Unlock()
	if err := b.waitInFlight(ctx); err != nil {
		return err
	}

	b.mu.Lock()
	batches := b.takeAllLocked()
	b.mu.Unlock()
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, p := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.dispatch(ctx, p, false)
		}()
	}
	wg.Wait()
	if err := b.waitInFlight(ctx); err != nil {
		errs = append(errs, err)
	}
	b.rearm()
	return errors.Join(errs...)
}

// waitInFlight waits until no batch is on the wire: the end of an outage sends everything held
// from the background (the probe that got through), and those batches count as on the wire.
func (b *outcomeBuffer) waitInFlight(ctx context.Context) error {
	for {
		b.mu.Lock()
		waiting := make([]chan struct{}, 0, len(b.inFlight))
		for done := range b.inFlight {
			waiting = append(waiting, done)
		}
		b.mu.Unlock()
		if len(waiting) == 0 {
			return nil
		}
		for _, done := range waiting {
			select {
			case <-done:
			case <-ctx.Done():
				b.rearm()
				return contextError(ctx, nil)
			}
		}
	}
}

func (b *outcomeBuffer) rearm() {
	b.mu.Lock()
	b.armLocked()
	b.mu.Unlock()
}

// close refuses new outcomes and flushes; the timer stays off for good.
func (b *outcomeBuffer) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.flush(ctx)
}

func (b *outcomeBuffer) stats() OutcomeStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.counters
	s.Buffered = b.buffered
	s.InFlight = b.inFlightN
	s.Outage = b.outage
	return s
}
