package rollgate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// The conformance tests call rollgate from grpc-go (google.golang.org/grpc), the reference gRPC
// implementation this client does not use (it speaks gRPC through connect-go), against both
// ways the server answers the hot RPCs: its hand-written fast path and connect-node
// (--no-grpc-fast-path). Whatever grpc-go sees must be the same on both; see
// test/e2e/grpc-conformance.test.ts for the grpc-js and grpcurl side of the same proof.

// Tokens of the conformance servers, one per role a check needs (at least 16 characters).
const (
	operatorToken = "conformance-operator-0123456789"
	reporterToken = "conformance-reporter-0123456789"
	readerToken   = "conformance-reader-0123456789"
)

// conformanceRollout exists on both servers under the same name, so that their answers to the
// same request can be compared byte for byte.
const conformanceRollout = "conformance"

// Full method names, as grpc-go's conn.Invoke and conn.NewStream take them.
const (
	routeMethod         = "/rollgate.v1.DecisionService/Route"
	routeBatchMethod    = "/rollgate.v1.DecisionService/RouteBatch"
	recordOutcomeMethod = "/rollgate.v1.DecisionService/RecordOutcome"
	healthMethod        = "/rollgate.v1.DecisionService/Health"
	watchHealthMethod   = "/rollgate.v1.DecisionService/WatchHealth"
	getRolloutMethod    = "/rollgate.v1.RolloutService/GetRollout"
)

// fieldViolationsType is the type URL of the rollgate.v1.FieldViolations error detail.
const fieldViolationsType = "type.googleapis.com/rollgate.v1.FieldViolations"

// grpcPath is one way of serving the hot RPCs: a server started with flags, its grpc-go
// connection and the Go client used to set rollouts up.
type grpcPath struct {
	name   string
	flags  []string
	server *testServer
	conn   *grpc.ClientConn
	ops    *rollgate.Client
	// created is conformanceRollout as CreateRollout answered it.
	created *rollgatev1.Rollout
}

