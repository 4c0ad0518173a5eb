package rollgate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"connectrpc.com/connect"

	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// FallbackReason says why a local answer is the configured fallback rather than the rollout's
// routing. It is FallbackNone for every answer routed from the state (and for remote answers).
type FallbackReason uint8

// The reasons of a fallback answer.
const (
	// FallbackNone: the answer was routed from the rollout's state.
	FallbackNone FallbackReason = iota
	// FallbackNotReady: no state yet (no snapshot from the server, no state file).
	FallbackNotReady
	// FallbackUnknownRollout: the state holds no rollout of that name (not watched, not created
	// yet, or deleted); remote Route would answer NOT_FOUND.
	FallbackUnknownRollout
	// FallbackInvalidKey: an empty key, one over 1024 bytes or not UTF-8; remote Route would
	// answer INVALID_ARGUMENT.
	FallbackInvalidKey
)

var fallbackNames = [...]string{"none", "not_ready", "unknown_rollout", "invalid_key"}

// String returns "none", "not_ready", "unknown_rollout" or "invalid_key".
func (f FallbackReason) String() string {
	if int(f) < len(fallbackNames) {
		return fallbackNames[f]
	}
	return fmt.Sprintf("FallbackReason(%d)", uint8(f))
}

// DefaultStartupTimeout is how long StartLocal waits for the first snapshot when
// LocalOptions.StartupTimeout is zero.
const DefaultStartupTimeout = 5 * time.Second

// maxKeyBytes is the longest routing key (docs/design.md §4).
const maxKeyBytes = 1024

// maxWatchedRollouts is the most names a WatchRoutes request may carry.
const maxWatchedRollouts = 1000

// LocalOptions configures local evaluation (see StartLocal). The zero value watches every
// rollout, waits up to 5 s for the first snapshot and answers stable until it has one.
type LocalOptions struct {
	// Rollouts are the names to watch; empty watches every rollout, those created later too.
	// At most 1,000, each of which must exist.
	Rollouts []string
	// StartupTimeout: StartLocal waits up to this long for the first snapshot. Default 5 s;
	// negative does not wait (Route answers the fallback until the snapshot arrives).
	StartupTimeout time.Duration
	// Fallback is the variant answered while there is no state, for rollouts the state does not
	// hold and for invalid keys. Default Stable.
	Fallback Variant
	// StateFile, when set, is where the last state is written after every change (atomically:
	// a temporary file renamed), and where it is read from when no snapshot has arrived by the
	// end of StartupTimeout (the server unreachable at boot).
	StateFile string
	// StaleAfter: when the server has not been heard from for this long, one warning is logged
	// (and one line when it is heard again); LocalStats.Stale says so. Default 30 s.
	StaleAfter time.Duration
	// IdleTimeout: a stream on which nothing (not even a heartbeat) arrives for this long is
	// taken as dead and reconnected. Default 20 s (the server sends heartbeats every few seconds).
	IdleTimeout time.Duration
	// Backoff between reconnects, reset by a good message. Default DefaultWatchBackoff.
	Backoff Backoff
	// Logger receives the router's log lines (stream ended, reconnected, stale, malformed
	// message, state file). Default slog.Default().
	Logger *slog.Logger
}

// LocalStats is what a local router holds and how fresh it is.
type LocalStats struct {
	// Ready is true once a state is held (from the server or the state file).
	Ready bool
	// FromFile is true while the state held came from StateFile and no server message has
	// confirmed it since.
	FromFile bool
	// Connected is true while a WatchRoutes stream is open and has delivered a message.
	Connected bool
	// Revision is the revision of the state held (0 without one).
	Revision uint64
	// Rollouts is the number of rollouts in the state.
	Rollouts int
	// LastHeard is when the server was last heard from (any message, heartbeats included);
	// zero if never.
	LastHeard time.Time
	// Staleness is the time since LastHeard (since the router started, if never).
	Staleness time.Duration
	// Stale is Staleness > StaleAfter.
	Stale bool
	// Resets, Changes and Heartbeats count the messages applied by kind.
	Resets, Changes, Heartbeats uint64
	// Reconnects counts the streams that ended and were opened again.
	Reconnects uint64
	// Malformed counts messages refused (logged; the last good state was kept).
	Malformed uint64
	// Fallbacks counts the fallback answers by reason (index FallbackNotReady,
	// FallbackUnknownRollout, FallbackInvalidKey; FallbackNone stays 0).
	Fallbacks [4]uint64
	// LastError is the error that ended the last stream, if any.
	LastError error
}

