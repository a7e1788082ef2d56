// Package rng holds the one pseudo-random generator convlens uses wherever a
// sequence must be reproducible forever and in any language: the data sets'
// images, the held-out permutations and the noise of noisy attribution
// methods. It is SplitMix64 (Steele, Lea and Flood, 2014), fully specified
// here so that it never changes with a Go release, as math/rand may.
package rng

// golden is SplitMix64's increment, 2⁶⁴/φ.
const golden = 0x9e3779b97f4a7c15

// SplitMix64 is the generator's state; its zero value is the stream of seed 0.
type SplitMix64 uint64

// Uint64 returns the next value.
func (s *SplitMix64) Uint64() uint64 {
	*s += golden
	return finalize(uint64(*s))
}

// At returns the (j+1)-th output of SplitMix64 started at state seed, without
// running through the first j: the stream is random access.
func At(seed, j uint64) uint64 { return finalize(seed + (j+1)*golden) }

func finalize(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Mix hashes two words into one: the second output of SplitMix64 seeded
// with a combination of both, for seeds of independent sub-streams.
func Mix(a, b uint64) uint64 {
	r := SplitMix64(a*golden ^ b)
	r.Uint64()
	return r.Uint64()
}

// Stream is a source of uniform numbers, one sub-stream of a seed.
type Stream struct{ s SplitMix64 }

// NewStream returns sub-stream k of seed: streams of different k are
// independent, so each part of a generated image draws from its own.
func NewStream(seed, k uint64) *Stream { return &Stream{SplitMix64(Mix(seed, k))} }

// Uint64 returns the next word.
func (r *Stream) Uint64() uint64 { return r.s.Uint64() }

// Float returns a number in [0,1).
func (r *Stream) Float() float64 { return float64(r.s.Uint64()>>11) / (1 << 53) }

// Uniform returns a number in [lo,hi).
func (r *Stream) Uniform(lo, hi float64) float64 { return lo + (hi-lo)*r.Float() }

// Intn returns an integer in [0,n).
func (r *Stream) Intn(n int) int { return int(r.s.Uint64() % uint64(n)) }
