package rollgate_test

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/proto"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// The tests in this file drive a LocalRouter with a scripted WatchRoutes server: a plain
// HTTP/2 handler speaking gRPC framing, so that a test can send what the real server never
// does (malformed and undecodable messages, a change before a snapshot) and see exactly what
// the client asks for on each reconnect. The real server is tested in local_e2e_test.go.

// scriptedStream is one WatchRoutes stream on the scripted server, handed to the test.
type scriptedStream struct {
	Req *rollgatev1.WatchRoutesRequest
	ctx context.Context
	// out carries frames to the handler's goroutine, the only one that may write.
	out  chan []byte
	done chan string
}

// Send writes one message; SendRaw writes raw bytes as one gRPC message.
func (s *scriptedStream) Send(m *rollgatev1.WatchRoutesResponse) {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	s.SendRaw(b)
}

func (s *scriptedStream) SendRaw(b []byte) {
	hdr := make([]byte, 5)
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
	select {
	case s.out <- append(hdr, b...):
	case <-s.ctx.Done():
	}
}

// End ends the stream with a gRPC status code (0: OK).
func (s *scriptedStream) End(code int) { s.done <- strconv.Itoa(code) }

// ClientGone is closed when the client cancelled the stream.
func (s *scriptedStream) ClientGone() <-chan struct{} { return s.ctx.Done() }

type scriptedServer struct {
	URL     string
	streams chan *scriptedStream
}