// LocalRouter answers Route in process from the routing state streamed by WatchRoutes
// (routing spec v1: the same answer as the server's Route). It is safe for concurrent use.
type LocalRouter struct {
	c    *Client
	opts LocalOptions
	log  *slog.Logger

	state     atomic.Pointer[localState]
	ready     chan struct{}
	readyOnce sync.Once
	started   time.Time
	lastHeard atomic.Int64
	connected atomic.Bool

	resets, changes, heartbeats, reconnects, malformed atomic.Uint64
	fallbacks                                          [4]atomic.Uint64

	errMu   sync.Mutex
	lastErr error

	// applyMu serialises the writers of state: the stream and the state file at start.
	applyMu sync.Mutex

	cancel context.CancelFunc
	done   sync.WaitGroup

	listenMu  sync.Mutex
	listeners []*LocalListener
}

// LocalListener hears what a local router's state does; either function may be nil. Both are
// called from the stream's goroutine, one call at a time: they must not block.
type LocalListener struct {
	// Changed receives the rollouts added, changed or removed by one update after the first state.
	Changed func(rollouts []string)
	// Connection receives false when the stream drops and true when one answers again.
	Connection func(connected bool)
}

// Subscribe calls ln on every later change and connection change; the function it returns
// unsubscribes.
func (l *LocalRouter) Subscribe(ln LocalListener) (unsubscribe func()) {
	p := &ln
	l.listenMu.Lock()
	l.listeners = append(l.listeners, p)
	l.listenMu.Unlock()
	return func() {
		l.listenMu.Lock()
		l.listeners = slices.DeleteFunc(l.listeners, func(q *LocalListener) bool { return q == p })
		l.listenMu.Unlock()
	}
}

// RouteState returns the state held for a rollout, or nil. Do not modify it.
func (l *LocalRouter) RouteState(rollout string) *rollgatev1.RouteState {
	if st := l.state.Load(); st != nil {
		if r := st.rollouts[rollout]; r != nil {
			return r.state
		}
	}
	return nil
}

