// Control-plane mutations over the network from a load generator that is not the bottleneck:
// SetWeight on one rollout over Connect JSON (HTTP/1.1, keep-alive), `callers` goroutines in a
// loop for `seconds`, each call a weight different from every other call in flight, so that every
// call really changes the rollout (a committed, audited, durable change; setting the
// weight a rollout already has is a no-op). The rollout's version before and after is read back
// (GetRollout): the run fails unless it grew by exactly the number of calls answered 200.
// Usage: go run . <port> <rollout> <callers> <seconds>
// Prints {"perSec", "calls", "errors", "versionDelta", "seconds"}.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: set-weight <port> <rollout> <callers> <seconds>")
		os.Exit(2)
	}
	port, rollout := os.Args[1], os.Args[2]
	callers, _ := strconv.Atoi(os.Args[3])
	seconds, _ := strconv.ParseFloat(os.Args[4], 64)
	base := "http://127.0.0.1:" + port + "/rollgate.v1.RolloutService/"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers, MaxConnsPerHost: callers, DisableCompression: true}}

	post := func(method string, body []byte) (int, []byte, error) {
		res, err := client.Post(base+method, "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	version := func() uint64 {
		status, b, err := post("GetRollout", []byte(`{"name":`+strconv.Quote(rollout)+`}`))
		if err != nil || status != 200 {
			fmt.Fprintf(os.Stderr, "GetRollout: HTTP %d %v %s\n", status, err, b)
			os.Exit(1)
		}
		var r struct {
			Rollout struct {
				Version string `json:"version"`
			} `json:"rollout"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintln(os.Stderr, "GetRollout:", err)
			os.Exit(1)
		}
		v, _ := strconv.ParseUint(r.Rollout.Version, 10, 64)
		return v
	}

	v0 := version()
	var n, calls, errors atomic.Int64
	var lastError atomic.Value
	lastError.Store("")
	// Weights 600..1599 in turn: the calls in flight (at most `callers`) never ask for the same one.
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf(`{"name":%s,"weightBp":%d,"reason":"bench"}`, strconv.Quote(rollout), 600+i))
	}
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	t0 := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				k := n.Add(1) - 1
				status, b, err := post("SetWeight", bodies[k%1000])
				calls.Add(1)
				if err != nil || status != 200 {
					errors.Add(1)
					lastError.Store(fmt.Sprintf("HTTP %d %v %.200s", status, err, b))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0).Seconds()
	delta := version() - v0
	out, _ := json.Marshal(map[string]any{
		"perSec": float64(calls.Load()) / elapsed, "calls": calls.Load(), "errors": errors.Load(),
		"lastError": lastError.Load(), "versionDelta": delta, "seconds": elapsed,
	})
	fmt.Println(string(out))
	if delta != uint64(calls.Load()-errors.Load()) {
		fmt.Fprintf(os.Stderr, "version grew by %d for %d changes: not every call was a real change\n", delta, calls.Load()-errors.Load())
		os.Exit(1)
	}
}
