// Package ofprovider is an in-process OpenFeature provider (github.com/open-feature/go-sdk)
// over the rollgate client's local mode.
//
// Flags follow rollgate's OFREP mapping (docs/ofrep.md): a rollout is a string flag whose value
// is the version Route answers, and "rollout/feature" is a boolean flag; variants
// "stable"/"canary" and "on"/"off"; reasons SPLIT, TARGETING_MATCH, STATIC and DISABLED.
package ofprovider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// FeatureSeparator separates a rollout from one of its features in a boolean flag key.
const FeatureSeparator = "/"

var reasons = map[rollgatev1.RouteReason]openfeature.Reason{
	rollgatev1.RouteReason_ROUTE_REASON_WEIGHT:      openfeature.SplitReason,
	rollgatev1.RouteReason_ROUTE_REASON_OVERRIDE:    openfeature.TargetingMatchReason,
	rollgatev1.RouteReason_ROUTE_REASON_STAGE:       openfeature.StaticReason,
	rollgatev1.RouteReason_ROUTE_REASON_ROLLED_BACK: openfeature.DisabledReason,
	rollgatev1.RouteReason_ROUTE_REASON_HALTED:      openfeature.DisabledReason,
}

// stageName spells a stage as OFREP's metadata does ("rolled_back").
func stageName(s rollgatev1.Stage) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STAGE_"))
}

func variantName(v rollgate.Variant) string {
	if v == rollgate.Canary {
		return "canary"
	}
	return "stable"
}

// Options configures a Provider.
type Options struct {
	// Local is passed to Client.StartLocal (its StartupTimeout is how long Init waits for the
	// first state; default 5 s).
	Local rollgate.LocalOptions
}

// Provider evaluates rollgate rollouts in process. Init starts local mode on the client and
// waits for the first state (the SDK then reports READY); the provider emits STALE while the
// stream is down, READY when it answers again, and CONFIGURATION_CHANGED with the changed flag
// keys on every update. Track(flagKey, ctx, details) buffers an outcome, through the client's
// outcome buffer, for the variant the context's key is routed to: the latency in milliseconds
// is the attribute "latencyMs" when given, else details.Value() (TrackLatencyMS); the attribute
// "success" (bool, default true) is the result.
// Shutdown closes the router, not the client.
type Provider struct {
	client *rollgate.Client
	opts   Options
	events chan openfeature.Event

	mu          sync.Mutex
	router      *rollgate.LocalRouter
	unsubscribe func()
	flagKeys    map[string][]string
	stale       bool
}

var (
	_ openfeature.FeatureProvider = (*Provider)(nil)
	_ openfeature.StateHandler    = (*Provider)(nil)
	_ openfeature.EventHandler    = (*Provider)(nil)
	_ openfeature.Tracker         = (*Provider)(nil)
)

// New returns a provider over a client; OpenFeature starts it (Init) when it is set.
func New(client *rollgate.Client, opts Options) *Provider {
	return &Provider{client: client, opts: opts, events: make(chan openfeature.Event, 64), flagKeys: map[string][]string{}}
}

// Router returns the local router once Init has started it.
func (p *Provider) Router() *rollgate.LocalRouter {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.router
}

// Metadata names the provider.
func (p *Provider) Metadata() openfeature.Metadata { return openfeature.Metadata{Name: "rollgate"} }

// Hooks returns none.
func (p *Provider) Hooks() []openfeature.Hook { return nil }

// EventChannel is where the provider's events go.
func (p *Provider) EventChannel() <-chan openfeature.Event { return p.events }

// Init starts local mode and waits for the first state.
func (p *Provider) Init(openfeature.EvaluationContext) error {
	wait := p.opts.Local.StartupTimeout
	if wait == 0 {
		wait = rollgate.DefaultStartupTimeout
	}
	local := p.opts.Local
	local.StartupTimeout = -1 // do not wait inside StartLocal: subscribe first, then wait.
	router, err := p.client.StartLocal(context.Background(), local)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.router = router
	p.unsubscribe = router.Subscribe(rollgate.LocalListener{Changed: p.changed, Connection: p.connection})
	p.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-router.Ready():
	case <-t.C:
		return fmt.Errorf("rollgate: no routing state within %v", wait)
	}
	p.mu.Lock()
	for _, name := range router.RolloutNames() {
		p.flagKeys[name] = keysOf(router, name)
	}
	p.mu.Unlock()
	return nil
}

// Shutdown stops local mode.
func (p *Provider) Shutdown() {
	p.mu.Lock()
	router, unsubscribe := p.router, p.unsubscribe
	p.mu.Unlock()
	if unsubscribe != nil {
		unsubscribe()
	}
	if router != nil {
		router.Close()
	}
}

func keysOf(router *rollgate.LocalRouter, rollout string) []string {
	st := router.RouteState(rollout)
	if st == nil {
		return nil
	}
	keys := []string{rollout}
	features := make([]string, 0, len(st.GetFeatures()))
	for f := range st.GetFeatures() {
		features = append(features, rollout+FeatureSeparator+f)
	}
	slices.Sort(features)
	return append(keys, features...)
}

