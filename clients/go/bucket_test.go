package rollgate_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	rollgate "rollgate/clients/go"
	rollgatev1 "rollgate/clients/go/gen/rollgate/v1"
)

// vector is one row of a bucketing test-vector file (vectors/README.md).
type vector struct {
	Salt     string `json:"salt"`
	Key      string `json:"key"`
	Bucket   uint32 `json:"bucket"`
	WeightBP uint32 `json:"weight_bp"`
	Variant  string `json:"variant"`
}

// vectorFiles are the project's vectors and the normative reference, relative to the root.
var vectorFiles = []string{"vectors/bucketing-v1.json", "vectors/reference/bucketing-v1-vectors.json"}

func readVectors(t *testing.T, file string) []vector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), file))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatalf("%s holds no vectors", file)
	}
	return doc.Vectors
}

func wantVariant(t *testing.T, v vector) rollgate.Variant {
	t.Helper()
	variant, ok := rollgatev1.Variant_value[v.Variant]
	if !ok || (variant != int32(rollgate.Stable) && variant != int32(rollgate.Canary)) {
		t.Fatalf("vector %q/%q: bad variant %q", v.Salt, v.Key, v.Variant)
	}
	return rollgate.Variant(variant)
}

func TestBucketMatchesVectors(t *testing.T) {
	for _, file := range vectorFiles {
		t.Run(filepath.Base(file), func(t *testing.T) {
			for _, v := range readVectors(t, file) {
				got := rollgate.Bucket(v.Salt, v.Key)
				if got != v.Bucket {
					t.Errorf("Bucket(%q, %.40q) = %d, want %d", v.Salt, v.Key, got, v.Bucket)
				}
				if variant := rollgate.VariantOf(got, v.WeightBP); variant != wantVariant(t, v) {
					t.Errorf("VariantOf(%d, %d) for %q/%.40q = %v, want %s", got, v.WeightBP, v.Salt, v.Key, variant, v.Variant)
				}
			}
		})
	}
}

func TestVariantOfEdges(t *testing.T) {
	cases := []struct {
		bucket, weight uint32
		want           rollgate.Variant
	}{
		{0, 0, rollgate.Stable},
		{0, 1, rollgate.Canary},
		{9999, 9999, rollgate.Stable},
		{9999, 10000, rollgate.Canary},
		{5000, 5000, rollgate.Stable},
	}
	for _, c := range cases {
		if got := rollgate.VariantOf(c.bucket, c.weight); got != c.want {
			t.Errorf("VariantOf(%d, %d) = %v, want %v", c.bucket, c.weight, got, c.want)
		}
	}
}
