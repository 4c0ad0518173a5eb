package rollgate_test

import (
	"context"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	rollgate "rollgate/clients/go"
	"rollgate/clients/go/ofprovider"
)

// BenchmarkOpenFeatureProvider evaluates a rollout through go-sdk's client and the in-process
// provider, the same keys as BenchmarkLocalRoute (run them together to see the SDK's overhead):
//
//	ROLLGATE_SERVER_CPUS=0 taskset -c 1 go test -run '^$' -bench 'LocalRoute|OpenFeatureProvider' -cpu 1 .
func BenchmarkOpenFeatureProvider(b *testing.B) {
	c, err := rollgate.New(shared.URL, rollgate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close() //nolint:errcheck
	name := benchRollout(b, c)
	p := ofprovider.New(c, ofprovider.Options{Local: rollgate.LocalOptions{Rollouts: []string{name}, StartupTimeout: 20 * time.Second}})
	domain := uniqueName("bench-of")
	if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
		b.Fatal(err)
	}
	defer p.Shutdown()
	client := openfeature.NewClient(domain)
	ctx := context.Background()
	contexts := make([]openfeature.EvaluationContext, len(benchKeys))
	for i, k := range benchKeys {
		contexts[i] = openfeature.NewEvaluationContext(k, nil)
	}
	canary := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if v, _ := client.StringValue(ctx, name, "none", contexts[i%len(contexts)]); v == "v2" {
			canary++
		}
	}
	reportRates(b, cpuTime()-cpu)
	if b.N >= 100000 && (canary < b.N/5 || canary > b.N*3/10) {
		b.Fatalf("%d of %d on the canary at 25%%", canary, b.N)
	}
}
