package rollgate_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
	"rollgate/clients/go/gen/rollgate/v1/rollgatev1connect"
)

// The Connect conformance tests call the hot RPCs with connect-go's own client over the Connect
// protocol — JSON and binary, POST and GET, gzip, HTTP/1.1 and h2c — against a server with the
// Connect fast path and one without (--no-connect-fast-path), and require the same answers and
// errors from both. test/e2e/connect-conformance.test.ts compares the raw HTTP exchanges.

// connectPath is one way of serving Connect calls: its server and the rollout made on it.
type connectPath struct {
	name   string
	server *testServer
}

// connectVariant is one way connect-go can call: its transport and client options.
type connectVariant struct {
	name   string
	client *http.Client
	opts   []connect.ClientOption
}

func connectVariants() []connectVariant {
	h1 := &http.Client{Transport: &http.Transport{}}
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: protocols}}
	var out []connectVariant
	for _, t := range []struct {
		name   string
		client *http.Client
	}{{"http1", h1}, {"h2c", h2c}} {
		out = append(out,
			connectVariant{t.name + "/binary", t.client, nil},
			connectVariant{t.name + "/json", t.client, []connect.ClientOption{connect.WithProtoJSON()}},
			connectVariant{t.name + "/binary-get", t.client, []connect.ClientOption{connect.WithHTTPGet()}},
			connectVariant{t.name + "/json-get", t.client, []connect.ClientOption{connect.WithProtoJSON(), connect.WithHTTPGet()}},
			connectVariant{t.name + "/json-gzip", t.client, []connect.ClientOption{connect.WithProtoJSON(), connect.WithSendGzip()}},
			connectVariant{t.name + "/binary-get-gzip", t.client, []connect.ClientOption{connect.WithHTTPGet(), connect.WithSendGzip(), connect.WithCompressMinBytes(1)}},
		)
	}
	return out
}

// fastPathServed returns rollgate_connect_fast_path_requests_total summed over methods.
func fastPathServed(t *testing.T, s *testServer) int {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, m := range regexp.MustCompile(`(?m)^rollgate_connect_fast_path_requests_total\{[^}]*\} (\d+)$`).FindAllStringSubmatch(string(text), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return total
}

// outcome is what a call gave: its answer, or its error's code and message.
type outcome struct {
	msg  proto.Message
	code connect.Code
	text string
}

func (o outcome) String() string {
	if o.msg != nil {
		return fmt.Sprintf("ok %v", o.msg)
	}
	return fmt.Sprintf("%v %q", o.code, o.text)
}

func outcomeOf[T any](resp *connect.Response[T], err error) outcome {
	if err != nil {
		var ce *connect.Error
		if e, ok := err.(*connect.Error); ok {
			ce = e
		} else {
			return outcome{code: connect.CodeOf(err), text: err.Error()}
		}
		return outcome{code: ce.Code(), text: ce.Message()}
	}
	return outcome{msg: any(resp.Msg).(proto.Message)}
}

func TestConnectProtocolConformance(t *testing.T) {
	paths := []*connectPath{
		{name: "fast path", server: startTestServer(t)},
		{name: "connect-node", server: startTestServer(t, "--no-connect-fast-path")},
	}
	for _, p := range paths {
		ops := newClient(t, p.server.URL, rollgate.Options{})
		createRollout(t, ops, &rollgatev1.Rollout{Name: "connect-conformance"})
	}
	calls := []struct {
		name string
		// ok: the call succeeds (else both paths must fail alike).
		ok   bool
		call func(ctx context.Context, c rollgatev1connect.DecisionServiceClient) outcome
	}{
		{"Route", true, func(ctx context.Context, c rollgatev1connect.DecisionServiceClient) outcome {
			return outcomeOf(c.Route(ctx, connect.NewRequest(&rollgatev1.RouteRequest{Rollout: "connect-conformance", Key: "user-12345"})))
		}},
		{"Route with an empty key", false, func(ctx context.Context, c rollgatev1connect.DecisionServiceClient) outcome {
			return outcomeOf(c.Route(ctx, connect.NewRequest(&rollgatev1.RouteRequest{Rollout: "connect-conformance"})))
		}},
		{"Route to an unknown rollout", false, func(ctx context.Context, c rollgatev1connect.DecisionServiceClient) outcome {
			return outcomeOf(c.Route(ctx, connect.NewRequest(&rollgatev1.RouteRequest{Rollout: "absent", Key: "k"})))
		}},
		{"RouteBatch", true, func(ctx context.Context, c rollgatev1connect.DecisionServiceClient) outcome {
			keys := make([]string, 300)
			for i := range keys {
				keys[i] = fmt.Sprintf("user-%d", i)
			}
			return outcomeOf(c.RouteBatch(ctx, connect.NewRequest(&rollgatev1.RouteBatchRequest{Rollout: "connect-conformance", Keys: keys})))
		}},
		{"RecordOutcome", true, func(ctx context.Context, c rollgatev1connect.DecisionServiceClient) outcome {
			return outcomeOf(c.RecordOutcome(ctx, connect.NewRequest(&rollgatev1.RecordOutcomeRequest{
				Rollout:  "connect-conformance",
				Outcomes: []*rollgatev1.Outcome{{Variant: rollgatev1.Variant_VARIANT_CANARY, Success: true, LatencyMs: 12}},
			})))
		}},
		{"RecordOutcome without outcomes", false, func(ctx context.Context, c rollgatev1connect.DecisionServiceClient) outcome {
			return outcomeOf(c.RecordOutcome(ctx, connect.NewRequest(&rollgatev1.RecordOutcomeRequest{Rollout: "connect-conformance"})))
		}},
	}
	for _, v := range connectVariants() {
		for _, call := range calls {
			t.Run(v.name+"/"+call.name, func(t *testing.T) {
				var got [2]outcome
				for i, p := range paths {
					before := fastPathServed(t, p.server)
					c := rollgatev1connect.NewDecisionServiceClient(v.client, p.server.URL, v.opts...)
					got[i] = call.call(testContext(t), c)
					served := fastPathServed(t, p.server) - before
					want := 0
					if i == 0 {
						want = 1
					}
					if served != want {
						t.Fatalf("%s served %d calls on its fast path, want %d", p.name, served, want)
					}
				}
				if got[0].msg != nil && got[1].msg != nil {
					if !proto.Equal(got[0].msg, got[1].msg) {
						t.Fatalf("answers differ:\n fast path:    %v\n connect-node: %v", got[0], got[1])
					}
				} else if got[0].String() != got[1].String() {
					t.Fatalf("outcomes differ:\n fast path:    %v\n connect-node: %v", got[0], got[1])
				}
				if (got[0].msg != nil) != call.ok {
					t.Fatalf("%s: got %v, want success %v", call.name, got[0], call.ok)
				}
			})
		}
	}
}
