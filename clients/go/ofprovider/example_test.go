package ofprovider_test

import (
	"context"
	"log"
	"os"

	"github.com/open-feature/go-sdk/openfeature"

	rollgate "rollgate/clients/go"
	"rollgate/clients/go/ofprovider"
)

// The README's Go snippet, compiled (not run: it needs a server).
func Example() {
	ctx := context.Background()
	c, err := rollgate.New("http://localhost:8080", rollgate.Options{Token: os.Getenv("ROLLGATE_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	provider := ofprovider.New(c, ofprovider.Options{})
	if err := openfeature.SetProviderAndWait(provider); err != nil { // READY after the first state
		log.Fatal(err)
	}
	defer openfeature.Shutdown()
	client := openfeature.NewClient("checkout-service")
	user := openfeature.NewEvaluationContext("user-42", nil)
	version, _ := client.StringValue(ctx, "checkout", "v1.4.2", user)
	client.Track(ctx, "checkout", user, openfeature.NewTrackingEventDetails(12).Add("success", true))
	_ = version
}
