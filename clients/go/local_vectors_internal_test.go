package rollgate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// TestLocalRouteMatchesRoutingVectors routes every case of vectors/routing-v1.json through a
// LocalRouter holding the case's RouteState and compares the whole answer.
func TestLocalRouteMatchesRoutingVectors(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "vectors", "routing-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []struct {
			State json.RawMessage `json:"state"`
			Key   string          `json:"key"`
			Want  json.RawMessage `json:"want"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatal("routing-v1.json holds no vectors")
	}
	l := &LocalRouter{opts: LocalOptions{Fallback: Stable}}
	for i, v := range doc.Vectors {
		var rs rollgatev1.RouteState
		var want rollgatev1.RouteResponse
		if err := protojson.Unmarshal(v.State, &rs); err != nil {
			t.Fatalf("vector %d state: %v", i, err)
		}
		if err := protojson.Unmarshal(v.Want, &want); err != nil {
			t.Fatalf("vector %d want: %v", i, err)
		}
		r, err := compileRoute(&rs)
		if err != nil {
			t.Fatalf("vector %d: compileRoute: %v", i, err)
		}
		l.state.Store(&localState{rollouts: map[string]*localRollout{rs.GetRollout(): r}})
		got := l.Route(rs.GetRollout(), v.Key)
		if got.Variant != want.GetVariant() || got.Version != want.GetVersion() || got.Bucket != want.GetBucket() ||
			got.WeightBP != want.GetWeightBp() || !slices.Equal(got.Features, want.GetFeatures()) || got.Reason != want.GetReason() ||
			got.RolloutVersion != want.GetRolloutVersion() || got.Fallback != FallbackNone {
			t.Errorf("vector %d (%s, %v, key %.40q): got %+v, want %v", i, rs.GetRollout(), rs.GetStage(), v.Key, got, &want)
		}
	}
}

// TestLocalRouteAllocatesNothing: the hot path copies a prepared answer; no heap allocation,
// for short keys and for 1,024-byte ones, with and without overrides.
func TestLocalRouteAllocatesNothing(t *testing.T) {
	rs := &rollgatev1.RouteState{Rollout: "r", Stage: rollgatev1.Stage_STAGE_CANARY, WeightBp: 5000, Salt: "r",
		StableVersion: "v1", CanaryVersion: "v2", Features: map[string]bool{"a": true},
		Overrides: map[string]Variant{"vip": Canary}}
	r, err := compileRoute(rs)
	if err != nil {
		t.Fatal(err)
	}
	l := &LocalRouter{opts: LocalOptions{Fallback: Stable}}
	l.state.Store(&localState{rollouts: map[string]*localRollout{"r": r}})
	long := string(make([]byte, 1024))
	for _, key := range []string{"user-42", "vip", long} {
		if n := testing.AllocsPerRun(1000, func() { _ = l.Route("r", key) }); n != 0 {
			t.Errorf("Route(r, %.10q) allocates %v times per call", key, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { _ = Bucket("salt", "user-42") }); n != 0 {
		t.Errorf("Bucket allocates %v times per call", n)
	}
}