// RolloutNames returns the names of the rollouts held.
func (l *LocalRouter) RolloutNames() []string {
	st := l.state.Load()
	if st == nil {
		return nil
	}
	names := make([]string, 0, len(st.rollouts))
	for name := range st.rollouts {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// notify calls every listener's function that f picks.
func (l *LocalRouter) notify(f func(*LocalListener)) {
	l.listenMu.Lock()
	ls := slices.Clone(l.listeners)
	l.listenMu.Unlock()
	for _, ln := range ls {
		f(ln)
	}
}

// notifyChanged tells the listeners which rollouts differ between two states.
func (l *LocalRouter) notifyChanged(before, after *localState) {
	if before == nil || after == nil || before == after {
		return
	}
	var changed []string
	for name, r := range after.rollouts {
		if b := before.rollouts[name]; b == nil || b.state.GetRolloutVersion() != r.state.GetRolloutVersion() {
			changed = append(changed, name)
		}
	}
	for name := range before.rollouts {
		if after.rollouts[name] == nil {
			changed = append(changed, name)
		}
	}
	if len(changed) == 0 {
		return
	}
	slices.Sort(changed)
	l.notify(func(ln *LocalListener) {
		if ln.Changed != nil {
			ln.Changed(changed)
		}
	})
}

// localState is one immutable version of the routing state; writers swap a new one in.
type localState struct {
	revision uint64
	rollouts map[string]*localRollout
	fromFile bool
}

// localRollout is a RouteState compiled for routing: one hash, one map lookup at most, and a
// copy of a prepared answer per call.
type localRollout struct {
	state *rollgatev1.RouteState
	// prefix is salt || 0x00.
	prefix string
	weight uint32
	// overrides is nil when overrides do not apply to the stage or there are none.
	overrides map[string]Variant
	// fixed is the variant the stage sends everyone to, 0 in STAGE_CANARY.
	fixed Variant
	// answers holds the answer of each variant (index Stable, Canary) with Bucket unset.
	answers [3]RouteResult
}

// StartLocal starts local evaluation: a WatchRoutes subscription whose state the returned
// router routes from, in process, with no network on the call path. It waits up to
// opts.StartupTimeout for the first snapshot (ctx can cut that wait short); then, if none has
// arrived and opts.StateFile holds a state, it routes from that. The router runs until its
// Close or the client's Close. It returns an error only for invalid options or a closed client.
func (c *Client) StartLocal(ctx context.Context, opts LocalOptions) (*LocalRouter, error) {
	if c.life.Err() != nil {
		return nil, ErrClosed
	}
	if len(opts.Rollouts) > maxWatchedRollouts {
		return nil, fmt.Errorf("rollgate: LocalOptions.Rollouts: at most %d names, got %d", maxWatchedRollouts, len(opts.Rollouts))
	}
	switch opts.Fallback {
	case rollgatev1.Variant_VARIANT_UNSPECIFIED:
		opts.Fallback = Stable
	case Stable, Canary:
	default:
		return nil, fmt.Errorf("rollgate: LocalOptions.Fallback: must be Stable or Canary, got %v", opts.Fallback)
	}
	if opts.StartupTimeout == 0 {
		opts.StartupTimeout = DefaultStartupTimeout
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 20 * time.Second
	}
	opts.Backoff = opts.Backoff.withDefaults(DefaultWatchBackoff)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Rollouts = slices.Clone(opts.Rollouts)
	l := &LocalRouter{c: c, opts: opts, log: opts.Logger, ready: make(chan struct{}), started: time.Now()}
	life, cancel := context.WithCancel(c.life)
	l.cancel = cancel
	l.done.Add(2)
	c.watches.Add(2)
	go func() {
		defer c.watches.Done()
		defer l.done.Done()
		l.run(life)
	}()
	go func() {
		defer c.watches.Done()
		defer l.done.Done()
		l.watchStaleness(life)
	}()
	if opts.StartupTimeout > 0 {
		t := time.NewTimer(opts.StartupTimeout)
		select {
		case <-l.ready:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if opts.StateFile != "" && l.state.Load() == nil {
		l.loadStateFile()
	}
	return l, nil
}

// Route returns where a key of a rollout goes, from the state held: the answer the server's
// Route gives for the same state. It never fails and never waits: without a state, for a
// rollout the state does not hold and for an invalid key it answers the fallback variant with
// Fallback set to the reason (Reason is then ROUTE_REASON_UNSPECIFIED, Version empty).
// Features is shared between answers: do not modify it.
func (l *LocalRouter) Route(rollout, key string) RouteResult {
	st := l.state.Load()
	if st == nil {
		return l.fallback(rollout, key, FallbackNotReady)
	}
	r := st.rollouts[rollout]
	if r == nil {
		return l.fallback(rollout, key, FallbackUnknownRollout)
	}
	if !validKey(key) {
		return l.fallback(rollout, key, FallbackInvalidKey)
	}
	b := bucketPrefixed(r.prefix, key)
	var res RouteResult
	if v, ok := r.overrides[key]; ok {
		res = r.answers[v]
		res.Reason = rollgatev1.RouteReason_ROUTE_REASON_OVERRIDE
	} else if r.fixed != 0 {
		res = r.answers[r.fixed]
	} else if b < r.weight {
		res = r.answers[Canary]
	} else {
		res = r.answers[Stable]
	}
	res.Bucket = b
	return res
}

// fallback is the answer without a state for the rollout or for an invalid key: the fallback
// variant, no version, weight or features, and the key's bucket under the default salt (the
// rollout's name), 0 for an invalid key — the same answer as the TypeScript client's.
func (l *LocalRouter) fallback(rollout, key string, why FallbackReason) RouteResult {
	l.fallbacks[why].Add(1)
	res := RouteResult{Variant: l.opts.Fallback, Fallback: why}
	if why != FallbackInvalidKey && validKey(key) {
		res.Bucket = Bucket(rollout, key)
	}
	return res
}

// validKey reports whether Route would accept a key: 1..1024 bytes of UTF-8.
func validKey(key string) bool {
	return len(key) > 0 && len(key) <= maxKeyBytes && utf8.ValidString(key)
}

// Ready returns a channel closed once the first state from the server has been applied.
func (l *LocalRouter) Ready() <-chan struct{} { return l.ready }

// Stats returns what the router holds and how fresh it is.
func (l *LocalRouter) Stats() LocalStats {
	s := LocalStats{
		Connected:  l.connected.Load(),
		Resets:     l.resets.Load(),
		Changes:    l.changes.Load(),
		Heartbeats: l.heartbeats.Load(),
		Reconnects: l.reconnects.Load(),
		Malformed:  l.malformed.Load(),
	}
	for i := range s.Fallbacks {
		s.Fallbacks[i] = l.fallbacks[i].Load()
	}
	if st := l.state.Load(); st != nil {
		s.Ready, s.FromFile, s.Revision, s.Rollouts = true, st.fromFile, st.revision, len(st.rollouts)
	}
	s.Staleness = l.staleness(time.Now())
	if at := l.lastHeard.Load(); at != 0 {
		s.LastHeard = time.Unix(0, at)
	}
	s.Stale = s.Staleness > l.opts.StaleAfter
	l.errMu.Lock()
	s.LastError = l.lastErr
	l.errMu.Unlock()
	return s
}

// Close stops the subscription and waits for it to end; Route goes on answering from the last
// state. The client's Close does the same for every router.
func (l *LocalRouter) Close() {
	l.cancel()
	l.done.Wait()
}

func (l *LocalRouter) staleness(now time.Time) time.Duration {
	if at := l.lastHeard.Load(); at != 0 {
		return now.Sub(time.Unix(0, at))
	}
	return now.Sub(l.started)
}

// watchStaleness logs once when the server has not been heard from for StaleAfter, and once
// when it is heard again.
func (l *LocalRouter) watchStaleness(ctx context.Context) {
	tick := time.NewTicker(min(time.Second, l.opts.StaleAfter/4))
	defer tick.Stop()
	stale := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			age := l.staleness(now)
			switch {
			case !stale && age > l.opts.StaleAfter:
				stale = true
				st := l.Stats()
				l.log.Warn("rollgate: local routing state is stale: routing on from the last state held",
					"staleness", age.Round(time.Millisecond).String(), "stale_after", l.opts.StaleAfter.String(),
					"revision", st.Revision, "rollouts", st.Rollouts, "ready", st.Ready, "error", errString(st.LastError))
			case stale && age <= l.opts.StaleAfter:
				stale = false
				l.log.Info("rollgate: local routing state is fresh again", "revision", l.Stats().Revision)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// errMalformed marks a stream ended by the client because of a message it refused.
var errMalformed = errors.New("malformed WatchRoutes message")

// errIdle marks a stream ended by the client because nothing arrived for IdleTimeout.
var errIdle = errors.New("no WatchRoutes message (not even a heartbeat) within the idle timeout")

// run keeps a WatchRoutes stream open: it reconnects with backoff whenever the stream ends and
// resumes from the revision held.
func (l *LocalRouter) run(ctx context.Context) {
	failures := 0
	snapshot := false
	for {
		err, applied := l.streamOnce(ctx, snapshot)
		if ctx.Err() != nil {
			return
		}
		if l.connected.Swap(false) {
			l.notify(func(ln *LocalListener) {
				if ln.Connection != nil {
					ln.Connection(false)
				}
			})
		}
		l.errMu.Lock()
		l.lastErr = err
		l.errMu.Unlock()
		if applied {
			failures = 0
		}
		failures++
		l.reconnects.Add(1)
		// A revision the server refuses (ahead of its log: a server started on another
		// database) is given up: the next stream asks for a snapshot.
		code := connect.CodeOf(err)
		snapshot = !errors.Is(err, errMalformed) && (code == connect.CodeInvalidArgument || code == connect.CodeOutOfRange || code == connect.CodeFailedPrecondition)
		delay := l.opts.Backoff.Delay(failures)
		if finalCodes[code] && !errors.Is(err, errMalformed) && failures&(failures-1) == 0 {
			// Refused (unknown rollout name, bad token, old server): no reconnect will cure it
			// until someone fixes it, so say so loudly, at attempts 1, 2, 4, 8, …
			l.log.Error("rollgate: WatchRoutes refused: routing on from the last state held (or the fallback), retrying",
				"error", errString(err), "attempt", failures, "retry_in", delay.Round(time.Millisecond).String())
		} else if failures == 1 {
			l.log.Warn("rollgate: WatchRoutes stream ended: routing on from the last state held, reconnecting",
				"error", errString(err), "revision", l.Stats().Revision, "retry_in", delay.Round(time.Millisecond).String())
		} else {
			l.log.Debug("rollgate: WatchRoutes reconnect failed", "error", errString(err), "attempt", failures)
		}
		if !sleepCtx(ctx, delay) {
			return
		}
	}
}

// streamOnce runs one WatchRoutes stream until it ends; it returns why, and whether it applied
// any message.
func (l *LocalRouter) streamOnce(ctx context.Context, snapshot bool) (error, bool) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(l.opts.IdleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	req := &rollgatev1.WatchRoutesRequest{Rollouts: l.opts.Rollouts}
	if st := l.state.Load(); st != nil && !snapshot {
		req.AfterRevision = st.revision
	}
	stream, err := l.c.Decisions.WatchRoutes(ctx, connect.NewRequest(req))
	if err != nil {
		return l.streamErr(ctx, err), false
	}
	defer stream.Close()
	applied := false
	for stream.Receive() {
		idle.Reset(l.opts.IdleTimeout)
		l.heard()
		before := l.state.Load()
		if err := l.apply(stream.Msg()); err != nil {
			l.malformed.Add(1)
			l.log.Error("rollgate: malformed WatchRoutes message refused: keeping the last good state", "error", err.Error())
			return fmt.Errorf("%w: %v", errMalformed, err), applied
		}
		l.notifyChanged(before, l.state.Load())
		applied = true
	}
	err = stream.Err()
	if err == nil {
		err = errors.New("WatchRoutes stream ended by the server")
	}
	if strings.Contains(err.Error(), "unmarshal") {
		l.malformed.Add(1)
		l.log.Error("rollgate: undecodable WatchRoutes message: keeping the last good state", "error", err.Error())
		err = fmt.Errorf("%w: %v", errMalformed, err)
	}
	return l.streamErr(ctx, err), applied
}

func (l *LocalRouter) streamErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errIdle) {
		return errIdle
	}
	return err
}

// heard records a message from the server; the first after a break logs the reconnect and
// tells the outcome buffer that the server is back.
func (l *LocalRouter) heard() {
	l.lastHeard.Store(time.Now().UnixNano())
	if !l.connected.Swap(true) {
		if l.reconnects.Load() > 0 {
			l.log.Info("rollgate: WatchRoutes stream reconnected", "revision", l.Stats().Revision)
		}
		l.c.outcomes.serverBack()
		l.notify(func(ln *LocalListener) {
			if ln.Connection != nil {
				ln.Connection(true)
			}
		})
	}
}

// apply applies one message to the state, all or nothing: a message with anything wrong in it
// changes nothing and is reported.
func (l *LocalRouter) apply(m *rollgatev1.WatchRoutesResponse) error {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	compiled := make([]*localRollout, 0, len(m.GetRoutes()))
	for i, rs := range m.GetRoutes() {
		r, err := compileRoute(rs)
		if err != nil {
			return fmt.Errorf("routes[%d] (%q): %w", i, rs.GetRollout(), err)
		}
		compiled = append(compiled, r)
	}
	for i, name := range m.GetRemoved() {
		if name == "" {
			return fmt.Errorf("removed[%d]: empty rollout name", i)
		}
	}
	cur := l.state.Load()
	if m.GetReset_() {
		next := &localState{revision: m.GetRevision(), rollouts: make(map[string]*localRollout, len(compiled))}
		for _, r := range compiled {
			next.rollouts[r.state.GetRollout()] = r
		}
		l.install(next, &l.resets)
		return nil
	}
	if cur == nil {
		return errors.New("a change before any snapshot (reset)")
	}
	if m.GetRevision() < cur.revision {
		return fmt.Errorf("revision %d is behind the %d held", m.GetRevision(), cur.revision)
	}
	if len(compiled) == 0 && len(m.GetRemoved()) == 0 {
		l.heartbeats.Add(1)
		if m.GetRevision() != cur.revision || cur.fromFile {
			l.state.Store(&localState{revision: m.GetRevision(), rollouts: cur.rollouts})
		}
		l.readyOnce.Do(func() { close(l.ready) })
		return nil
	}
	next := &localState{revision: m.GetRevision(), rollouts: make(map[string]*localRollout, len(cur.rollouts)+len(compiled))}
	for name, r := range cur.rollouts {
		next.rollouts[name] = r
	}
	for _, name := range m.GetRemoved() {
		delete(next.rollouts, name)
	}
	for _, r := range compiled {
		next.rollouts[r.state.GetRollout()] = r
	}
	l.install(next, &l.changes)
	return nil
}

// install makes next the state Route answers from, counts it, saves it to the state file (when
// one is configured) and marks the router ready.
func (l *LocalRouter) install(next *localState, counter *atomic.Uint64) {
	l.state.Store(next)
	counter.Add(1)
	l.persist(next)
	l.readyOnce.Do(func() { close(l.ready) })
}

// compileRoute checks a RouteState and prepares its answers (routing spec v1, vectors/README.md).
func compileRoute(rs *rollgatev1.RouteState) (*localRollout, error) {
	name := rs.GetRollout()
	if name == "" {
		return nil, errors.New("empty rollout name")
	}
	if rs.GetWeightBp() > Buckets {
		return nil, fmt.Errorf("weight_bp %d over %d", rs.GetWeightBp(), Buckets)
	}
	for key, v := range rs.GetOverrides() {
		if v != Stable && v != Canary {
			return nil, fmt.Errorf("overrides[%q]: variant %v", key, v)
		}
	}
	salt := rs.GetSalt()
	if salt == "" {
		salt = name
	}
	var enabled, all []string
	for f, on := range rs.GetFeatures() {
		all = append(all, f)
		if on {
			enabled = append(enabled, f)
		}
	}
	sortUTF16(enabled)
	sortUTF16(all)
	r := &localRollout{state: rs, prefix: salt + "\x00"}
	var canaryFeatures, stableFeatures []string
	reason := rollgatev1.RouteReason_ROUTE_REASON_WEIGHT
	overridable := false
	switch rs.GetStage() {
	case rollgatev1.Stage_STAGE_CANARY:
		r.weight, overridable, canaryFeatures = rs.GetWeightBp(), true, enabled
	case rollgatev1.Stage_STAGE_STAGING:
		r.weight, overridable, r.fixed, reason, canaryFeatures = Buckets, true, Canary, rollgatev1.RouteReason_ROUTE_REASON_STAGE, all
	case rollgatev1.Stage_STAGE_PRODUCTION:
		r.fixed, reason, canaryFeatures, stableFeatures = Stable, rollgatev1.RouteReason_ROUTE_REASON_STAGE, enabled, enabled
	case rollgatev1.Stage_STAGE_ROLLED_BACK:
		r.fixed, reason = Stable, rollgatev1.RouteReason_ROUTE_REASON_ROLLED_BACK
	case rollgatev1.Stage_STAGE_HALTED:
		r.fixed, reason = Stable, rollgatev1.RouteReason_ROUTE_REASON_HALTED
	default:
		return nil, fmt.Errorf("stage %v", rs.GetStage())
	}
	if overridable && len(rs.GetOverrides()) > 0 {
		r.overrides = make(map[string]Variant, len(rs.GetOverrides()))
		for k, v := range rs.GetOverrides() {
			r.overrides[k] = v
		}
	}
	base := RouteResult{WeightBP: r.weight, Reason: reason, RolloutVersion: rs.GetRolloutVersion()}
	r.answers[Stable], r.answers[Canary] = base, base
	r.answers[Stable].Variant, r.answers[Stable].Version, r.answers[Stable].Features = Stable, rs.GetStableVersion(), stableFeatures
	r.answers[Canary].Variant, r.answers[Canary].Version, r.answers[Canary].Features = Canary, rs.GetCanaryVersion(), canaryFeatures
	return r, nil
}

// sortUTF16 sorts names by UTF-16 code units, the order the server (JavaScript) sorts them in.
func sortUTF16(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
	})
}
