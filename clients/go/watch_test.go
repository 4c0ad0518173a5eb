package rollgate_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// next receives the next update of a watch, failing the test when none comes in 30 s.
func next(t *testing.T, w *rollgate.HealthWatch) *rollgatev1.HealthUpdate {
	t.Helper()
	select {
	case u, ok := <-w.C:
		if !ok {
			t.Fatalf("the watch ended: %v", w.Err())
		}
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("no health update within 30 s")
		return nil
	}
}

func TestHealth(t *testing.T) {
	c := newClient(t, shared.URL, rollgate.Options{})
	ctx := testContext(t)
	name := uniqueName("health")
	created := createRollout(t, c, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})

	h, err := c.Health(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if h.GetRollout() != name || h.GetStage() != rollgatev1.Stage_STAGE_CANARY || h.GetWeightBp() != created.GetWeightBp() {
		t.Fatalf("Health: %v", h)
	}
	if h.GetSamples().GetStable() != 0 || h.GetSamples().GetCanary() != 0 {
		t.Fatalf("a new rollout has no samples: %v", h.GetSamples())
	}
	if h.GetScore() < 0 || h.GetScore() > 1 {
		t.Fatalf("score %v", h.GetScore())
	}
	_, err = c.Health(ctx, "no-such-rollout")
	wantCode(t, err, connect.CodeNotFound)
}

func TestWatchHealthStreamsEvaluations(t *testing.T) {
	c := newClient(t, shared.URL, rollgate.Options{})
	name := uniqueName("watch")
	createRollout(t, c, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})

	w := c.WatchHealth(testContext(t), name)
	defer w.Stop()
	first := next(t, w)
	if first.GetSeq() != 1 || first.GetHealth().GetRollout() != name || first.GetDeleted() {
		t.Fatalf("first update: %v", first)
	}
	// The next evaluation (every analysis.interval = 1 s) is a newer update.
	second := next(t, w)
	if second.GetSeq() != 2 || second.GetHealth().GetRollout() != name {
		t.Fatalf("second update: %v", second)
	}
	if second.GetHealth().GetEvaluatedAt().AsTime().Before(first.GetHealth().GetEvaluatedAt().AsTime()) {
		t.Fatalf("updates went back in time: %v then %v", first.GetHealth().GetEvaluatedAt(), second.GetHealth().GetEvaluatedAt())
	}

	// Outcomes recorded through the buffer show up in a later update's samples.
	for range 25 {
		if err := c.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Canary, Success: true, LatencyMS: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(testContext(t)); err != nil {
		t.Fatal(err)
	}
	seq := second.GetSeq()
	for {
		u := next(t, w)
		if u.GetSeq() <= seq {
			t.Fatalf("seq went from %d to %d", seq, u.GetSeq())
		}
		seq = u.GetSeq()
		if u.GetHealth().GetSamples().GetCanary() == 25 {
			break
		}
	}

	w.Stop()
	if _, ok := <-w.C; ok {
		t.Fatal("C still open after Stop")
	}
	if err := w.Err(); err != nil {
		t.Fatalf("Err after Stop: %v", err)
	}
}

func TestWatchHealthEndsOnErrorsNoReconnectCures(t *testing.T) {
	c := newClient(t, shared.URL, rollgate.Options{})
	w := c.WatchHealth(testContext(t), "no-such-rollout")
	select {
	case u, ok := <-w.C:
		if ok {
			t.Fatalf("got an update for an unknown rollout: %v", u)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch of an unknown rollout did not end")
	}
	wantCode(t, w.Err(), connect.CodeNotFound)
}

func TestCloseEndsWatches(t *testing.T) {
	c, err := rollgate.New(shared.URL, rollgate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("close")
	createRollout(t, c, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})
	w := c.WatchHealth(context.Background(), name)
	next(t, w)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range w.C { // drain: it must close
	}
	if err := w.Err(); err != nil {
		t.Fatalf("Err after Close: %v", err)
	}
}

// TestWatchHealthReconnectsAcrossARestart restarts the server on the same port and database
// under a running watch: the watch reconnects by itself and goes on with newer updates.
func TestWatchHealthReconnectsAcrossARestart(t *testing.T) {
	s := startTestServer(t)
	var reconnects atomic.Int32
	c := newClient(t, s.URL, rollgate.Options{
		WatchBackoff: rollgate.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		OnReconnect:  func(string, error, int) { reconnects.Add(1) },
	})
	name := uniqueName("restart")
	createRollout(t, c, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})
	w := c.WatchHealth(testContext(t), name)
	defer w.Stop()
	before := next(t, w)

	s.stop()
	restarted, err := startServer(fmt.Sprintf("127.0.0.1:%d", s.Port), s.DB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.stop)

	// Updates delivered after the restart are strictly newer and keep counting up.
	seq, at := before.GetSeq(), before.GetHealth().GetEvaluatedAt().AsTime()
	for reconnects.Load() == 0 {
		u := next(t, w)
		if u.GetSeq() != seq+1 || u.GetHealth().GetEvaluatedAt().AsTime().Before(at) {
			t.Fatalf("update %d at %v after %d at %v", u.GetSeq(), u.GetHealth().GetEvaluatedAt().AsTime(), seq, at)
		}
		seq, at = u.GetSeq(), u.GetHealth().GetEvaluatedAt().AsTime()
	}
	after := next(t, w)
	if after.GetSeq() != seq+1 || after.GetHealth().GetRollout() != name || !after.GetHealth().GetEvaluatedAt().AsTime().After(at) {
		t.Fatalf("after the restart: %v (last before: seq %d at %v)", after, seq, at)
	}
	if _, err := c.Route(testContext(t), name, "k"); err != nil {
		t.Fatalf("the rollout should survive the restart: %v", err)
	}
}