func startScriptedServer(t *testing.T) *scriptedServer {
	t.Helper()
	s := &scriptedServer{streams: make(chan *scriptedStream, 16)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/rollgate.v1.DecisionService/WatchRoutes" {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "12")
			w.WriteHeader(http.StatusOK)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req := &rollgatev1.WatchRoutesRequest{}
		if len(body) >= 5 {
			_ = proto.Unmarshal(body[5:], req)
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		st := &scriptedStream{Req: req, ctx: r.Context(), out: make(chan []byte), done: make(chan string, 1)}
		s.streams <- st
		for {
			select {
			case frame := <-st.out:
				_, _ = w.Write(frame)
				w.(http.Flusher).Flush()
			case code := <-st.done:
				w.Header().Set("Grpc-Status", code)
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	srv := httptest.NewUnstartedServer(h2c.NewHandler(h, &http2.Server{}))
	srv.Start()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// next returns the next stream the client opens.
func (s *scriptedServer) next(t *testing.T) *scriptedStream {
	t.Helper()
	select {
	case st := <-s.streams:
		return st
	case <-time.After(20 * time.Second):
		t.Fatal("the client opened no WatchRoutes stream within 20 s")
		return nil
	}
}

// logBuffer collects a router's log lines.
func logBuffer() (*slog.Logger, *lockedBuffer) {
	buf := &lockedBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func canaryState(name string, weight uint32, version uint64) *rollgatev1.RouteState {
	return &rollgatev1.RouteState{Rollout: name, RolloutVersion: version, Stage: rollgatev1.Stage_STAGE_CANARY, WeightBp: weight, Salt: name,
		StableVersion: "v1", CanaryVersion: "v2", Features: map[string]bool{"b": true, "a": true, "off": false},
		Overrides: map[string]rollgate.Variant{"vip": rollgate.Canary}}
}

var fastLocal = rollgate.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}

func TestLocalFallbackUntilTheFirstSnapshot(t *testing.T) {
	srv := startScriptedServer(t)
	c := newClient(t, srv.URL, rollgate.Options{})
	log, _ := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{StartupTimeout: -1, Backoff: fastLocal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := srv.next(t)
	if st.Req.GetAfterRevision() != 0 || len(st.Req.GetRollouts()) != 0 {
		t.Fatalf("first request %v, want a snapshot of everything", st.Req)
	}
	r := l.Route("r", "user-1")
	if r.Variant != rollgate.Stable || r.Fallback != rollgate.FallbackNotReady || r.Reason != rollgatev1.RouteReason_ROUTE_REASON_UNSPECIFIED || l.Stats().Ready {
		t.Fatalf("before the snapshot: %+v, want the stable fallback (not ready)", r)
	}

	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 3, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 10000, 4)}})
	<-l.Ready()
	r = l.Route("r", "user-1")
	if r.Variant != rollgate.Canary || r.Version != "v2" || r.Reason != rollgatev1.RouteReason_ROUTE_REASON_WEIGHT || r.Fallback != rollgate.FallbackNone ||
		r.Bucket != rollgate.Bucket("r", "user-1") || r.WeightBP != 10000 || r.RolloutVersion != 4 || strings.Join(r.Features, ",") != "a,b" {
		t.Fatalf("after the snapshot: %+v", r)
	}
	if r := l.Route("nope", "user-1"); r.Fallback != rollgate.FallbackUnknownRollout || r.Variant != rollgate.Stable || r.Version != "" ||
		r.Bucket != rollgate.Bucket("nope", "user-1") || r.WeightBP != 0 || r.Features != nil || r.RolloutVersion != 0 {
		t.Fatalf("unknown rollout: %+v", r)
	}
	for _, bad := range []string{"", strings.Repeat("k", 1025), "\xff"} {
		if r := l.Route("r", bad); r.Fallback != rollgate.FallbackInvalidKey || r.Variant != rollgate.Stable || r.Version != "" || r.Bucket != 0 || r.RolloutVersion != 0 {
			t.Fatalf("invalid key %.10q: %+v", bad, r)
		}
	}
	if r := l.Route("r", strings.Repeat("k", 1024)); r.Fallback != rollgate.FallbackNone {
		t.Fatalf("a 1,024-byte key is valid: %+v", r)
	}
	s := l.Stats()
	if !s.Ready || s.FromFile || !s.Connected || s.Revision != 3 || s.Rollouts != 1 || s.Resets != 1 || s.LastHeard.IsZero() ||
		s.Fallbacks != [4]uint64{0, 1, 1, 3} {
		t.Fatalf("stats %+v", s)
	}

	// A fallback of Canary, and a start-up wait that the snapshot ends.
	c2 := newClient(t, srv.URL, rollgate.Options{})
	go func() {
		st := srv.next(t)
		time.Sleep(200 * time.Millisecond)
		st.Send(&rollgatev1.WatchRoutesResponse{Revision: 3, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 0, 4)}})
	}()
	l2, err := c2.StartLocal(testContext(t), rollgate.LocalOptions{StartupTimeout: 20 * time.Second, Fallback: rollgate.Canary, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if !l2.Stats().Ready {
		t.Fatal("StartLocal returned before the snapshot with a start-up timeout of 20 s")
	}
	if r := l2.Route("r", "user-1"); r.Variant != rollgate.Stable || r.Fallback != rollgate.FallbackNone {
		t.Fatalf("routed: %+v", r)
	}
	if r := l2.Route("nope", "user-1"); r.Variant != rollgate.Canary || r.Fallback != rollgate.FallbackUnknownRollout {
		t.Fatalf("the canary fallback: %+v", r)
	}
	if _, err := c2.StartLocal(testContext(t), rollgate.LocalOptions{Fallback: rollgate.Variant(7)}); err == nil {
		t.Fatal("a fallback of Variant(7) accepted")
	}
	if _, err := c2.StartLocal(testContext(t), rollgate.LocalOptions{Rollouts: make([]string, 1001)}); err == nil {
		t.Fatal("1,001 rollout names accepted")
	}
}

func TestLocalResumesAndKeepsTheLastGoodState(t *testing.T) {
	srv := startScriptedServer(t)
	c := newClient(t, srv.URL, rollgate.Options{})
	log, logs := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{Rollouts: []string{"r", "s"}, StartupTimeout: -1, Backoff: fastLocal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := srv.next(t)
	if strings.Join(st.Req.GetRollouts(), ",") != "r,s" {
		t.Fatalf("request %v, want the names", st.Req)
	}
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 5, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 0, 1)}})
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 7, Routes: []*rollgatev1.RouteState{canaryState("r", 10000, 2)}})
	// Malformed: a stage no client knows. The whole message is refused, the stream dropped.
	bad := canaryState("r", 0, 3)
	bad.Stage = rollgatev1.Stage(42)
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 8, Routes: []*rollgatev1.RouteState{canaryState("s", 0, 1), bad}})
	<-st.ClientGone()
	if r := l.Route("r", "user-1"); r.Variant != rollgate.Canary || r.RolloutVersion != 2 {
		t.Fatalf("after the malformed message: %+v, want revision 7's state", r)
	}
	if r := l.Route("s", "user-1"); r.Fallback != rollgate.FallbackUnknownRollout {
		t.Fatalf("a refused message changed the state: s routed %+v", r)
	}

	// It resumes from revision 7; undecodable bytes are refused the same way.
	st = srv.next(t)
	if st.Req.GetAfterRevision() != 7 {
		t.Fatalf("reconnect asked after_revision %d, want 7", st.Req.GetAfterRevision())
	}
	st.SendRaw([]byte{0xff, 0xff, 0xff, 0xff})
	<-st.ClientGone()

	// Weights over 10,000 and a revision going back: refused too.
	st = srv.next(t)
	if st.Req.GetAfterRevision() != 7 {
		t.Fatalf("reconnect asked after_revision %d, want 7", st.Req.GetAfterRevision())
	}
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 6, Routes: []*rollgatev1.RouteState{canaryState("s", 0, 1)}})
	<-st.ClientGone()
	st = srv.next(t)
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 8, Routes: []*rollgatev1.RouteState{canaryState("s", 10001, 1)}})
	<-st.ClientGone()

	// A good change, a deletion, a heartbeat at a later revision, then UNAVAILABLE.
	st = srv.next(t)
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 9, Routes: []*rollgatev1.RouteState{canaryState("s", 10000, 1)}, Removed: []string{"r"}})
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 12})
	eventually(t, "revision 12", func() bool { return l.Stats().Revision == 12 })
	if r := l.Route("r", "user-1"); r.Fallback != rollgate.FallbackUnknownRollout {
		t.Fatalf("r was removed: %+v", r)
	}
	if r := l.Route("s", "user-1"); r.Variant != rollgate.Canary || r.Fallback != rollgate.FallbackNone {
		t.Fatalf("s: %+v", r)
	}
	st.End(14) // UNAVAILABLE

	// A revision the server refuses (INVALID_ARGUMENT: ahead of its log) is given up.
	st = srv.next(t)
	if st.Req.GetAfterRevision() != 12 {
		t.Fatalf("reconnect asked after_revision %d, want 12", st.Req.GetAfterRevision())
	}
	st.End(3)
	st = srv.next(t)
	if st.Req.GetAfterRevision() != 0 {
		t.Fatalf("after INVALID_ARGUMENT the client asked after_revision %d, want a snapshot (0)", st.Req.GetAfterRevision())
	}
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 2, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 0, 9)}})
	eventually(t, "the new snapshot", func() bool { return l.Stats().Revision == 2 })
	if r := l.Route("s", "user-1"); r.Fallback != rollgate.FallbackUnknownRollout {
		t.Fatalf("a reset replaces everything: s routed %+v", r)
	}
	s := l.Stats()
	if s.Malformed != 4 || s.Resets != 2 || s.Changes != 2 || s.Heartbeats != 1 || s.Reconnects != 6 {
		t.Fatalf("stats %+v", s)
	}
	for _, want := range []string{"malformed WatchRoutes message refused", "stage 42", "undecodable WatchRoutes message", "weight_bp 10001", "revision 6 is behind the 7 held", "WatchRoutes refused"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
}

