// Package rollgate is the Go client of rollgate, the progressive-delivery decision service.
//
// A Client asks where a key goes ([Client.Route]), reports what happened
// ([Client.RecordOutcome], buffered and sent in batches), reads and streams the judgement
// ([Client.Health], [Client.WatchHealth]) and computes buckets locally ([Bucket], bucketing
// spec v1). In local mode ([Client.StartLocal]) a [LocalRouter] answers Route in process from
// the routing state the server streams, and keeps answering while the server is down. It speaks gRPC over HTTP/2 (cleartext for http:// base URLs, TLS for https://)
// through connect-go; the generated clients of both services are exposed as
// [Client.Decisions] and [Client.Rollouts] for everything else.
//
//	c, err := rollgate.New("http://127.0.0.1:8080", rollgate.Options{Token: os.Getenv("ROLLGATE_TOKEN")})
//	r, err := c.Route(ctx, "checkout", userID) // r.Variant, r.Version
//	err = c.RecordOutcome("checkout", rollgate.Outcome{Variant: r.Variant, Success: true, LatencyMS: 12})
//	err = c.Close() // flushes every buffered outcome
package rollgate
