package rollgate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"connectrpc.com/connect"
)

// Backoff is an exponential backoff with jitter.
//
// The delay before retry n (1 for the first) is drawn uniformly from [d/2, d], where
// d = min(Max, Initial × Multiplier^(n-1)): half fixed, half random ("equal jitter"), so that
// clients cut off together do not come back in lockstep, yet none comes back at once.
type Backoff struct {
	// Initial is the ceiling of the first delay.
	Initial time.Duration
	// Max caps every delay.
	Max time.Duration
	// Multiplier is the growth factor per retry; values below 1 count as 2.
	Multiplier float64
}

// Delay returns the backoff before retry n (n ≥ 1).
func (b Backoff) Delay(n int) time.Duration {
	mult := b.Multiplier
	if mult < 1 {
		mult = 2
	}
	ceiling := float64(b.Initial) * math.Pow(mult, float64(max(0, n-1)))
	ceiling = math.Min(ceiling, float64(b.Max))
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(ceiling/2 + rand.Float64()*ceiling/2)
}

func (b Backoff) withDefaults(def Backoff) Backoff {
	if b.Initial <= 0 {
		b.Initial = def.Initial
	}
	if b.Max <= 0 {
		b.Max = def.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = def.Multiplier
	}
	return b
}

// RetryPolicy says how unary calls are retried: only when they fail with UNAVAILABLE (the
// server is unreachable, restarting or shutting down), with backoff between attempts, and
// never past the call's deadline. No other code is retried.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included; 1 disables retries. Default 4.
	MaxAttempts int
	// Backoff between attempts. Default 100 ms doubling up to 2 s.
	Backoff Backoff
}

// DefaultRetryPolicy is the retry policy of a client whose Options leave Retry zero.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 4, Backoff: Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	p.Backoff = p.Backoff.withDefaults(DefaultRetryPolicy.Backoff)
	return p
}

// sleepCtx waits for d or until ctx is done, and reports whether it waited the full time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// contextError turns a context's error into the connect error a call would have returned.
func contextError(ctx context.Context, last error) error {
	code := connect.CodeCanceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = connect.CodeDeadlineExceeded
	}
	if last == nil {
		return connect.NewError(code, ctx.Err())
	}
	return connect.NewError(code, fmt.Errorf("%w while waiting to retry after: %v", ctx.Err(), last))
}

// callInterceptor gives every unary call the client's default deadline (when its context has
// none) and retries it on UNAVAILABLE; streams pass through untouched (WatchHealth reconnects
// on its own, and a stream has no deadline).
type callInterceptor struct {
	timeout time.Duration
	policy  RetryPolicy
}

// WrapUnary implements connect.Interceptor.
func (ci callInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if _, ok := ctx.Deadline(); !ok && ci.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, ci.timeout)
			defer cancel()
		}
		for attempt := 1; ; attempt++ {
			resp, err := next(ctx, req)
			if err == nil || connect.CodeOf(err) != connect.CodeUnavailable || attempt >= ci.policy.MaxAttempts {
				return resp, err
			}
			if !sleepCtx(ctx, ci.policy.Backoff.Delay(attempt)) {
				return nil, contextError(ctx, err)
			}
		}
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (ci callInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (ci callInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// tokenInterceptor sends the bearer token on every call, unary and streaming.
type tokenInterceptor struct {
	header string
}

// WrapUnary implements connect.Interceptor.
func (ti tokenInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", ti.header)
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (ti tokenInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", ti.header)
		return conn
	}
}

// WrapStreamingHandler implements connect.Interceptor.
func (ti tokenInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
