package rollgate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"

	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
	"rollgate/clients/go/gen/rollgate/v1/rollgatev1connect"
)

// Variant is the side of a rollout a key is routed to (the generated enum).
type Variant = rollgatev1.Variant

// The two variants a key can be routed to.
const (
	Stable = rollgatev1.Variant_VARIANT_STABLE
	Canary = rollgatev1.Variant_VARIANT_CANARY
)

// RouteReason says why a key went where it did (the generated enum).
type RouteReason = rollgatev1.RouteReason

// ErrClosed is returned by a Client's methods after Close.
var ErrClosed = errors.New("rollgate: client is closed")

// DefaultTimeout is the deadline of a unary call, retries included, when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// DefaultWatchBackoff is the reconnect backoff of WatchHealth when Options.WatchBackoff is zero.
var DefaultWatchBackoff = Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}

// Options configures a Client. The zero value is usable: no token, 10 s deadlines, retries
// on UNAVAILABLE, outcomes flushed every second or every 500.
type Options struct {
	// Token is sent as "Authorization: Bearer <Token>" on every call when not empty.
	Token string
	// Timeout is the deadline of each unary call, retries included, applied when the call's
	// context has no deadline of its own. Default DefaultTimeout; negative means none.
	// Streams (WatchHealth) have no deadline.
	Timeout time.Duration
	// Retry says how unary calls are retried on UNAVAILABLE. Default DefaultRetryPolicy.
	Retry RetryPolicy
	// Outcomes configures the outcome buffer behind RecordOutcome.
	Outcomes OutcomeOptions
	// WatchBackoff is the backoff between WatchHealth reconnects, reset by every update
	// received. Default DefaultWatchBackoff.
	WatchBackoff Backoff
	// OnReconnect, if set, is called before each WatchHealth reconnect with the error that ended
	// the stream (nil for a clean end) and the number of reconnects in a row.
	OnReconnect func(rollout string, err error, attempt int)
	// TLSConfig is used for https:// base URLs (root CAs, client certificates for mTLS).
	// Default: the system roots.
	TLSConfig *tls.Config
	// HTTPClient replaces the HTTP/2 client built from the base URL; it must speak HTTP/2
	// (gRPC needs it).
	HTTPClient connect.HTTPClient
	// Interceptors are your own connect interceptors (logging, tracing). They run inside the
	// retry loop, so they see every attempt, and outside the token.
	Interceptors []connect.Interceptor
}

// Client is a rollgate client. It is safe for concurrent use; Close it on shutdown so that no
// buffered outcome is lost.
type Client struct {
	// Decisions is the generated DecisionService client (RouteBatch, StreamOutcomes, …), with
	// the client's token, deadlines and retries.
	Decisions rollgatev1connect.DecisionServiceClient
	// Rollouts is the generated RolloutService client: the control plane (CreateRollout,
	// SetWeight, Promote, Rollback, …), with the client's token, deadlines and retries.
	Rollouts rollgatev1connect.RolloutServiceClient

	opts      Options
	transport *http2.Transport
	outcomes  *outcomeBuffer

	// life is cancelled by Close: it ends every watch.
	life    context.Context
	stop    context.CancelFunc
	watches sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New returns a client of the rollgate server at baseURL: "http://host:port" for gRPC over
// cleartext HTTP/2 (h2c), "https://host:port" for gRPC over TLS.
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("rollgate: base URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("rollgate: base URL %q: want http://host:port or https://host:port", baseURL)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	opts.Retry = opts.Retry.withDefaults()
	opts.WatchBackoff = opts.WatchBackoff.withDefaults(DefaultWatchBackoff)
	outcomeOpts, err := opts.Outcomes.withDefaults()
	if err != nil {
		return nil, err
	}
	opts.Outcomes = outcomeOpts

	c := &Client{opts: opts}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		c.transport = newTransport(u.Scheme == "https", opts.TLSConfig)
		httpClient = &http.Client{Transport: c.transport}
	}
	interceptors := []connect.Interceptor{callInterceptor{timeout: opts.Timeout, policy: opts.Retry}}
	interceptors = append(interceptors, opts.Interceptors...)
	if opts.Token != "" {
		interceptors = append(interceptors, tokenInterceptor{header: "Bearer " + opts.Token})
	}
	clientOpts := []connect.ClientOption{connect.WithGRPC(), connect.WithInterceptors(interceptors...)}
	base := strings.TrimSuffix(u.String(), "/")
	c.Decisions = rollgatev1connect.NewDecisionServiceClient(httpClient, base, clientOpts...)
	c.Rollouts = rollgatev1connect.NewRolloutServiceClient(httpClient, base, clientOpts...)
	c.life, c.stop = context.WithCancel(context.Background())
	c.outcomes = newOutcomeBuffer(c.sendBatch, opts.Outcomes)
	return c, nil
}

