package rollgate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/open-feature/go-sdk/openfeature"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
	"rollgate/clients/go/ofprovider"
)

// TestOpenFeatureProviderThroughTheSDK drives the in-process provider through go-sdk against a
// live server: READY, Route's answers for 5,000 keys, errors, a rollback observed as
// CONFIGURATION_CHANGED, Track moving Health, and STALE/READY across a server restart.
func TestOpenFeatureProviderThroughTheSDK(t *testing.T) {
	ctx := testContext(t)
	s, err := startServer("127.0.0.1:0", filepath.Join(t.TempDir(), "of.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	admin := newClient(t, s.URL, rollgate.Options{})
	checkout, search := uniqueName("of-checkout"), uniqueName("of-search")
	createRollout(t, admin, &rollgatev1.Rollout{Name: checkout, Features: map[string]bool{"new-ui": true, "legacy": false}})
	setWeight(t, admin, checkout, 4000)
	if _, err := admin.Rollouts.SetOverride(ctx, connect.NewRequest(&rollgatev1.SetOverrideRequest{Name: checkout, Key: "vip", Variant: rollgate.Canary, Reason: "test"})); err != nil {
		t.Fatal(err)
	}
	createRollout(t, admin, &rollgatev1.Rollout{Name: search, StableVersion: "s1", CanaryVersion: "s2", Analysis: fastAnalysis()})

	app := newClient(t, s.URL, rollgate.Options{Outcomes: rollgate.OutcomeOptions{FlushInterval: 50 * time.Millisecond}})
	provider := ofprovider.New(app, ofprovider.Options{Local: rollgate.LocalOptions{
		StartupTimeout: 20 * time.Second,
		Backoff:        rollgate.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2},
	}})
	domain := uniqueName("of-domain")
	client := openfeature.NewClient(domain)
	var mu sync.Mutex
	var events []openfeature.EventDetails
	var kinds []openfeature.EventType
	for _, kind := range []openfeature.EventType{openfeature.ProviderReady, openfeature.ProviderStale, openfeature.ProviderConfigChange} {
		cb := func(d openfeature.EventDetails) {
			if d.ProviderName != "rollgate" {
				return
			}
			mu.Lock()
			events = append(events, d)
			kinds = append(kinds, kind)
			mu.Unlock()
		}
		client.AddHandler(kind, &cb)
	}
	if err := openfeature.SetNamedProviderAndWait(domain, provider); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(provider.Shutdown)
	if client.State() != openfeature.ReadyState {
		t.Fatalf("state %v, want READY", client.State())
	}
	kindsNow := func() []openfeature.EventType {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(kinds)
	}
	eventually(t, "READY", func() bool { return slices.Equal(kindsNow(), []openfeature.EventType{openfeature.ProviderReady}) })

	reasons := map[rollgatev1.RouteReason]openfeature.Reason{
		rollgatev1.RouteReason_ROUTE_REASON_WEIGHT:   openfeature.SplitReason,
		rollgatev1.RouteReason_ROUTE_REASON_OVERRIDE: openfeature.TargetingMatchReason,
	}
	keys := make([]string, 5000)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	keys[3] = "vip"
	canary := 0
	for start := 0; start < len(keys); start += 1000 {
		batch := keys[start : start+1000]
		resp, err := admin.Decisions.RouteBatch(ctx, connect.NewRequest(&rollgatev1.RouteBatchRequest{Rollout: checkout, Keys: batch}))
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range resp.Msg.GetResults() {
			ec := openfeature.NewEvaluationContext(batch[i], nil)
			got, err := client.StringValueDetails(ctx, checkout, "none", ec)
			wantVariant := "stable"
			if w.GetVariant() == rollgate.Canary {
				wantVariant = "canary"
				canary++
			}
			if err != nil || got.Value != w.GetVersion() || got.Variant != wantVariant || got.Reason != reasons[w.GetReason()] ||
				got.FlagMetadata["bucket"] != int64(w.GetBucket()) || got.FlagMetadata["stage"] != "canary" || got.FlagMetadata["weightBp"] != int64(4000) {
				t.Fatalf("key %q: got %+v (%v), Route says %v", batch[i], got, err, w)
			}
			on, err := client.BooleanValue(ctx, checkout+"/new-ui", false, ec)
			if err != nil || on != slices.Contains(w.GetFeatures(), "new-ui") {
				t.Fatalf("key %q: feature new-ui %v (%v), Route says %v", batch[i], on, err, w.GetFeatures())
			}
		}
	}
	if canary < 1000 || canary > 4000 {
		t.Fatalf("%d of 5000 keys on the canary at 40%%", canary)
	}

	ec := openfeature.NewEvaluationContext("k", nil)
	for _, c := range []struct {
		name string
		got  func() (openfeature.ErrorCode, error)
		want openfeature.ErrorCode
	}{
		{"unknown rollout", func() (openfeature.ErrorCode, error) {
			d, err := client.StringValueDetails(ctx, "nope", "d", ec)
			return d.ErrorCode, err
		}, openfeature.FlagNotFoundCode},
		{"unknown feature", func() (openfeature.ErrorCode, error) {
			d, err := client.BooleanValueDetails(ctx, checkout+"/nope", true, ec)
			return d.ErrorCode, err
		}, openfeature.FlagNotFoundCode},
		{"no targeting key", func() (openfeature.ErrorCode, error) {
			d, err := client.StringValueDetails(ctx, checkout, "d", openfeature.NewTargetlessEvaluationContext(nil))
			return d.ErrorCode, err
		}, openfeature.TargetingKeyMissingCode},
		{"bad key", func() (openfeature.ErrorCode, error) {
			d, err := client.StringValueDetails(ctx, checkout, "d", openfeature.NewEvaluationContext(string(make([]byte, 1025)), nil))
			return d.ErrorCode, err
		}, openfeature.InvalidContextCode},
		{"rollout as a boolean", func() (openfeature.ErrorCode, error) {
			d, err := client.BooleanValueDetails(ctx, checkout, false, ec)
			return d.ErrorCode, err
		}, openfeature.TypeMismatchCode},
	} {
		if code, err := c.got(); code != c.want || err == nil {
			t.Fatalf("%s: code %v (err %v), want %v", c.name, code, err, c.want)
		}
	}

	// A rollback: CONFIGURATION_CHANGED naming the rollout's flags; it reads DISABLED.
	if _, err := admin.Rollouts.Rollback(ctx, connect.NewRequest(&rollgatev1.RollbackRequest{Name: checkout, Reason: "test"})); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CONFIGURATION_CHANGED", func() bool { return slices.Contains(kindsNow(), openfeature.ProviderConfigChange) })
	mu.Lock()
	var changed []string
	for i, k := range kinds {
		if k == openfeature.ProviderConfigChange {
			changed = slices.Sorted(slices.Values(events[i].FlagChanges))
			break
		}
	}
	mu.Unlock()
	if want := []string{checkout, checkout + "/legacy", checkout + "/new-ui"}; !slices.Equal(changed, want) {
		t.Fatalf("flags changed %v, want %v", changed, want)
	}
	rolled, err := client.StringValueDetails(ctx, checkout, "none", openfeature.NewEvaluationContext("vip", nil))
	if err != nil || rolled.Value != "v1" || rolled.Variant != "stable" || rolled.Reason != openfeature.DisabledReason || rolled.FlagMetadata["stage"] != "rolled_back" {
		t.Fatalf("after the rollback: %+v (%v)", rolled, err)
	}

	// Track: one outcome per key for its routed variant; Health counts them.
	before, err := admin.Health(ctx, search)
	if err != nil {
		t.Fatal(err)
	}
	onCanary := 0
	for i := range 40 {
		tec := openfeature.NewEvaluationContext(fmt.Sprintf("t-%d", i), nil)
		if d, _ := client.StringValueDetails(ctx, search, "", tec); d.Variant == "canary" {
			onCanary++
		}
		client.Track(ctx, search, tec, openfeature.NewTrackingEventDetails(12).Add("success", true))
	}
	waitForSamples(t, admin, search, before.GetSamples().GetStable()+uint64(40-onCanary), before.GetSamples().GetCanary()+uint64(onCanary))

	// The server goes away: STALE, answers from the last state; it comes back: READY.
	s.stop()
	eventually(t, "STALE", func() bool { return slices.Contains(kindsNow(), openfeature.ProviderStale) })
	if v, _ := client.StringValue(context.Background(), search, "", ec); v != "s1" && v != "s2" {
		t.Fatalf("while stale: %q", v)
	}
	restarted, err := startServer(fmt.Sprintf("127.0.0.1:%d", s.Port), s.DB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.stop)
	eventually(t, "READY again", func() bool { k := kindsNow(); return k[len(k)-1] == openfeature.ProviderReady })
	var lifecycle []openfeature.EventType
	for _, k := range kindsNow() {
		if k != openfeature.ProviderConfigChange {
			lifecycle = append(lifecycle, k)
		}
	}
	if want := []openfeature.EventType{openfeature.ProviderReady, openfeature.ProviderStale, openfeature.ProviderReady}; !slices.Equal(lifecycle, want) {
		t.Fatalf("events %v, want %v", lifecycle, want)
	}
}
