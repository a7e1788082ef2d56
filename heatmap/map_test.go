package heatmap

import (
	"math"
	"strings"
	"testing"
)

func TestNewMapValidates(t *testing.T) {
	if _, err := New(0, 3, nil); err == nil {
		t.Error("New(0, 3) succeeded")
	}
	if _, err := New(2, 2, make([]float32, 3)); err == nil {
		t.Error("New(2, 2) with 3 values succeeded")
	}
	m, err := New(3, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Values) != 6 {
		t.Errorf("New(3, 2, nil) has %d values, want 6", len(m.Values))
	}
	vals := []float32{1, 2, 3, 4, 5, 6}
	m, _ = New(3, 2, vals)
	if m.At(2, 1) != 6 || m.At(0, 1) != 4 || m.At(1, 0) != 2 {
		t.Errorf("At does not index row-major: %v", m)
	}
	vals[0] = 9
	if m.At(0, 0) != 9 {
		t.Error("New copied its values; it is documented to use them")
	}
}

func TestMinMaxAndNormalized(t *testing.T) {
	nan := float32(math.NaN())
	m := Map{Width: 2, Height: 2, Values: []float32{nan, 2, -2, 6}}
	lo, hi := m.MinMax()
	if lo != -2 || hi != 6 {
		t.Errorf("MinMax = %v, %v, want -2, 6", lo, hi)
	}
	n := m.Normalized()
	want := []float32{nan, 0.5, 0, 1}
	for i := range want {
		if got := n.Values[i]; !(got == want[i] || got != got && want[i] != want[i]) {
			t.Errorf("Normalized()[%d] = %v, want %v", i, got, want[i])
		}
	}
	if m.Values[1] != 2 {
		t.Error("Normalized modified its receiver")
	}
	c := Map{Width: 2, Height: 1, Values: []float32{3, 3}}.Normalized()
	if c.Values[0] != 0 || c.Values[1] != 0 {
		t.Errorf("constant map normalised to %v, want zeros", c.Values)
	}
	if lo, hi := (Map{Width: 1, Height: 1, Values: []float32{nan}}).MinMax(); lo != 0 || hi != 0 {
		t.Errorf("MinMax of all-NaN map = %v, %v, want 0, 0", lo, hi)
	}
}

func approxEqual(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > tol {
			return false
		}
	}
	return true
}

// TestResizeHandComputed checks the half-pixel-centre convention on cases
// worked out by hand.
func TestResizeHandComputed(t *testing.T) {
	// 2x2 -> 4x4. Destination column d samples source x = (d+0.5)/2 - 0.5:
	// -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1), so a row a b
	// becomes a, 0.75a+0.25b, 0.25a+0.75b, b; rows likewise.
	m := Map{Width: 2, Height: 2, Values: []float32{
		0, 1,
		2, 3,
	}}
	got, err := m.Resize(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{
		0, 0.25, 0.75, 1,
		0.5, 0.75, 1.25, 1.5,
		1.5, 1.75, 2.25, 2.5,
		2, 2.25, 2.75, 3,
	}
	if !approxEqual(got.Values, want, 1e-6) {
		t.Errorf("2x2 -> 4x4 = %v,\nwant %v", got.Values, want)
	}

	// 4x1 -> 2x1: source x = (d+0.5)*2 - 0.5 = 0.5 and 2.5, the means of
	// neighbouring pairs.
	m = Map{Width: 4, Height: 1, Values: []float32{1, 3, 10, 20}}
	got, err = m.Resize(2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{2, 15}; !approxEqual(got.Values, want, 1e-6) {
		t.Errorf("4x1 -> 2x1 = %v, want %v", got.Values, want)
	}

	// 3x1 -> 2x1: x = (d+0.5)*1.5 - 0.5 = 0.25 and 1.75.
	m = Map{Width: 3, Height: 1, Values: []float32{0, 4, 8}}
	got, _ = m.Resize(2, 1)
	if want := []float32{1, 7}; !approxEqual(got.Values, want, 1e-6) {
		t.Errorf("3x1 -> 2x1 = %v, want %v", got.Values, want)
	}

	// 1x1 -> 3x2: every pixel is the single value.
	got, _ = Map{Width: 1, Height: 1, Values: []float32{7}}.Resize(3, 2)
	if want := []float32{7, 7, 7, 7, 7, 7}; !approxEqual(got.Values, want, 0) {
		t.Errorf("1x1 -> 3x2 = %v", got.Values)
	}
}

func TestResizeErrors(t *testing.T) {
	m := Map{Width: 2, Height: 2, Values: make([]float32, 4)}
	if _, err := m.Resize(0, 3); err == nil {
		t.Error("Resize(0, 3) succeeded")
	}
	if _, err := (Map{Width: 2, Height: 2}).Resize(3, 3); err == nil {
		t.Error("Resize of a map without values succeeded")
	}
	same, err := m.Resize(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	same.Values[0] = 1
	if m.Values[0] != 0 {
		t.Error("Resize to the same size returned shared storage")
	}
}

// Sizes whose product overflows an int, or that would allocate more than
// MaxPixels values, are errors that give the size, never a panic or a
// gigabyte allocation; a map whose Width·Height wraps around to its number
// of values is not valid.
func TestHugeAndOverflowingSizesAreErrors(t *testing.T) {
	small := Map{Width: 2, Height: 1, Values: []float32{0, 1}}
	for _, c := range []struct {
		name string
		call func() error
		want string
	}{
		{"New over the limit", func() error { _, err := New(1<<20, 1<<20, nil); return err }, "heatmap.New: map size 1048576x1048576 is 1099511.6 megapixels, over the limit of 100.0 (heatmap.MaxPixels)"},
		{"New overflowing", func() error { _, err := New(1<<32, 1<<32, nil); return err }, "heatmap.New: map size 4294967296x4294967296"},
		{"New wrapping to its values", func() error { _, err := New(1<<33, 1<<31, []float32{}); return err }, "has 0 values, want 1.845e+19, more than a slice holds"},
		{"Validate wrapping", func() error { return Map{Width: 1 << 62, Height: 4, Values: nil}.Validate() }, "more than a slice holds"},
		{"Resize over the limit", func() error { _, err := small.Resize(1<<20, 1<<20); return err }, "heatmap: resize target size 1048576x1048576"},
		{"Resize overflowing", func() error { _, err := small.Resize(math.MaxInt, 2); return err }, "heatmap.MaxPixels"},
		{"Resize of a wrapping map", func() error { _, err := (Map{Width: 1 << 33, Height: 1 << 31}).Resize(2, 2); return err }, "more than a slice holds"},
		{"CheckSize negative", func() error { return CheckSize("tile", -1, 4) }, "tile size -1x4: both sides must be at least 1"},
	} {
		err := c.call()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
	defer func(n int) { MaxPixels = n }(MaxPixels)
	MaxPixels = 6
	if _, err := New(3, 2, nil); err != nil {
		t.Errorf("New at the limit: %v", err)
	}
	if _, err := small.Resize(7, 1); err == nil {
		t.Error("Resize over a lowered limit: no error")
	}
}
