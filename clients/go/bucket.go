package rollgate

import (
	"crypto/sha256"
	"encoding/binary"
)

// Buckets is the number of buckets of bucketing spec v1: a bucket is 0..Buckets-1, and a
// weight in basis points (0..10000) sends the buckets below it to the canary.
const Buckets = 10000

// Bucket returns the bucket 0..9999 of a key under a salt (bucketing spec v1):
// the first 8 bytes of SHA-256(salt || 0x00 || key), big endian, modulo 10000.
//
// It is the value the server answers in RouteResponse.bucket, so a client can tell where a key
// goes without a call when it knows the rollout's salt and weight.
func Bucket(salt, key string) uint32 {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [sha256.Size]byte
	return uint32(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % Buckets)
}

// VariantOf returns the variant of a bucket at a canary weight in basis points: Canary when
// bucket < weightBP, Stable otherwise (so weight 0 routes nobody to the canary, 10000 everybody).
func VariantOf(bucket, weightBP uint32) Variant {
	if bucket < weightBP {
		return Canary
	}
	return Stable
}
