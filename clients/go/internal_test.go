package rollgate

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

func update(at time.Time, score float64, deleted bool) *rollgatev1.HealthUpdate {
	return &rollgatev1.HealthUpdate{Deleted: deleted, Health: &rollgatev1.RolloutHealth{Rollout: "r", Score: score, EvaluatedAt: timestamppb.New(at)}}
}

func TestNewerDropsWhatIsNotNewer(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	last := update(t0, 1, false)
	cases := []struct {
		name string
		next *rollgatev1.HealthUpdate
		want bool
	}{
		{"the same update again (a resubscription's first message)", update(t0, 1, false), false},
		{"an older evaluation", update(t0.Add(-time.Second), 0.5, false), false},
		{"a newer evaluation", update(t0.Add(time.Second), 1, false), true},
		{"a state change at the same evaluation time", update(t0, 0.85, false), true},
		{"the rollout deleted", update(t0, 1, true), true},
	}
	for _, c := range cases {
		if got := newer(last, c.next); got != c.want {
			t.Errorf("%s: newer = %v, want %v", c.name, got, c.want)
		}
	}
	if !newer(nil, last) {
		t.Error("the first update of a rollout must be delivered")
	}
}

func TestBackoffDelayStaysWithinItsBounds(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2}
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, ceiling := range ceilings {
		ceiling *= time.Millisecond
		for range 200 {
			d := b.Delay(i + 1)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", i+1, d, ceiling/2, ceiling)
			}
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	c, err := New("http://127.0.0.1:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	o := c.opts
	if o.Timeout != DefaultTimeout || o.Retry != DefaultRetryPolicy || o.WatchBackoff != DefaultWatchBackoff ||
		o.Outcomes.FlushInterval != time.Second || o.Outcomes.MaxBatch != 500 || o.Outcomes.MaxBuffered != 100000 {
		t.Fatalf("defaults: %+v", o)
	}
	for _, bad := range []string{"127.0.0.1:8080", "grpc://h:1", "http://"} {
		if _, err := New(bad, Options{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}
