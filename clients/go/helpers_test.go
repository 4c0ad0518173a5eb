package rollgate_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// newClient returns a client of url closed when the test ends.
func newClient(t *testing.T, url string, opts rollgate.Options) *rollgate.Client {
	t.Helper()
	c, err := rollgate.New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testContext is a context bounded by a generous test deadline.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastAnalysis evaluates every second over a window long enough to hold a whole test.
func fastAnalysis() *rollgatev1.Analysis {
	return &rollgatev1.Analysis{Interval: durationpb.New(time.Second), Window: durationpb.New(60 * time.Second)}
}

var nameSeq atomic.Int32

// uniqueName returns a rollout name ([a-z0-9][a-z0-9._-]{0,62}) unique within the test run.
func uniqueName(prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	name := b.String()
	if len(name) > 50 {
		name = name[:50]
	}
	return fmt.Sprintf("%s-%d", name, nameSeq.Add(1))
}

// createRollout creates a rollout with stable "v1" and canary "v2" through the client.
func createRollout(t *testing.T, c *rollgate.Client, r *rollgatev1.Rollout) *rollgatev1.Rollout {
	t.Helper()
	if r.StableVersion == "" {
		r.StableVersion = "v1"
	}
	if r.CanaryVersion == "" {
		r.CanaryVersion = "v2"
	}
	resp, err := c.Rollouts.CreateRollout(testContext(t), connect.NewRequest(&rollgatev1.CreateRolloutRequest{Rollout: r, Reason: "go client test"}))
	if err != nil {
		t.Fatalf("CreateRollout(%s): %v", r.Name, err)
	}
	return resp.Msg.Rollout
}

func setWeight(t *testing.T, c *rollgate.Client, name string, weight uint32) {
	t.Helper()
	_, err := c.Rollouts.SetWeight(testContext(t), connect.NewRequest(&rollgatev1.SetWeightRequest{Name: name, WeightBp: weight, Reason: "go client test"}))
	if err != nil {
		t.Fatalf("SetWeight(%s, %d): %v", name, weight, err)
	}
}

// wantCode fails the test unless err carries the connect code want.
func wantCode(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if got := connect.CodeOf(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

// attemptCounter is a connect interceptor that counts unary attempts and may run a hook before
// each; passed in Options.Interceptors it sits inside the client's retry loop.
type attemptCounter struct {
	n      atomic.Int32
	before func(attempt int32)
}

func (a *attemptCounter) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		n := a.n.Add(1)
		if a.before != nil {
			a.before(n)
		}
		return next(ctx, req)
	}
}

func (a *attemptCounter) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *attemptCounter) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// freePort returns a loopback port that nothing listens on (it was free a moment ago).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// tcpForwarder forwards every connection it accepts on addr to target.
type tcpForwarder struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func forward(t *testing.T, addr, target string) *tcpForwarder {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	f := &tcpForwarder{l: l}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, in, out)
			f.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *tcpForwarder) close() {
	_ = f.l.Close()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
}

// eventually polls check until it returns true or the test deadline passes.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
