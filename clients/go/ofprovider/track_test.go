package ofprovider

import (
	"errors"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"
)

// The latency a tracking event records: the attribute latencyMs when given, else the value —
// the order every rollgate provider uses.
func TestOpenFeatureTrackLatencyOrder(t *testing.T) {
	cases := []struct {
		name    string
		details openfeature.TrackingEventDetails
		want    float64
	}{
		{"value only", openfeature.NewTrackingEventDetails(7), 7},
		{"latencyMs wins over value", openfeature.NewTrackingEventDetails(99).Add("latencyMs", 12.5), 12.5},
		{"an int latencyMs", openfeature.NewTrackingEventDetails(99).Add("latencyMs", 12), 12},
		{"latencyMs with no value", openfeature.NewTrackingEventDetails(0).Add("latencyMs", 3.0), 3},
	}
	for _, c := range cases {
		got, err := TrackLatencyMS(c.details)
		if err != nil || got != c.want {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := TrackLatencyMS(openfeature.NewTrackingEventDetails(1).Add("latencyMs", "12")); !errors.Is(err, ErrNotTracked) {
		t.Errorf("a string latencyMs: got %v, want ErrNotTracked", err)
	}
}