// newTransport returns an HTTP/2 transport: TLS for https, prior-knowledge cleartext
// HTTP/2 (h2c) otherwise. Pings on an idle connection notice a server that went away, so that
// a watch on it reconnects.
func newTransport(useTLS bool, tlsConfig *tls.Config) *http2.Transport {
	t := &http2.Transport{ReadIdleTimeout: 30 * time.Second, PingTimeout: 10 * time.Second}
	if useTLS {
		t.TLSClientConfig = tlsConfig
		return t
	}
	t.AllowHTTP = true
	t.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return t
}

// RouteResult is where one key goes.
type RouteResult struct {
	// Variant is Stable or Canary.
	Variant Variant
	// Version is the version string of that variant.
	Version string
	// Bucket is the key's bucket 0..9999 under bucketing spec v1 (see Bucket).
	Bucket uint32
	// WeightBP is the rollout's effective canary weight in basis points.
	WeightBP uint32
	// Features are the features enabled for this key.
	Features []string
	// Reason says why: weight, override, stage, rolled back or halted.
	Reason RouteReason
	// RolloutVersion is the rollout's version the answer rests on.
	RolloutVersion uint64
	// Fallback is set on a local answer (LocalRouter.Route) that is the configured fallback
	// rather than the rollout's routing, and says why; FallbackNone otherwise.
	Fallback FallbackReason
}

// Route asks where a key of a rollout goes. Unknown rollouts fail with connect.CodeNotFound,
// an empty key or one over 1024 bytes with connect.CodeInvalidArgument.
func (c *Client) Route(ctx context.Context, rollout, key string) (*RouteResult, error) {
	resp, err := c.Decisions.Route(ctx, connect.NewRequest(&rollgatev1.RouteRequest{Rollout: rollout, Key: key}))
	if err != nil {
		return nil, err
	}
	m := resp.Msg
	return &RouteResult{
		Variant:        m.GetVariant(),
		Version:        m.GetVersion(),
		Bucket:         m.GetBucket(),
		WeightBP:       m.GetWeightBp(),
		Features:       m.GetFeatures(),
		Reason:         m.GetReason(),
		RolloutVersion: m.GetRolloutVersion(),
	}, nil
}

// Health returns a rollout's current judgement: score, recommendation, every gate's observed
// value, threshold and verdict, samples per variant and the next action.
func (c *Client) Health(ctx context.Context, rollout string) (*rollgatev1.RolloutHealth, error) {
	resp, err := c.Decisions.Health(ctx, connect.NewRequest(&rollgatev1.HealthRequest{Rollout: rollout}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetHealth(), nil
}

// Close flushes every buffered outcome (waiting for the batches on the wire too), stops the
// flush timer, ends every watch and closes idle connections. It returns the flush's error, if
// any batch could not be delivered. Calls after the first return the same error.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.outcomes.close(context.Background())
		c.stop()
		c.watches.Wait()
		if c.transport != nil {
			c.transport.CloseIdleConnections()
		}
	})
	return c.closeErr
}

func (c *Client) sendBatch(ctx context.Context, rollout string, batch []*rollgatev1.Outcome) (*rollgatev1.RecordOutcomeResponse, error) {
	resp, err := c.Decisions.RecordOutcome(ctx, connect.NewRequest(&rollgatev1.RecordOutcomeRequest{Rollout: rollout, Outcomes: batch}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}