func (p *Provider) emit(t openfeature.EventType, d openfeature.ProviderEventDetails) {
	select {
	case p.events <- openfeature.Event{ProviderName: "rollgate", EventType: t, ProviderEventDetails: d}:
	default:
		// The SDK reads the channel continuously; a full one means nobody does: drop, never block routing.
	}
}

func (p *Provider) changed(rollouts []string) {
	p.mu.Lock()
	router := p.router
	seen := map[string]bool{}
	var changed []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			changed = append(changed, k)
		}
	}
	for _, r := range rollouts {
		if old, ok := p.flagKeys[r]; ok {
			for _, k := range old {
				add(k)
			}
		} else {
			add(r)
		}
		now := keysOf(router, r)
		for _, k := range now {
			add(k)
		}
		if len(now) == 0 {
			delete(p.flagKeys, r)
		} else {
			p.flagKeys[r] = now
		}
	}
	p.mu.Unlock()
	p.emit(openfeature.ProviderConfigChange, openfeature.ProviderEventDetails{FlagChanges: changed, Message: "routing state changed"})
}

func (p *Provider) connection(connected bool) {
	p.mu.Lock()
	was := p.stale
	p.stale = !connected
	p.mu.Unlock()
	if !connected && !was {
		p.emit(openfeature.ProviderStale, openfeature.ProviderEventDetails{Message: "the WatchRoutes stream dropped: answering from the last state"})
	} else if connected && was {
		p.emit(openfeature.ProviderReady, openfeature.ProviderEventDetails{Message: "the WatchRoutes stream answers again"})
	}
}

// decide routes the context's key under a rollout, or returns why it cannot.
func (p *Provider) decide(rollout string, flat openfeature.FlattenedContext) (*rollgatev1.RouteState, rollgate.RouteResult, *openfeature.ResolutionError) {
	router := p.Router()
	var st *rollgatev1.RouteState
	if router != nil {
		st = router.RouteState(rollout)
	}
	if st == nil {
		if router == nil || !router.Stats().Ready {
			e := openfeature.NewProviderNotReadyResolutionError("no routing state yet")
			return nil, rollgate.RouteResult{}, &e
		}
		e := openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("no rollout %q", rollout))
		return nil, rollgate.RouteResult{}, &e
	}
	raw, ok := flat[openfeature.TargetingKey]
	key, isString := raw.(string)
	if !ok || raw == nil || (isString && key == "") {
		e := openfeature.NewTargetingKeyMissingResolutionError("the evaluation context's targeting key is required")
		return nil, rollgate.RouteResult{}, &e
	}
	if !isString {
		e := openfeature.NewInvalidContextResolutionError("the targeting key must be a string")
		return nil, rollgate.RouteResult{}, &e
	}
	r := router.Route(rollout, key)
	if r.Fallback == rollgate.FallbackInvalidKey {
		e := openfeature.NewInvalidContextResolutionError("the targeting key must be 1..1024 bytes of UTF-8")
		return nil, rollgate.RouteResult{}, &e
	}
	return st, r, nil
}

func metadataOf(st *rollgatev1.RouteState, r rollgate.RouteResult) openfeature.FlagMetadata {
	return openfeature.FlagMetadata{
		"rollout":        st.GetRollout(),
		"bucket":         int64(r.Bucket),
		"weightBp":       int64(r.WeightBP),
		"rolloutVersion": int64(r.RolloutVersion),
		"stage":          stageName(st.GetStage()),
		"rolloutVariant": variantName(r.Variant),
	}
}

func failure(e openfeature.ResolutionError) openfeature.ProviderResolutionDetail {
	return openfeature.ProviderResolutionDetail{ResolutionError: e, Reason: openfeature.ErrorReason}
}

// typeMismatch answers an evaluation of a flag as the wrong type (or FLAG_NOT_FOUND).
func (p *Provider) typeMismatch(flag, wanted string) openfeature.ProviderResolutionDetail {
	rollout, feature, isFeature := strings.Cut(flag, FeatureSeparator)
	var st *rollgatev1.RouteState
	if router := p.Router(); router != nil {
		st = router.RouteState(rollout)
	}
	if st == nil {
		return failure(openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("no flag %q", flag)))
	}
	if isFeature {
		if _, ok := st.GetFeatures()[feature]; !ok {
			return failure(openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("no flag %q", flag)))
		}
		return failure(openfeature.NewTypeMismatchResolutionError(fmt.Sprintf("%q is a boolean flag, not %s", flag, wanted)))
	}
	return failure(openfeature.NewTypeMismatchResolutionError(fmt.Sprintf("%q is a string flag, not %s", flag, wanted)))
}

// StringEvaluation evaluates a rollout: the version its key is routed to.
func (p *Provider) StringEvaluation(_ context.Context, flag string, defaultValue string, flat openfeature.FlattenedContext) openfeature.StringResolutionDetail {
	if strings.Contains(flag, FeatureSeparator) {
		return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.typeMismatch(flag, "a string")}
	}
	st, r, e := p.decide(flag, flat)
	if e != nil {
		return openfeature.StringResolutionDetail{Value: defaultValue, ProviderResolutionDetail: failure(*e)}
	}
	return openfeature.StringResolutionDetail{
		Value:                    r.Version,
		ProviderResolutionDetail: openfeature.ProviderResolutionDetail{Reason: reasons[r.Reason], Variant: variantName(r.Variant), FlagMetadata: metadataOf(st, r)},
	}
}

