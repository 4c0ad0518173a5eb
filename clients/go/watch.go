package rollgate

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// HealthWatch is a running WatchHealth subscription. Receive updates from C; it is closed when
// the watch ends, after which Err says why.
type HealthWatch struct {
	// C delivers the updates: the current health first, then one per evaluation or state
	// change. Seq is renumbered by the client to stay strictly increasing across reconnects.
	C <-chan *rollgatev1.HealthUpdate

	cancel context.CancelFunc
	// ended is closed once err is final, before C is closed, so that Err called after C is
	// closed always sees it; done is closed after C.
	ended chan struct{}
	done  chan struct{}
	err   error
}

// Stop ends the watch and waits until C is closed. It is safe to call more than once.
func (w *HealthWatch) Stop() {
	w.cancel()
	<-w.done
}

// Err returns nil while the watch runs and after it was stopped (by Stop, its context or the
// client's Close); otherwise the error no reconnect could cure (NOT_FOUND, PERMISSION_DENIED,
// UNIMPLEMENTED, …) that ended it. Call it after C is closed.
func (w *HealthWatch) Err() error {
	select {
	case <-w.ended:
		return w.err
	default:
		return nil
	}
}

// finalCodes are the codes a reconnect cannot cure: the watch ends with the error. Anything
// else (the server restarting, a proxy cutting the stream, a network blip, a clean end of
// the stream) is reconnected after a backoff.
var finalCodes = map[connect.Code]bool{
	connect.CodeInvalidArgument:    true,
	connect.CodeNotFound:           true,
	connect.CodePermissionDenied:   true,
	connect.CodeUnauthenticated:    true,
	connect.CodeUnimplemented:      true,
	connect.CodeFailedPrecondition: true,
	connect.CodeAlreadyExists:      true,
	connect.CodeOutOfRange:         true,
}

// WatchHealth subscribes to a rollout's health ("" watches every rollout) and delivers the
// updates on the returned watch's channel until ctx is done, Stop or Close is called, or an
// error that no reconnect can cure ends it.
//
// When the stream breaks or ends (the server restarts, the network blips) the watch
// re-subscribes after a backoff (Options.WatchBackoff, with jitter, reset by every update) and
// resumes: WatchHealth starts each stream with the current health, and the client drops every
// update of a rollout that is not newer than the last one delivered for it: an update whose
// health.evaluated_at is earlier, or equal with identical content (a state change without a new
// evaluation still comes through).
func (c *Client) WatchHealth(ctx context.Context, rollout string) *HealthWatch {
	ctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(c.life, cancel)
	out := make(chan *rollgatev1.HealthUpdate)
	w := &HealthWatch{C: out, cancel: cancel, ended: make(chan struct{}), done: make(chan struct{})}
	c.watches.Add(1)
	go func() {
		defer c.watches.Done()
		defer stopOnClose()
		defer cancel()
		w.err = c.runWatch(ctx, rollout, out)
		close(w.ended)
		close(out)
		close(w.done)
	}()
	return w
}

func (c *Client) runWatch(ctx context.Context, rollout string, out chan<- *rollgatev1.HealthUpdate) error {
	last := map[string]*rollgatev1.HealthUpdate{}
	var seq uint64
	failures := 0
	for {
		err := c.watchOnce(ctx, rollout, func(u *rollgatev1.HealthUpdate) bool {
			failures = 0
			name := u.GetHealth().GetRollout()
			if !newer(last[name], u) {
				return true
			}
			last[name] = u
			seq++
			select {
			case out <- &rollgatev1.HealthUpdate{Seq: seq, Health: u.GetHealth(), Deleted: u.GetDeleted()}:
				return true
			case <-ctx.Done():
				return false
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && finalCodes[connect.CodeOf(err)] {
			return err
		}
		failures++
		if c.opts.OnReconnect != nil {
			c.opts.OnReconnect(rollout, err, failures)
		}
		if !sleepCtx(ctx, c.opts.WatchBackoff.Delay(failures)) {
			return nil
		}
	}
}

// watchOnce runs one WatchHealth stream, handing each message to deliver until it returns
// false; it returns the error that ended the stream, nil for a clean end.
func (c *Client) watchOnce(ctx context.Context, rollout string, deliver func(*rollgatev1.HealthUpdate) bool) error {
	stream, err := c.Decisions.WatchHealth(ctx, connect.NewRequest(&rollgatev1.WatchHealthRequest{Rollout: rollout}))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
		if !deliver(stream.Msg()) {
			return nil
		}
	}
	err = stream.Err()
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// newer reports whether next should be delivered after prev (the last update delivered for
// the same rollout): always when there is none or the deleted flag changed; otherwise when its
// evaluated_at is later, or the same with different content.
func newer(prev, next *rollgatev1.HealthUpdate) bool {
	if prev == nil || prev.GetDeleted() != next.GetDeleted() {
		return true
	}
	pt, nt := prev.GetHealth().GetEvaluatedAt().AsTime(), next.GetHealth().GetEvaluatedAt().AsTime()
	if nt.Before(pt) {
		return false
	}
	if nt.Equal(pt) {
		return !proto.Equal(prev.GetHealth(), next.GetHealth())
	}
	return true
}