// writeTokensFile writes a --tokens file holding one token per role the conformance tests use.
func writeTokensFile(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens.json")
	err := os.WriteFile(file, []byte(`[
		{"name": "deployer", "token": "`+operatorToken+`", "role": "operator"},
		{"name": "app", "token": "`+reporterToken+`", "role": "reporter"},
		{"name": "dash", "token": "`+readerToken+`", "role": "reader"}
	]`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// dialGRPC returns a grpc-go connection (cleartext HTTP/2) to s, closed when the test ends.
func dialGRPC(t *testing.T, s *testServer) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", s.Port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// withToken returns ctx carrying "authorization: Bearer token" (none when token is empty).
func withToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// grpcContext is a test context with the token attached.
func grpcContext(t *testing.T, token string) context.Context {
	t.Helper()
	return withToken(testContext(t), token)
}

// wantStatus fails the test unless err is a gRPC status with code want, and returns it. A
// stream's RecvMsg returns io.EOF for a stream that ended with OK.
func wantStatus(t *testing.T, err error, want codes.Code) *status.Status {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if errors.Is(err, io.EOF) {
		t.Fatalf("the stream ended with status OK (io.EOF), want %v", want)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a gRPC status: %v", err)
	}
	if st.Code() != want {
		t.Fatalf("got %v (%q), want %v", st.Code(), st.Message(), want)
	}
	return st
}

// fieldViolations returns the rollgate.v1.FieldViolations details of a status.
func fieldViolations(t *testing.T, st *spb.Status) []*rollgatev1.FieldViolation {
	t.Helper()
	var found []*rollgatev1.FieldViolation
	for _, d := range st.GetDetails() {
		if d.GetTypeUrl() != fieldViolationsType {
			continue
		}
		var fv rollgatev1.FieldViolations
		if err := d.UnmarshalTo(&fv); err != nil {
			t.Fatalf("detail %s: %v", d.GetTypeUrl(), err)
		}
		found = append(found, fv.GetViolations()...)
	}
	return found
}

// fastPathCount reads how many Route calls the fast path has served from the server's metrics.
func fastPathCount(t *testing.T, s *testServer) int {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, s.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	m := regexp.MustCompile(`(?m)^rollgate_grpc_fast_path_requests_total\{method="rollgate\.v1\.DecisionService/Route"\} (\d+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// samplesOf returns how many outcomes a rollout's windows hold now (Health through grpc-go).
func samplesOf(t *testing.T, conn *grpc.ClientConn, rollout string) uint64 {
	t.Helper()
	var h rollgatev1.HealthResponse
	if err := conn.Invoke(grpcContext(t, readerToken), healthMethod, &rollgatev1.HealthRequest{Rollout: rollout}, &h); err != nil {
		t.Fatalf("Health(%s): %v", rollout, err)
	}
	return h.GetHealth().GetSamples().GetStable() + h.GetHealth().GetSamples().GetCanary()
}

// refusal is a call each path must refuse the same way: with code, with message exactly (or,
// when prefix is set, starting with it), and, when field is set, with a FieldViolations
// detail naming that field.
type refusal struct {
	name    string
	token   string
	method  string
	req     proto.Message
	code    codes.Code
	message string
	prefix  bool
	field   string
}

// badInput are requests that break a rule of the API.
var badInput = []refusal{
	{
		name: "empty key", token: readerToken, method: routeMethod,
		req:  &rollgatev1.RouteRequest{Rollout: conformanceRollout},
		code: codes.InvalidArgument, message: "key: must not be empty", field: "key",
	},
	{
		name: "unknown rollout", token: readerToken, method: routeMethod,
		req:  &rollgatev1.RouteRequest{Rollout: "ghost", Key: "k"},
		code: codes.NotFound, message: `rollout "ghost" not found`,
	},
	{
		name: "batch without keys", token: readerToken, method: routeBatchMethod,
		req:  &rollgatev1.RouteBatchRequest{Rollout: conformanceRollout},
		code: codes.InvalidArgument, message: "keys: must hold 1..1000 keys", field: "keys",
	},
	{
		name: "negative latency in a batch", token: reporterToken, method: recordOutcomeMethod,
		req: &rollgatev1.RecordOutcomeRequest{Rollout: conformanceRollout, Outcomes: []*rollgatev1.Outcome{
			{Variant: rollgate.Stable, Success: true, LatencyMs: 3},
			{Variant: rollgate.Canary, Success: true, LatencyMs: -1},
			{Variant: rollgate.Canary, Success: false, LatencyMs: 5},
		}},
		code: codes.InvalidArgument, message: "outcomes[1].latency_ms: ", prefix: true, field: "outcomes[1].latency_ms",
	},
}

// badCaller are calls refused for who makes them.
var badCaller = []refusal{
	{
		name: "no token", method: routeMethod,
		req:  &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: "k"},
		code: codes.Unauthenticated, message: "missing bearer token (authorization: Bearer <token>)",
	},
	{
		name: "unknown token", token: "not-a-token-of-this-server", method: routeMethod,
		req:  &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: "k"},
		code: codes.Unauthenticated, message: "unknown token",
	},
	{
		name: "reader reports outcomes", token: readerToken, method: recordOutcomeMethod,
		req: &rollgatev1.RecordOutcomeRequest{Rollout: conformanceRollout, Outcomes: []*rollgatev1.Outcome{
			{Variant: rollgate.Stable, Success: true, LatencyMs: 1},
		}},
		code:    codes.PermissionDenied,
		message: `token "dash" has role reader; rollgate.v1.DecisionService/RecordOutcome needs reporter`,
	},
}

// refused is what grpc-go saw of a refusal: its status and the raw grpc-status-details-bin.
type refused struct {
	status  *status.Status
	details []byte
}

// refuse makes the call of r on conn and returns what came back, failing unless it was refused.
func refuse(t *testing.T, conn *grpc.ClientConn, r refusal) refused {
	t.Helper()
	var trailer metadata.MD
	// Any reply type will do: a refusal has no message, and an answer fails the test anyway.
	err := conn.Invoke(grpcContext(t, r.token), r.method, r.req, &emptypb.Empty{}, grpc.Trailer(&trailer))
	if err == nil {
		t.Fatalf("%s: %s succeeded, want %v", r.name, r.method, r.code)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%s: not a gRPC status: %v", r.name, err)
	}
	var details []byte
	if v := trailer.Get("grpc-status-details-bin"); len(v) > 0 {
		details = []byte(v[0])
	}
	return refused{status: st, details: details}
}

// checkRefusal fails the test unless got is the refusal r describes.
func checkRefusal(t *testing.T, r refusal, got refused) {
	t.Helper()
	st := got.status
	if st.Code() != r.code {
		t.Fatalf("%s: got %v (%q), want %v", r.name, st.Code(), st.Message(), r.code)
	}
	if r.prefix && !strings.HasPrefix(st.Message(), r.message) || !r.prefix && st.Message() != r.message {
		t.Fatalf("%s: message %q, want %q", r.name, st.Message(), r.message)
	}
	if r.field == "" {
		return
	}
	// The trailer itself is a google.rpc.Status agreeing with grpc-status and grpc-message.
	if got.details == nil {
		t.Fatalf("%s: no grpc-status-details-bin trailer", r.name)
	}
	var fromTrailer spb.Status
	if err := proto.Unmarshal(got.details, &fromTrailer); err != nil {
		t.Fatalf("%s: grpc-status-details-bin is not a google.rpc.Status: %v", r.name, err)
	}
	if codes.Code(fromTrailer.GetCode()) != r.code || fromTrailer.GetMessage() != st.Message() {
		t.Fatalf("%s: grpc-status-details-bin says %v %q, grpc-status %v %q", r.name, codes.Code(fromTrailer.GetCode()), fromTrailer.GetMessage(), st.Code(), st.Message())
	}
	if !proto.Equal(&fromTrailer, st.Proto()) {
		t.Fatalf("%s: status.FromError details %v differ from the trailer's %v", r.name, st.Proto(), &fromTrailer)
	}
	violations := fieldViolations(t, &fromTrailer)
	if len(violations) != 1 || violations[0].GetField() != r.field || violations[0].GetDescription() == "" {
		t.Fatalf("%s: field violations %v, want one naming %s", r.name, violations, r.field)
	}
	if want := r.field + ": " + violations[0].GetDescription(); st.Message() != want {
		t.Fatalf("%s: message %q, want the violation %q", r.name, st.Message(), want)
	}
}

// TestGRPCConformance checks, from grpc-go, that both ways of serving the hot RPCs answer the
// same: routing, outcomes, error mapping with details, auth, metadata, gzip, the size limit,
// WatchHealth streaming and deadlines, and the control plane on the same port.
func TestGRPCConformance(t *testing.T) {
	tokens := writeTokensFile(t)
	paths := []*grpcPath{
		{name: "fast-path"},
		{name: "connect-node", flags: []string{"--no-grpc-fast-path"}},
	}
	for _, p := range paths {
		p.server = startTestServer(t, append([]string{"--tokens", tokens}, p.flags...)...)
		p.conn = dialGRPC(t, p.server)
		p.ops = newClient(t, p.server.URL, rollgate.Options{Token: operatorToken})
		p.created = createRollout(t, p.ops, &rollgatev1.Rollout{Name: conformanceRollout})
	}

	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			conn, salt, weight := p.conn, p.created.GetSalt(), p.created.GetWeightBp()
			if salt == "" || weight == 0 {
				t.Fatalf("created rollout: %v", p.created)
			}

			t.Run("route", func(t *testing.T) {
				before := fastPathCount(t, p.server)
				for _, key := range []string{"user-1", "ключ", "ユーザー-🚀"} {
					var r rollgatev1.RouteResponse
					if err := conn.Invoke(grpcContext(t, readerToken), routeMethod, &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: key}, &r); err != nil {
						t.Fatalf("Route(%q): %v", key, err)
					}
					want := rollgate.Bucket(salt, key)
					variant := rollgate.VariantOf(want, weight)
					wantVersion := map[rollgate.Variant]string{rollgate.Stable: "v1", rollgate.Canary: "v2"}[variant]
					if r.GetBucket() != want || r.GetVariant() != variant || r.GetVersion() != wantVersion || r.GetWeightBp() != weight {
						t.Errorf("Route(%q) = bucket %d %v %q at %d bp, want bucket %d %v %q at %d bp",
							key, r.GetBucket(), r.GetVariant(), r.GetVersion(), r.GetWeightBp(), want, variant, wantVersion, weight)
					}
				}
				// The metrics tell which path served the calls: the fast path counts each, connect none.
				wantServed := map[string]int{"fast-path": 3, "connect-node": 0}[p.name]
				if served := fastPathCount(t, p.server) - before; served != wantServed {
					t.Errorf("the fast path served %d of the 3 Route calls, want %d", served, wantServed)
				}
			})

			t.Run("route-batch", func(t *testing.T) {
				keys := []string{"a", "b", "ключ", "ユーザー-🚀"}
				var b rollgatev1.RouteBatchResponse
				if err := conn.Invoke(grpcContext(t, readerToken), routeBatchMethod, &rollgatev1.RouteBatchRequest{Rollout: conformanceRollout, Keys: keys}, &b); err != nil {
					t.Fatal(err)
				}
				if len(b.GetResults()) != len(keys) {
					t.Fatalf("%d results for %d keys", len(b.GetResults()), len(keys))
				}
				for i, key := range keys {
					if got, want := b.GetResults()[i].GetBucket(), rollgate.Bucket(salt, key); got != want {
						t.Errorf("RouteBatch result %d (%q): bucket %d, want %d", i, key, got, want)
					}
				}
			})

			t.Run("record-outcome", func(t *testing.T) {
				before := samplesOf(t, conn, conformanceRollout)
				var r rollgatev1.RecordOutcomeResponse
				err := conn.Invoke(grpcContext(t, reporterToken), recordOutcomeMethod, &rollgatev1.RecordOutcomeRequest{Rollout: conformanceRollout, Outcomes: []*rollgatev1.Outcome{
					{Variant: rollgate.Stable, Success: true, LatencyMs: 12},
					{Variant: rollgate.Canary, Success: true, LatencyMs: 15, Metrics: map[string]float64{"cpu": 0.5}},
					{Variant: rollgate.Canary, Success: false, LatencyMs: 40, Key: "ключ"},
				}}, &r)
				if err != nil {
					t.Fatal(err)
				}
				if r.GetAccepted() != 3 || r.GetIgnored() != 0 {
					t.Fatalf("accepted %d, ignored %d; want 3, 0", r.GetAccepted(), r.GetIgnored())
				}
				if after := samplesOf(t, conn, conformanceRollout); after != before+3 {
					t.Fatalf("samples went from %d to %d, want +3", before, after)
				}
			})

			t.Run("errors", func(t *testing.T) {
				for _, r := range badInput {
					before := samplesOf(t, conn, conformanceRollout)
					checkRefusal(t, r, refuse(t, conn, r))
					// A rejected batch records nothing, not even its good outcomes.
					if after := samplesOf(t, conn, conformanceRollout); after != before {
						t.Fatalf("%s: samples went from %d to %d", r.name, before, after)
					}
				}
			})

			t.Run("auth", func(t *testing.T) {
				for _, r := range badCaller {
					checkRefusal(t, r, refuse(t, conn, r))
				}
				var r rollgatev1.RouteResponse
				if err := conn.Invoke(grpcContext(t, reporterToken), routeMethod, &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: "k"}, &r); err != nil {
					t.Fatalf("the reporter token may Route: %v", err)
				}
				if r.GetBucket() != rollgate.Bucket(salt, "k") {
					t.Fatalf("bucket %d, want %d", r.GetBucket(), rollgate.Bucket(salt, "k"))
				}
			})

			t.Run("response-metadata", func(t *testing.T) {
				id := "conformance-" + p.name
				ctx := metadata.AppendToOutgoingContext(grpcContext(t, readerToken), "x-request-id", id)
				var header metadata.MD
				var r rollgatev1.RouteResponse
				if err := conn.Invoke(ctx, routeMethod, &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: "x"}, &r, grpc.Header(&header)); err != nil {
					t.Fatal(err)
				}
				if got := header.Get("x-request-id"); len(got) != 1 || got[0] != id {
					t.Errorf("x-request-id %q, want [%q]", got, id)
				}
				if got := header.Get("content-type"); len(got) != 1 || !strings.HasPrefix(got[0], "application/grpc") {
					t.Errorf("content-type %q, want application/grpc…", got)
				}
			})

			t.Run("gzip", func(t *testing.T) {
				for _, key := range []string{"gz", strings.Repeat("z", 1000)} {
					var r rollgatev1.RouteResponse
					err := conn.Invoke(grpcContext(t, readerToken), routeMethod, &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: key}, &r, grpc.UseCompressor(gzip.Name))
					if err != nil {
						t.Fatalf("gzip Route(%.10q): %v", key, err)
					}
					if r.GetBucket() != rollgate.Bucket(salt, key) {
						t.Fatalf("gzip Route(%.10q): bucket %d, want %d", key, r.GetBucket(), rollgate.Bucket(salt, key))
					}
				}
			})

			t.Run("message-over-4MiB", func(t *testing.T) {
				var r rollgatev1.RouteResponse
				err := conn.Invoke(grpcContext(t, readerToken), routeMethod, &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: strings.Repeat("k", 5<<20)}, &r)
				wantStatus(t, err, codes.ResourceExhausted)
				// The connection outlives the refusal.
				if err := conn.Invoke(grpcContext(t, readerToken), routeMethod, &rollgatev1.RouteRequest{Rollout: conformanceRollout, Key: "k"}, &r); err != nil {
					t.Fatalf("Route after the refusal: %v", err)
				}
			})

			t.Run("watch-health", func(t *testing.T) {
				name := uniqueName("conformance-watch")
				createRollout(t, p.ops, &rollgatev1.Rollout{Name: name})
				ctx, cancel := context.WithTimeout(grpcContext(t, readerToken), 30*time.Second)
				defer cancel()
				stream := watchHealth(t, ctx, conn, name)
				var first rollgatev1.HealthUpdate
				if err := stream.RecvMsg(&first); err != nil {
					t.Fatalf("first update: %v", err)
				}
				if first.GetSeq() != 1 || first.GetHealth().GetRollout() != name || first.GetHealth().GetWeightBp() != weight || first.GetDeleted() {
					t.Fatalf("first update: %v", &first)
				}
				setWeight(t, p.ops, name, 700)
				// Evaluations may come first; each update counts on by one until the new weight shows.
				for seq := uint64(2); ; seq++ {
					var u rollgatev1.HealthUpdate
					if err := stream.RecvMsg(&u); err != nil {
						t.Fatalf("update %d: %v", seq, err)
					}
					if u.GetSeq() != seq || u.GetHealth().GetRollout() != name {
						t.Fatalf("update %d: %v", seq, &u)
					}
					if u.GetHealth().GetWeightBp() == 700 {
						break
					}
				}
			})

			t.Run("watch-health-unknown-rollout", func(t *testing.T) {
				stream := watchHealth(t, grpcContext(t, readerToken), conn, "ghost")
				var u rollgatev1.HealthUpdate
				st := wantStatus(t, stream.RecvMsg(&u), codes.NotFound)
				if st.Message() != `rollout "ghost" not found` {
					t.Fatalf("message %q", st.Message())
				}
			})

			t.Run("watch-health-deadline", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), readerToken), 300*time.Millisecond)
				defer cancel()
				stream := watchHealth(t, ctx, conn, conformanceRollout)
				updates := 0
				var err error
				for err == nil {
					var u rollgatev1.HealthUpdate
					if err = stream.RecvMsg(&u); err == nil {
						updates++
					}
				}
				// grpc-go also ends the call at its own deadline, so a server that ended the stream
				// with OK instead shows here only when its trailers arrive before grpc-go's timer.
				wantStatus(t, err, codes.DeadlineExceeded)
				if updates < 1 {
					t.Fatalf("the stream ended at its deadline with no update")
				}
			})

			t.Run("control-plane", func(t *testing.T) {
				var r rollgatev1.GetRolloutResponse
				if err := conn.Invoke(grpcContext(t, readerToken), getRolloutMethod, &rollgatev1.GetRolloutRequest{Name: conformanceRollout}, &r); err != nil {
					t.Fatal(err)
				}
				if r.GetRollout().GetName() != conformanceRollout || r.GetRollout().GetSalt() != salt || r.GetRollout().GetStableVersion() != "v1" {
					t.Fatalf("GetRollout: %v", r.GetRollout())
				}
				err := conn.Invoke(grpcContext(t, readerToken), getRolloutMethod, &rollgatev1.GetRolloutRequest{Name: "ghost"}, &r)
				wantStatus(t, err, codes.NotFound)
			})
		})
	}

	// The same bad request gets the same code, message and detail bytes from both paths.
	t.Run("same-refusals-on-both-paths", func(t *testing.T) {
		for _, r := range append(append([]refusal{}, badInput...), badCaller...) {
			want := refuse(t, paths[0].conn, r)
			got := refuse(t, paths[1].conn, r)
			if got.status.Code() != want.status.Code() || got.status.Message() != want.status.Message() {
				t.Errorf("%s: %s says %v %q, %s %v %q", r.name,
					paths[0].name, want.status.Code(), want.status.Message(), paths[1].name, got.status.Code(), got.status.Message())
			}
			if !bytes.Equal(got.details, want.details) {
				t.Errorf("%s: grpc-status-details-bin differs:\n%s: %x\n%s: %x", r.name, paths[0].name, want.details, paths[1].name, got.details)
			}
		}
	})
}

// watchHealth opens WatchHealth as a grpc-go server stream and sends its one request.
func watchHealth(t *testing.T, ctx context.Context, conn *grpc.ClientConn, rollout string) grpc.ClientStream {
	t.Helper()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "WatchHealth", ServerStreams: true}, watchHealthMethod)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&rollgatev1.WatchHealthRequest{Rollout: rollout}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	return stream
}
