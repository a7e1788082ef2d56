package rng

import "testing"

// The first outputs of SplitMix64 from state 0, as the reference C code of
// Steele, Lea and Flood (Vigna's splitmix64.c) prints them.
func TestSplitMix64KnownAnswer(t *testing.T) {
	want := []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f}
	var s SplitMix64
	for i, w := range want {
		if got := s.Uint64(); got != w {
			t.Errorf("output %d = %#x, want %#x", i, got, w)
		}
		if got := At(0, uint64(i)); got != w {
			t.Errorf("At(0, %d) = %#x, want %#x", i, got, w)
		}
	}
}

func TestStreamRanges(t *testing.T) {
	r := NewStream(7, 3)
	for range 1000 {
		if f := r.Float(); f < 0 || f >= 1 {
			t.Fatalf("Float() = %v", f)
		}
		if u := r.Uniform(-2, 5); u < -2 || u >= 5 {
			t.Fatalf("Uniform(-2, 5) = %v", u)
		}
		if n := r.Intn(6); n < 0 || n >= 6 {
			t.Fatalf("Intn(6) = %v", n)
		}
	}
	if NewStream(7, 3).Uint64() == NewStream(7, 4).Uint64() {
		t.Error("sub-streams 3 and 4 of one seed start alike")
	}
}
