package rollgate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// TestRouteMatchesVectors routes every vector's key through the live server, in a rollout whose
// salt is the vector's salt set to the vector's weight, and compares bucket and variant.
func TestRouteMatchesVectors(t *testing.T) {
	c := newClient(t, shared.URL, rollgate.Options{})
	for _, file := range vectorFiles {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ctx := testContext(t)
			vectors := readVectors(t, file)
			bySalt := map[string][]vector{}
			var salts []string
			for _, v := range vectors {
				if _, ok := bySalt[v.Salt]; !ok {
					salts = append(salts, v.Salt)
				}
				bySalt[v.Salt] = append(bySalt[v.Salt], v)
			}
			checked := 0
			for _, salt := range salts {
				name := uniqueName("vec")
				createRollout(t, c, &rollgatev1.Rollout{Name: name, Salt: salt})
				byWeight := map[uint32][]vector{}
				var weights []uint32
				for _, v := range bySalt[salt] {
					if _, ok := byWeight[v.WeightBP]; !ok {
						weights = append(weights, v.WeightBP)
					}
					byWeight[v.WeightBP] = append(byWeight[v.WeightBP], v)
				}
				for _, w := range weights {
					setWeight(t, c, name, w)
					for _, v := range byWeight[w] {
						r, err := c.Route(ctx, name, v.Key)
						if err != nil {
							t.Fatalf("Route(%s, %.40q): %v", name, v.Key, err)
						}
						want := wantVariant(t, v)
						wantVersion := map[rollgate.Variant]string{rollgate.Stable: "v1", rollgate.Canary: "v2"}[want]
						if r.Bucket != v.Bucket || r.Variant != want || r.WeightBP != w || r.Version != wantVersion || r.Reason != rollgatev1.RouteReason_ROUTE_REASON_WEIGHT {
							t.Errorf("Route(salt %q, key %.40q) at %d bp = bucket %d %v %q (weight %d, %v), want bucket %d %s %q",
								salt, v.Key, w, r.Bucket, r.Variant, r.Version, r.WeightBP, r.Reason, v.Bucket, v.Variant, wantVersion)
						}
						if local := rollgate.Bucket(salt, v.Key); local != r.Bucket {
							t.Errorf("local Bucket(%q, %.40q) = %d, server says %d", salt, v.Key, local, r.Bucket)
						}
						checked++
					}
				}
			}
			if checked != len(vectors) {
				t.Fatalf("checked %d of %d vectors", checked, len(vectors))
			}
		})
	}
}

func TestRouteAnswersAndRefusals(t *testing.T) {
	ctx := testContext(t)
	c := newClient(t, shared.URL, rollgate.Options{})
	name := uniqueName("route")
	created := createRollout(t, c, &rollgatev1.Rollout{Name: name, StableVersion: "1.4.2", CanaryVersion: "1.5.0"})

	if _, err := c.Rollouts.SetOverride(ctx, connect.NewRequest(&rollgatev1.SetOverrideRequest{Name: name, Key: "vip", Variant: rollgate.Canary, Reason: "pin"})); err != nil {
		t.Fatal(err)
	}
	r, err := c.Route(ctx, name, "vip")
	if err != nil {
		t.Fatal(err)
	}
	if r.Variant != rollgate.Canary || r.Version != "1.5.0" || r.Reason != rollgatev1.RouteReason_ROUTE_REASON_OVERRIDE || r.RolloutVersion != created.GetVersion()+1 {
		t.Fatalf("override: got %+v", r)
	}
	if r.Bucket != rollgate.Bucket(name, "vip") {
		t.Fatalf("bucket %d, want %d (salt defaults to the name)", r.Bucket, rollgate.Bucket(name, "vip"))
	}

	// A 1024-byte key is fine; one byte more is refused, as is an empty key.
	long := strings.Repeat("k", 1024)
	if r, err := c.Route(ctx, name, long); err != nil || r.Bucket != rollgate.Bucket(name, long) {
		t.Fatalf("1024-byte key: %+v, %v", r, err)
	}
	_, err = c.Route(ctx, name, long+"k")
	wantCode(t, err, connect.CodeInvalidArgument)
	_, err = c.Route(ctx, name, "")
	wantCode(t, err, connect.CodeInvalidArgument)
	var ce *connect.Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Message(), "key") {
		t.Fatalf("the refusal should name the field: %v", err)
	}

	_, err = c.Route(ctx, "no-such-rollout", "k")
	wantCode(t, err, connect.CodeNotFound)
}

