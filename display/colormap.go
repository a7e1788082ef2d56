package display

//go:generate /usr/bin/python3 ../scripts/reference/gen_tables.py

import (
	"fmt"
	"image/color"
	"math"
	"sort"
	"strings"
)

// A Colormap assigns a colour to each value in [0, 1] through a table of 256
// opaque colours, the way OpenCV's cv2.applyColorMap and matplotlib do.
//
// The zero Colormap behaves like Grey.
type Colormap struct {
	name string
	lut  *[256]color.RGBA
}

// The colormaps this package provides. All are 256-entry tables.
var (
	// Jet is OpenCV's COLORMAP_JET, entry for entry as cv2.applyColorMap
	// produces it: dark blue, blue, cyan, yellow, red, dark red. It is the
	// colormap of pytorch-grad-cam's overlays. (matplotlib's "jet" is a
	// different table: it differs from this one by up to 34 levels.)
	Jet = Colormap{"jet", jetTable()}

	// Viridis is matplotlib's perceptually uniform "viridis" (dark purple
	// through green to yellow), also OpenCV's COLORMAP_VIRIDIS. It reads
	// well in greyscale print and for colour-blind readers.
	Viridis = Colormap{"viridis", tableFromFloats(&viridisData)}

	// Turbo is matplotlib's "turbo" (Google's improved rainbow), also
	// OpenCV's COLORMAP_TURBO.
	Turbo = Colormap{"turbo", tableFromFloats(&turboData)}

	// Grey maps 0 to black and 1 to white.
	Grey = Colormap{"grey", greyTable()}
)

var colormapsByName = map[string]Colormap{
	"jet":     Jet,
	"viridis": Viridis,
	"turbo":   Turbo,
	"grey":    Grey,
	"gray":    Grey,
}

// ColormapByName returns the colormap with the given name, ignoring case:
// "jet", "viridis", "turbo", "grey" (or "gray"). It is meant for command-line
// flags and configuration files.
func ColormapByName(name string) (Colormap, error) {
	c, ok := colormapsByName[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Colormap{}, fmt.Errorf("display: unknown colormap %q (want one of %s)",
			name, strings.Join(ColormapNames(), ", "))
	}
	return c, nil
}

// ColormapNames returns the names ColormapByName accepts, sorted, without
// aliases.
func ColormapNames() []string {
	var names []string
	for name, c := range colormapsByName {
		if name == c.Name() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Name returns the colormap's name, as accepted by ColormapByName.
func (c Colormap) Name() string {
	if c.lut == nil {
		return Grey.name
	}
	return c.name
}

// String returns the colormap's name.
func (c Colormap) String() string { return c.Name() }

// Index returns entry i of the colormap's table.
func (c Colormap) Index(i uint8) color.RGBA {
	if c.lut == nil {
		return color.RGBA{i, i, i, 0xff}
	}
	return c.lut[i]
}

// At returns the colour for value v in [0, 1]: the table entry
// floor(255*v), computed in float32. This is how pytorch-grad-cam's
// show_cam_on_image quantises a CAM (np.uint8(255 * mask)) before
// cv2.applyColorMap. Values below 0 and NaN give entry 0, values above 1
// entry 255.
//
// matplotlib's imshow quantises differently, to floor(256*v), so for the
// same value it can pick the neighbouring entry.
func (c Colormap) At(v float64) color.RGBA {
	return c.Index(quantize(float32(v)))
}

// quantize maps v in [0, 1] to a table index as np.uint8(255 * v) does for
// float32 values in range.
func quantize(v float32) uint8 {
	switch {
	case !(v > 0): // also NaN
		return 0
	case v >= 1:
		return 255
	}
	return uint8(float32(255 * v))
}

// jetTable builds OpenCV's jet table. Each channel is the piecewise-linear
// ramp clamp(1.5 - |4x - c|, 0, 1) with x = i/255 and c = 3 (red), 2 (green),
// 1 (blue), scaled to 0..255 and rounded half to even. The arithmetic is done
// exactly, in integers: 255*ramp = 382.5 - |4i - 255c|.
func jetTable() *[256]color.RGBA {
	var t [256]color.RGBA
	channel := func(i, c int) uint8 {
		twice := 765 - 2*abs(4*i-255*c) // 2 * 255 * ramp
		twice = max(0, min(510, twice))
		v := twice / 2
		if twice%2 == 1 && v%2 == 1 { // exactly half-way: round to even
			v++
		}
		return uint8(v)
	}
	for i := range t {
		t[i] = color.RGBA{channel(i, 3), channel(i, 2), channel(i, 1), 0xff}
	}
	// OpenCV computes the table in floating point, and at i = 159 its blue
	// value 1.5 comes out just below the half, so it rounds to 1 instead of
	// 2. Reproduce that so that Jet matches cv2.applyColorMap everywhere.
	t[159].B = 1
	return &t
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// tableFromFloats rounds a colormap defined by 256 RGB triples in [0, 1]
// to 8 bits, as OpenCV does (matplotlib truncates instead when asked for
// bytes, so its bytes can be one level lower).
func tableFromFloats(data *[256][3]float64) *[256]color.RGBA {
	var t [256]color.RGBA
	for i, rgb := range data {
		t[i] = color.RGBA{
			uint8(math.RoundToEven(rgb[0] * 255)),
			uint8(math.RoundToEven(rgb[1] * 255)),
			uint8(math.RoundToEven(rgb[2] * 255)),
			0xff,
		}
	}
	return &t
}

func greyTable() *[256]color.RGBA {
	var t [256]color.RGBA
	for i := range t {
		t[i] = color.RGBA{uint8(i), uint8(i), uint8(i), 0xff}
	}
	return &t
}
