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
	if len(salt)+1+len(key) <= shortInput {
		var buf [shortInput]byte
		n := copy(buf[:], salt)
		buf[n] = 0
		n += 1 + copy(buf[n+1:], key)
		return bucketOfSum(sha256.Sum256(buf[:n]))
	}
	return bucketLong(salt, "\x00", key)
}

// bucketPrefixed returns the bucket of a key under a salt given as salt || 0x00 (the local
// router keeps that prefix per rollout). It is Bucket without the separator byte to write.
func bucketPrefixed(prefix, key string) uint32 {
	if len(prefix)+len(key) <= shortInput {
		var buf [shortInput]byte
		n := copy(buf[:], prefix)
		n += copy(buf[n:], key)
		return bucketOfSum(sha256.Sum256(buf[:n]))
	}
	return bucketLong(prefix, "", key)
}

// shortInput is the size of the stack buffer the hash input is assembled in for the common,
// short keys; longer inputs (up to a 256-byte salt and a 1,024-byte key) take bucketLong, so
// that short ones do not pay for zeroing a large buffer. Neither allocates.
const shortInput = 128

const longInput = 256 + 1 + 1024

//go:noinline
func bucketLong(a, sep, key string) uint32 {
	if len(a)+len(sep)+len(key) > longInput {
		return bucketOfSum(sha256.Sum256([]byte(a + sep + key)))
	}
	var buf [longInput]byte
	n := copy(buf[:], a)
	n += copy(buf[n:], sep)
	n += copy(buf[n:], key)
	return bucketOfSum(sha256.Sum256(buf[:n]))
}

func bucketOfSum(sum [sha256.Size]byte) uint32 {
	return uint32(binary.BigEndian.Uint64(sum[:8]) % Buckets)
}

// VariantOf returns the variant of a bucket at a canary weight in basis points: Canary when
// bucket < weightBP, Stable otherwise (so weight 0 routes nobody to the canary, 10000 everybody).
func VariantOf(bucket, weightBP uint32) Variant {
	if bucket < weightBP {
		return Canary
	}
	return Stable
}