func TestRetriesOnlyOnUnavailable(t *testing.T) {
	fast := rollgate.RetryPolicy{MaxAttempts: 3, Backoff: rollgate.Backoff{Initial: 10_000_000, Max: 50_000_000}} // 10 ms .. 50 ms

	t.Run("a refused connection is retried up to MaxAttempts", func(t *testing.T) {
		counter := &attemptCounter{}
		c := newClient(t, "http://"+freePort(t), rollgate.Options{Retry: fast, Interceptors: []connect.Interceptor{counter}})
		_, err := c.Route(testContext(t), "any", "k")
		wantCode(t, err, connect.CodeUnavailable)
		if n := counter.n.Load(); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
	})

	t.Run("a call succeeds once the server becomes reachable during the retries", func(t *testing.T) {
		setup := newClient(t, shared.URL, rollgate.Options{})
		name := uniqueName("retry")
		createRollout(t, setup, &rollgatev1.Rollout{Name: name})
		addr := freePort(t)
		counter := &attemptCounter{}
		// Nothing listens on addr for the first two attempts; the third finds a forwarder.
		counter.before = func(attempt int32) {
			if attempt == 3 {
				forward(t, addr, fmt.Sprintf("127.0.0.1:%d", shared.Port))
			}
		}
		c := newClient(t, "http://"+addr, rollgate.Options{Retry: rollgate.RetryPolicy{MaxAttempts: 5, Backoff: fast.Backoff}, Interceptors: []connect.Interceptor{counter}})
		r, err := c.Route(testContext(t), name, "user-1")
		if err != nil {
			t.Fatal(err)
		}
		if r.Bucket != rollgate.Bucket(name, "user-1") {
			t.Fatalf("bucket %d", r.Bucket)
		}
		if n := counter.n.Load(); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
	})

	t.Run("other codes are not retried", func(t *testing.T) {
		counter := &attemptCounter{}
		c := newClient(t, shared.URL, rollgate.Options{Retry: fast, Interceptors: []connect.Interceptor{counter}})
		_, err := c.Route(testContext(t), "no-such-rollout", "k")
		wantCode(t, err, connect.CodeNotFound)
		_, err = c.Route(testContext(t), "no-such-rollout", "")
		wantCode(t, err, connect.CodeInvalidArgument)
		if n := counter.n.Load(); n != 2 {
			t.Fatalf("%d attempts for two calls, want 2", n)
		}
	})
}

func TestDeadlines(t *testing.T) {
	name := uniqueName("deadline")
	createRollout(t, newClient(t, shared.URL, rollgate.Options{}), &rollgatev1.Rollout{Name: name})

	c := newClient(t, shared.URL, rollgate.Options{Timeout: 1}) // 1 ns: expired before it is sent
	_, err := c.Route(context.Background(), name, "k")
	wantCode(t, err, connect.CodeDeadlineExceeded)

	// A deadline on the call's context wins over the client's default.
	if _, err := c.Route(testContext(t), name, "k"); err != nil {
		t.Fatalf("the context's own deadline should replace the 1 ns default: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	_, err = newClient(t, shared.URL, rollgate.Options{}).Route(ctx, name, "k")
	wantCode(t, err, connect.CodeDeadlineExceeded)
}

func TestBearerToken(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(`[
		{"name": "ops", "token": "ops-secret-0123456789", "role": "operator"},
		{"name": "svc", "token": "svc-secret-0123456789", "role": "reader"}
	]`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startTestServer(t, "--tokens", tokens)
	ctx := testContext(t)

	ops := newClient(t, s.URL, rollgate.Options{Token: "ops-secret-0123456789"})
	name := uniqueName("auth")
	createRollout(t, ops, &rollgatev1.Rollout{Name: name})

	_, err := newClient(t, s.URL, rollgate.Options{}).Route(ctx, name, "k")
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = newClient(t, s.URL, rollgate.Options{Token: "wrong"}).Route(ctx, name, "k")
	wantCode(t, err, connect.CodeUnauthenticated)

	counter := &attemptCounter{}
	reader := newClient(t, s.URL, rollgate.Options{Token: "svc-secret-0123456789", Interceptors: []connect.Interceptor{counter}})
	if _, err := reader.Route(ctx, name, "k"); err != nil {
		t.Fatalf("reader routes: %v", err)
	}
	// A reader may not report outcomes: the batch is refused, reported, dropped, not retried.
	for range 3 {
		if err := reader.RecordOutcome(name, rollgate.Outcome{Variant: rollgate.Stable, Success: true, LatencyMS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	err = reader.Flush(ctx)
	wantCode(t, err, connect.CodePermissionDenied)
	var be *rollgate.BatchError
	if !errors.As(err, &be) || be.Rollout != name || be.Count != 3 || be.Requeued {
		t.Fatalf("want a dropped BatchError of 3 outcomes: %#v", be)
	}
	if st := reader.OutcomeStats(); st.Dropped != 3 || st.Buffered != 0 || st.Sent != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := counter.n.Load(); n != 2 {
		t.Fatalf("%d attempts (Route + one RecordOutcome), want 2", n)
	}
	if err := reader.Close(); err != nil {
		t.Fatalf("close after the refusal has nothing left to send: %v", err)
	}

	// The token rides on streams too: the audit log streams with it and is refused without.
	events, err := reader.Rollouts.WatchEvents(ctx, connect.NewRequest(&rollgatev1.WatchEventsRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	if !events.Receive() || events.Msg().GetEvent().GetType() != rollgatev1.EventType_EVENT_TYPE_CREATED {
		t.Fatalf("WatchEvents with a reader token: %v %v", events.Msg(), events.Err())
	}
	_ = events.Close()
	anon, err := newClient(t, s.URL, rollgate.Options{}).Rollouts.WatchEvents(ctx, connect.NewRequest(&rollgatev1.WatchEventsRequest{Name: name}))
	if err != nil {
		t.Fatal(err)
	}
	if anon.Receive() {
		t.Fatal("WatchEvents without a token delivered a message")
	}
	wantCode(t, anon.Err(), connect.CodeUnauthenticated)
	_ = anon.Close()
}