// BooleanEvaluation evaluates a rollout's feature: whether Route lists it for the key.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, defaultValue bool, flat openfeature.FlattenedContext) openfeature.BoolResolutionDetail {
	rollout, feature, isFeature := strings.Cut(flag, FeatureSeparator)
	if !isFeature {
		return openfeature.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.typeMismatch(flag, "a boolean")}
	}
	st, r, e := p.decide(rollout, flat)
	if e != nil {
		return openfeature.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: failure(*e)}
	}
	if _, ok := st.GetFeatures()[feature]; !ok {
		return openfeature.BoolResolutionDetail{Value: defaultValue, ProviderResolutionDetail: failure(openfeature.NewFlagNotFoundResolutionError(fmt.Sprintf("rollout %q has no feature %q", rollout, feature)))}
	}
	on := slices.Contains(r.Features, feature)
	variant := "off"
	if on {
		variant = "on"
	}
	return openfeature.BoolResolutionDetail{
		Value:                    on,
		ProviderResolutionDetail: openfeature.ProviderResolutionDetail{Reason: reasons[r.Reason], Variant: variant, FlagMetadata: metadataOf(st, r)},
	}
}

// FloatEvaluation answers TYPE_MISMATCH (or FLAG_NOT_FOUND): rollgate has no number flags.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, defaultValue float64, _ openfeature.FlattenedContext) openfeature.FloatResolutionDetail {
	return openfeature.FloatResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.typeMismatch(flag, "a float")}
}

// IntEvaluation answers TYPE_MISMATCH (or FLAG_NOT_FOUND): rollgate has no number flags.
func (p *Provider) IntEvaluation(_ context.Context, flag string, defaultValue int64, _ openfeature.FlattenedContext) openfeature.IntResolutionDetail {
	return openfeature.IntResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.typeMismatch(flag, "an integer")}
}

// ObjectEvaluation answers TYPE_MISMATCH (or FLAG_NOT_FOUND): rollgate has no object flags.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, defaultValue any, _ openfeature.FlattenedContext) openfeature.InterfaceResolutionDetail {
	return openfeature.InterfaceResolutionDetail{Value: defaultValue, ProviderResolutionDetail: p.typeMismatch(flag, "an object")}
}

// ErrNotTracked is what TrackOutcome returns when an event cannot be recorded.
var ErrNotTracked = errors.New("rollgate: event not tracked")

// Track records an outcome (see Provider); the SDK's Track returns nothing, so an event that
// cannot be recorded is dropped — TrackOutcome says why.
func (p *Provider) Track(_ context.Context, name string, ec openfeature.EvaluationContext, details openfeature.TrackingEventDetails) {
	_ = p.TrackOutcome(name, ec, details)
}

// TrackOutcome is Track with the reason an event was not recorded.
func (p *Provider) TrackOutcome(name string, ec openfeature.EvaluationContext, details openfeature.TrackingEventDetails) error {
	rollout, _, _ := strings.Cut(name, FeatureSeparator)
	router := p.Router()
	if router == nil || router.RouteState(rollout) == nil {
		return fmt.Errorf("%w: no rollout %q", ErrNotTracked, rollout)
	}
	key := ec.TargetingKey()
	if key == "" {
		return fmt.Errorf("%w: the targeting key is required", ErrNotTracked)
	}
	success := true
	if v := details.Attribute("success"); v != nil {
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%w: the attribute success must be a bool", ErrNotTracked)
		}
		success = b
	}
	latency, err := TrackLatencyMS(details)
	if err != nil {
		return err
	}
	r := router.Route(rollout, key)
	if r.Fallback != rollgate.FallbackNone {
		return fmt.Errorf("%w: key not routable (%v)", ErrNotTracked, r.Fallback)
	}
	return p.client.RecordOutcome(rollout, rollgate.Outcome{Variant: r.Variant, Success: success, LatencyMS: latency, Key: key})
}

// TrackLatencyMS returns the latency, in milliseconds, a tracking event records: the attribute
// "latencyMs" (any Go number) when given, else the event's value — the same order as the
// TypeScript and Python providers.
func TrackLatencyMS(details openfeature.TrackingEventDetails) (float64, error) {
	v := details.Attribute("latencyMs")
	if v == nil {
		return details.Value(), nil
	}
	switch n := v.(type) {
	case float64:
		return n, nil
	case float32:
		return float64(n), nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	case int32:
		return float64(n), nil
	case uint:
		return float64(n), nil
	case uint64:
		return float64(n), nil
	case uint32:
		return float64(n), nil
	default:
		return 0, fmt.Errorf("%w: the attribute latencyMs must be a number of milliseconds", ErrNotTracked)
	}
}
