package rollgate_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// sameAnswer reports whether a local answer is the server's, field for field.
func sameAnswer(local rollgate.RouteResult, remote *rollgatev1.RouteResponse) bool {
	return local.Fallback == rollgate.FallbackNone && local.Variant == remote.GetVariant() && local.Version == remote.GetVersion() &&
		local.Bucket == remote.GetBucket() && local.WeightBP == remote.GetWeightBp() && slices.Equal(local.Features, remote.GetFeatures()) &&
		local.Reason == remote.GetReason() && local.RolloutVersion == remote.GetRolloutVersion()
}

// rolloutVersion reads a rollout's version from the control plane.
func rolloutVersion(t *testing.T, c *rollgate.Client, name string) uint64 {
	t.Helper()
	resp, err := c.Rollouts.GetRollout(testContext(t), connect.NewRequest(&rollgatev1.GetRolloutRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetRollout().GetVersion()
}

// TestLocalMatchesRemoteRouteInEveryStage puts one rollout in each stage (features on and off,
// overrides to both sides), and routes 10,000 keys of each through the local router and
// through the server (RouteBatch, and Route for a sample), comparing every field.
func TestLocalMatchesRemoteRouteInEveryStage(t *testing.T) {
	ctx := testContext(t)
	c := newClient(t, shared.URL, rollgate.Options{})
	stages := []rollgatev1.Stage{rollgatev1.Stage_STAGE_CANARY, rollgatev1.Stage_STAGE_STAGING, rollgatev1.Stage_STAGE_PRODUCTION,
		rollgatev1.Stage_STAGE_ROLLED_BACK, rollgatev1.Stage_STAGE_HALTED}
	names := make([]string, len(stages))
	for i, stage := range stages {
		name := uniqueName("local-" + stage.String())
		names[i] = name
		createRollout(t, c, &rollgatev1.Rollout{Name: name, Salt: name + "-salt"})
		for f, on := range map[string]bool{"new-ui": true, "beta": false, "Dark.mode": true} {
			if _, err := c.Rollouts.SetFeature(ctx, connect.NewRequest(&rollgatev1.SetFeatureRequest{Name: name, Feature: f, Enabled: on, Reason: "test"})); err != nil {
				t.Fatal(err)
			}
		}
		for key, v := range map[string]rollgate.Variant{"user-7": rollgate.Canary, "user-42": rollgate.Stable, "user-9999": rollgate.Canary} {
			if _, err := c.Rollouts.SetOverride(ctx, connect.NewRequest(&rollgatev1.SetOverrideRequest{Name: name, Key: key, Variant: v, Reason: "test"})); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		switch stage {
		case rollgatev1.Stage_STAGE_CANARY:
			setWeight(t, c, name, 3333)
		case rollgatev1.Stage_STAGE_STAGING:
			_, err = c.Rollouts.Promote(ctx, connect.NewRequest(&rollgatev1.PromoteRequest{Name: name, Target: rollgatev1.PromoteTarget_PROMOTE_TARGET_STAGING, Force: true, Reason: "test"}))
		case rollgatev1.Stage_STAGE_PRODUCTION:
			_, err = c.Rollouts.Promote(ctx, connect.NewRequest(&rollgatev1.PromoteRequest{Name: name, Target: rollgatev1.PromoteTarget_PROMOTE_TARGET_PRODUCTION, Force: true, Reason: "test"}))
		case rollgatev1.Stage_STAGE_ROLLED_BACK:
			_, err = c.Rollouts.Rollback(ctx, connect.NewRequest(&rollgatev1.RollbackRequest{Name: name, Reason: "test"}))
		case rollgatev1.Stage_STAGE_HALTED:
			_, err = c.Rollouts.Halt(ctx, connect.NewRequest(&rollgatev1.HaltRequest{Name: name, Reason: "test"}))
		}
		if err != nil {
			t.Fatalf("%s to %v: %v", name, stage, err)
		}
	}
	l, err := c.StartLocal(ctx, rollgate.LocalOptions{Rollouts: names, StartupTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i, name := range names {
		want := rolloutVersion(t, c, name)
		eventually(t, name+" at its last version", func() bool { return l.Route(name, "k").RolloutVersion == want })
		keys := make([]string, 10000)
		for k := range keys {
			keys[k] = fmt.Sprintf("user-%d", k)
		}
		seen := map[rollgatev1.RouteReason]int{}
		for from := 0; from < len(keys); from += 1000 {
			resp, err := c.Decisions.RouteBatch(ctx, connect.NewRequest(&rollgatev1.RouteBatchRequest{Rollout: name, Keys: keys[from : from+1000]}))
			if err != nil {
				t.Fatal(err)
			}
			for j, remote := range resp.Msg.GetResults() {
				key := keys[from+j]
				if local := l.Route(name, key); !sameAnswer(local, remote) {
					t.Fatalf("%v: Route(%s, %s) local %+v, server %v", stages[i], name, key, local, remote)
				}
				seen[remote.GetReason()]++
			}
		}
		for k := 0; k < 10000; k += 100 {
			remote, err := c.Decisions.Route(ctx, connect.NewRequest(&rollgatev1.RouteRequest{Rollout: name, Key: keys[k]}))
			if err != nil {
				t.Fatal(err)
			}
			if local := l.Route(name, keys[k]); !sameAnswer(local, remote.Msg) {
				t.Fatalf("%v: Route(%s, %s) local %+v, server %v", stages[i], name, keys[k], local, remote.Msg)
			}
		}
		t.Logf("%v: 10,000 keys equal, reasons %v", stages[i], seen)
	}
	if s := l.Stats(); s.Malformed != 0 || s.Rollouts != len(names) || !s.Connected {
		t.Fatalf("stats %+v", s)
	}
}

// TestLocalRoutesThroughAKill9 routes locally, kills the server with SIGKILL, goes on routing
// (the same answers, no fallback) and recording outcomes for 30 s, restarts the server on the
// same database and port, and sees a SetWeight arrive and the outage's outcomes accepted.
func TestLocalRoutesThroughAKill9(t *testing.T) {
	s := startTestServer(t)
	const maxBuffered, recorded = 2000, 3000
	c := newClient(t, s.URL, rollgate.Options{
		Retry:    rollgate.RetryPolicy{MaxAttempts: 2, Backoff: rollgate.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond}},
		Outcomes: rollgate.OutcomeOptions{FlushInterval: 200 * time.Millisecond, MaxBatch: 500, MaxBuffered: maxBuffered},
	})
	name := uniqueName("kill9")
	createRollout(t, c, &rollgatev1.Rollout{Name: name, Analysis: fastAnalysis()})
	setWeight(t, c, name, 3000)
	if _, err := c.Rollouts.SetOverride(testContext(t), connect.NewRequest(&rollgatev1.SetOverrideRequest{Name: name, Key: "vip", Variant: rollgate.Canary, Reason: "test"})); err != nil {
		t.Fatal(err)
	}
	log, logs := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{Rollouts: []string{name}, StartupTimeout: 20 * time.Second,
		StaleAfter: 2 * time.Second, Backoff: rollgate.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"vip"}
	for i := range 999 {
		keys = append(keys, fmt.Sprintf("user-%d", i))
	}
	before := map[string]rollgate.RouteResult{}
	for _, k := range keys {
		before[k] = l.Route(name, k)
		if before[k].Fallback != rollgate.FallbackNone {
			t.Fatalf("Route(%s) before the kill: %+v", k, before[k])
		}
	}

	s.kill()
	start := time.Now()
	routed, outcomes := 0, 0
	for time.Since(start) < 30*time.Second {
		for _, k := range keys {
			r := l.Route(name, k)
			b := before[k]
			if r.Variant != b.Variant || r.Version != b.Version || r.Bucket != b.Bucket || r.Reason != b.Reason || r.RolloutVersion != b.RolloutVersion || r.Fallback != rollgate.FallbackNone {
				t.Fatalf("after %v without a server, Route(%s) = %+v, before the kill %+v", time.Since(start), k, r, b)
			}
			routed++
		}
		// 3,000 outcomes over the first 15 s, all canary so that the server's count is exact.
		for ; outcomes < recorded && outcomes < int(time.Since(start)/(5*time.Millisecond)); outcomes++ {
			if err := c.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Canary, Success: true, LatencyMS: 12}); err != nil {
				t.Fatalf("RecordOutcome during the outage: %v", err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if outcomes != recorded {
		t.Fatalf("recorded %d outcomes, want %d", outcomes, recorded)
	}
	ls, ost := l.Stats(), c.OutcomeStats()
	t.Logf("outage: %d local decisions in 30 s; router %+v; outcomes %+v", routed, ls, ost)
	if !ls.Ready || ls.Connected || !ls.Stale || ls.Staleness < 30*time.Second || ls.Fallbacks != [4]uint64{} {
		t.Fatalf("router stats after 30 s of outage: %+v", ls)
	}
	if !ost.Outage || ost.Sent != 0 || ost.Buffered > maxBuffered || ost.Buffered+ost.InFlight+int(ost.Dropped) != recorded || ost.Dropped != ost.Overflow || ost.Dropped < recorded-maxBuffered-500 {
		t.Fatalf("outcome stats after the outage: %+v", ost)
	}
	if !strings.Contains(logs.String(), "WatchRoutes stream ended") || !strings.Contains(logs.String(), "local routing state is stale") {
		t.Fatalf("the log does not tell of the outage:\n%s", logs.String())
	}

	restarted, err := startServer(fmt.Sprintf("127.0.0.1:%d", s.Port), s.DB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.stop)
	setWeight(t, c, name, 7000)
	want := rolloutVersion(t, c, name)
	eventually(t, "the SetWeight to reach the local router", func() bool {
		r := l.Route(name, "k")
		return r.RolloutVersion == want && r.WeightBP == 7000
	})
	for _, k := range keys {
		b := rollgate.Bucket(name, k)
		if r := l.Route(name, k); k != "vip" && r.Variant != rollgate.VariantOf(b, 7000) {
			t.Fatalf("Route(%s) at 7000 bp: %+v", k, r)
		}
	}
	if err := c.Flush(testContext(t)); err != nil {
		t.Fatalf("Flush after the restart: %v", err)
	}
	final := c.OutcomeStats()
	t.Logf("after the restart: outcomes %+v", final)
	if final.Sent+final.Dropped != recorded || final.Accepted != final.Sent || final.Buffered != 0 || final.Outage || final.Dropped != ost.Dropped {
		t.Fatalf("outcome stats after the restart: %+v", final)
	}
	waitForSamples(t, c, name, 0, final.Sent)
}

// TestLocalRefusedByTheServerAnswersTheFallback: the server refuses a watch of a rollout that
// does not exist (NOT_FOUND); the router says so in its log and answers the fallback, no error.
func TestLocalRefusedByTheServerAnswersTheFallback(t *testing.T) {
	c := newClient(t, shared.URL, rollgate.Options{})
	log, logs := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{Rollouts: []string{uniqueName("no-such")}, StartupTimeout: -1, Backoff: fastLocal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusal", func() bool { return connect.CodeOf(l.Stats().LastError) == connect.CodeNotFound })
	if r := l.Route("no-such", "k"); r.Fallback != rollgate.FallbackNotReady || r.Variant != rollgate.Stable {
		t.Fatalf("Route: %+v", r)
	}
	if !strings.Contains(logs.String(), "WatchRoutes refused") {
		t.Fatalf("the log does not say the watch was refused:\n%s", logs.String())
	}
}
