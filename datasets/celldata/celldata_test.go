package celldata

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"runtime"
	"slices"
	"testing"
)

func TestDeterministic(t *testing.T) {
	set := Set{Seed: 4}
	for i := range 6 {
		a, b := set.Sample(i), set.Sample(i)
		if !bytes.Equal(a.Image.Pix, b.Image.Pix) || !slices.Equal(a.Mask, b.Mask) || a.Texture != b.Texture {
			t.Fatalf("sample %d differs between two runs", i)
		}
		if a.Class != Class(i%2) {
			t.Errorf("sample %d has class %v", i, a.Class)
		}
	}
	if bytes.Equal(Generate(1, Red).Image.Pix, Generate(2, Red).Image.Pix) {
		t.Error("two seeds gave the same image")
	}
}

// TestGolden pins the held-out images' bytes (on amd64; see the lesiondata test).
func TestGolden(t *testing.T) {
	h := sha256.New()
	for i := range 8 {
		h.Write(HeldOut().Sample(i).Image.Pix)
	}
	got := fmt.Sprintf("%x", h.Sum(nil))
	const want = "0a78ea1ff7e9554ea791ff76f7c64babcb5ffa0e7696df2df71e7898f12597da"
	if runtime.GOARCH != "amd64" {
		t.Skipf("hash %s not compared on %s", got, runtime.GOARCH)
	}
	if got != want {
		t.Errorf("the held-out cells changed: hash %s, want %s", got, want)
	}
}

// TestColourNotLuma measures the cells, inside their masks: their hue tells
// the classes apart, every time, while their luma has the same distribution.
func TestColourNotLuma(t *testing.T) {
	const n = 300
	var luma, hue, tex [2][]float64
	set := Set{Seed: 8}
	for i := range n {
		s := set.Sample(i)
		var r, g, b, area float64
		for p, in := range s.Mask {
			if in {
				px := s.Image.Pix[4*p : 4*p+3]
				r += float64(px[0]) / 255
				g += float64(px[1]) / 255
				b += float64(px[2]) / 255
				area++
			}
		}
		if area < math.Pi*12*12 || area > math.Pi*22*22 {
			t.Errorf("sample %d: cell of %v pixels", i, area)
		}
		r, g, b = r/area, g/area, b/area
		luma[s.Class] = append(luma[s.Class], Luma(r, g, b))
		hue[s.Class] = append(hue[s.Class], r-b)
		tex[s.Class] = append(tex[s.Class], s.Texture)
	}
	if minR, maxW := slices.Min(hue[Red]), slices.Max(hue[White]); minR <= maxW {
		t.Errorf("red minus blue: red cells from %.3f, white cells up to %.3f: the colours overlap", minR, maxW)
	}
	if d := ks(luma[Red], luma[White]); d > 0.15 {
		t.Errorf("luma distributions differ: Kolmogorov-Smirnov distance %.3f", d)
	}
	if lo, hi := slices.Min(tex[White]), slices.Max(tex[Red]); lo < 0.4 || hi > 0.6 || lo > hi {
		t.Errorf("texture levels: white from %.2f, red up to %.2f; want overlapping ranges [0,0.6] and [0.4,1]", lo, hi)
	}
}

// ks is the Kolmogorov-Smirnov distance between two samples.
func ks(a, b []float64) float64 {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	d := 0.0
	for _, x := range append(slices.Clone(a), b...) {
		fa := float64(countLE(a, x)) / float64(len(a))
		fb := float64(countLE(b, x)) / float64(len(b))
		d = max(d, math.Abs(fa-fb))
	}
	return d
}

func countLE(s []float64, x float64) int {
	n := 0
	for _, v := range s {
		if v <= x {
			n++
		}
	}
	return n
}

func TestFloat32(t *testing.T) {
	s := Generate(3, White)
	dst := make([]float32, Size*Size*3)
	s.Float32(dst)
	for c := range 3 {
		if want := float32(s.Image.Pix[4*100+c]) / 255; dst[3*100+c] != want {
			t.Fatalf("channel %d: %v, want %v", c, dst[3*100+c], want)
		}
	}
}

func TestLumaOfWhite(t *testing.T) {
	if got := Luma(1, 1, 1); got < 0.999 || got > 1.001 {
		t.Errorf("Luma(white) = %v", got)
	}
}
