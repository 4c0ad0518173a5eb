package rollgate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// Local decisions beside remote Route in the same run, and the memory a local router holds for
// 1,000 rollouts. Run pinned (bench/RESULTS.md, "Local evaluation"):
//
//	ROLLGATE_SERVER_CPUS=0 taskset -c 1 go test -run '^$' -bench 'Local|RemoteRoute' -cpu 1 .

// benchKeys are distinct keys, cycled through by every benchmark.
var benchKeys = func() []string {
	keys := make([]string, 100000)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	return keys
}()

func benchRollout(b *testing.B, c *rollgate.Client) string {
	b.Helper()
	ctx := context.Background()
	name := uniqueName("bench")
	_, err := c.Rollouts.CreateRollout(ctx, connect.NewRequest(&rollgatev1.CreateRolloutRequest{Rollout: &rollgatev1.Rollout{
		Name: name, StableVersion: "v1", CanaryVersion: "v2", Features: map[string]bool{"new-ui": true, "beta": false},
		Overrides: map[string]rollgate.Variant{"vip": rollgate.Canary},
	}, Reason: "bench"}))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Rollouts.SetWeight(ctx, connect.NewRequest(&rollgatev1.SetWeightRequest{Name: name, WeightBp: 2500, Reason: "bench"})); err != nil {
		b.Fatal(err)
	}
	return name
}

func BenchmarkLocalRoute(b *testing.B) {
	c, err := rollgate.New(shared.URL, rollgate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close() //nolint:errcheck
	name := benchRollout(b, c)
	l, err := c.StartLocal(context.Background(), rollgate.LocalOptions{Rollouts: []string{name}, StartupTimeout: 20 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if r := l.Route(name, "k"); r.Fallback != rollgate.FallbackNone {
		b.Fatalf("no state: %+v", r)
	}
	canary := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if l.Route(name, benchKeys[i%len(benchKeys)]).Variant == rollgate.Canary {
			canary++
		}
	}
	reportRates(b, cpuTime()-cpu)
	if b.N >= 100000 && (canary < b.N/5 || canary > b.N*3/10) {
		b.Fatalf("%d of %d on the canary at 25%%", canary, b.N)
	}
}

func BenchmarkRemoteRoute(b *testing.B) {
	c, err := rollgate.New(shared.URL, rollgate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close() //nolint:errcheck
	name := benchRollout(b, c)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := c.Route(ctx, name, benchKeys[i%len(benchKeys)]); err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, cpuTime()-cpu)
}

// BenchmarkLocalMemory1000Rollouts reports the heap a local router holds for 1,000 rollouts
// (3 features and 2 overrides each) streamed from a server of its own: live heap after GC with
// the router's state, minus the same client before it started.
func BenchmarkLocalMemory1000Rollouts(b *testing.B) {
	s, err := startServer("127.0.0.1:0", filepath.Join(b.TempDir(), "rollgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.stop()
	c, err := rollgate.New(s.URL, rollgate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close() //nolint:errcheck
	ctx := context.Background()
	for i := range 1000 {
		_, err := c.Rollouts.CreateRollout(ctx, connect.NewRequest(&rollgatev1.CreateRolloutRequest{Rollout: &rollgatev1.Rollout{
			Name: fmt.Sprintf("mem-%04d", i), StableVersion: "v1.4.2", CanaryVersion: "v1.5.0",
			Features:  map[string]bool{"new-checkout": true, "dark-mode": false, "beta-banner": true},
			Overrides: map[string]rollgate.Variant{"qa-user-1": rollgate.Canary, "qa-user-2": rollgate.Stable},
		}, Reason: "bench"}))
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.Route(ctx, "mem-0000", "k"); err != nil { // the connection is up before measuring
		b.Fatal(err)
	}
	for b.Loop() {
		before := liveHeap()
		l, err := c.StartLocal(ctx, rollgate.LocalOptions{StartupTimeout: 30 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		if st := l.Stats(); st.Rollouts != 1000 {
			b.Fatalf("router holds %d rollouts", st.Rollouts)
		}
		held := liveHeap() - before
		b.ReportMetric(float64(held)/(1<<20), "MiB/1000-rollouts")
		b.ReportMetric(float64(held)/1000, "B/rollout")
		runtime.KeepAlive(l)
		l.Close()
	}
}

// reportRates reports decisions per second of wall-clock time and per second of this
// process's CPU time (user + system, every thread): on a shared machine the core the benchmark
// is pinned to is not all its own, and the second figure is what one core would do.
func reportRates(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "decisions/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