func TestLocalStateFileServesWhenTheServerIsUnreachableAtBoot(t *testing.T) {
	srv := startScriptedServer(t)
	file := filepath.Join(t.TempDir(), "routes.json")
	c := newClient(t, srv.URL, rollgate.Options{})
	log, logs := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{StateFile: file, StartupTimeout: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := srv.next(t)
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 4, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 5000, 3), canaryState("s", 10000, 1)}})
	<-l.Ready()
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 6, Removed: []string{"s"}})
	eventually(t, "revision 6", func() bool { return l.Stats().Revision == 6 })
	l.Close()
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("no state file: %v", err)
	}

	// Nothing listens: after the start-up timeout the router routes from the file.
	dead := newClient(t, "http://"+freePort(t), rollgate.Options{})
	l2, err := dead.StartLocal(testContext(t), rollgate.LocalOptions{StateFile: file, StartupTimeout: 200 * time.Millisecond, Backoff: fastLocal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s := l2.Stats()
	if !s.Ready || !s.FromFile || s.Revision != 6 || s.Rollouts != 1 || s.Connected {
		t.Fatalf("from the file: %+v", s)
	}
	for _, key := range []string{"user-1", "user-2", "vip", "user-3"} {
		if got, want := l2.Route("r", key), l.Route("r", key); got.Variant != want.Variant || got.Bucket != want.Bucket || got.Reason != want.Reason || got.Fallback != rollgate.FallbackNone {
			t.Fatalf("Route(r, %s) from the file %+v, from the stream %+v", key, got, want)
		}
	}
	if r := l2.Route("s", "user-1"); r.Fallback != rollgate.FallbackUnknownRollout {
		t.Fatalf("s was removed before the file was written: %+v", r)
	}
	if !strings.Contains(logs.String(), "routing from the state file") {
		t.Fatalf("no log line about the state file:\n%s", logs.String())
	}

	// A file that is not a state is ignored: the fallback answers.
	if err := os.WriteFile(file, []byte(`{"routes": [{"rollout": "r", "stage": 42}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	l3, err := dead.StartLocal(testContext(t), rollgate.LocalOptions{StateFile: file, StartupTimeout: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if r := l3.Route("r", "user-1"); r.Fallback != rollgate.FallbackNotReady {
		t.Fatalf("a bad state file was used: %+v", r)
	}
}

func TestLocalStalenessIsVisible(t *testing.T) {
	srv := startScriptedServer(t)
	c := newClient(t, srv.URL, rollgate.Options{})
	log, logs := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{StartupTimeout: -1, StaleAfter: 300 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := srv.next(t)
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 1, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 5000, 1)}})
	<-l.Ready()
	eventually(t, "the state to turn stale", func() bool { return l.Stats().Stale })
	eventually(t, "the stale log line", func() bool { return strings.Contains(logs.String(), "local routing state is stale") })
	if s := l.Stats(); s.Staleness <= 300*time.Millisecond || !s.Connected {
		t.Fatalf("stats %+v", s)
	}
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 1})
	eventually(t, "fresh again", func() bool { return strings.Contains(logs.String(), "fresh again") })
	if r := l.Route("r", "vip"); r.Variant != rollgate.Canary || r.Reason != rollgatev1.RouteReason_ROUTE_REASON_OVERRIDE {
		t.Fatalf("stale or not, routing goes on: %+v", r)
	}
}

func TestLocalReconnectsAStreamThatGoesQuiet(t *testing.T) {
	srv := startScriptedServer(t)
	c := newClient(t, srv.URL, rollgate.Options{})
	log, _ := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{StartupTimeout: -1, IdleTimeout: 300 * time.Millisecond, Backoff: fastLocal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := srv.next(t)
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 9, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 5000, 1)}})
	<-st.ClientGone() // no heartbeat: the client gives the stream up
	if st := srv.next(t); st.Req.GetAfterRevision() != 9 {
		t.Fatalf("resumed after %d, want 9", st.Req.GetAfterRevision())
	}
	if s := l.Stats(); s.Reconnects < 1 || s.LastError == nil || !strings.Contains(s.LastError.Error(), "idle timeout") {
		t.Fatalf("stats %+v", s)
	}
}

// TestLocalAfterCloseAnswersFromTheLastState: the client's Close ends the stream; Route goes
// on answering from the last state.
func TestLocalAfterCloseAnswersFromTheLastState(t *testing.T) {
	srv := startScriptedServer(t)
	c, err := rollgate.New(srv.URL, rollgate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := logBuffer()
	l, err := c.StartLocal(testContext(t), rollgate.LocalOptions{StartupTimeout: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := srv.next(t)
	st.Send(&rollgatev1.WatchRoutesResponse{Revision: 1, Reset_: true, Routes: []*rollgatev1.RouteState{canaryState("r", 10000, 1)}})
	<-l.Ready()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	<-st.ClientGone()
	if r := l.Route("r", "user-1"); r.Variant != rollgate.Canary || r.Fallback != rollgate.FallbackNone {
		t.Fatalf("after Close: %+v", r)
	}
	if _, err := c.StartLocal(testContext(t), rollgate.LocalOptions{}); err != rollgate.ErrClosed {
		t.Fatalf("StartLocal after Close: %v, want ErrClosed", err)
	}
}
