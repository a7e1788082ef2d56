// Package heatmap holds the value every convlens package shares: a [Map],
// a two-dimensional field of numbers such as a class activation map or one
// channel of a feature map, with its min-max normalisation and its bilinear
// resize (OpenCV's INTER_LINEAR convention); and [Tiles], maps to be shown
// side by side. gradcam and featuremaps return these values and display
// draws them, so neither computing package depends on drawing.
package heatmap

import (
	"errors"
	"fmt"
	"math"

	"github.com/convlens/convlens/internal/resample"
)

// A Map is a two-dimensional field of scalar values, such as a class
// activation map (CAM) or one channel of a convolutional feature map.
//
// Values holds Width*Height values in row-major order: the value at column x
// and row y is Values[y*Width+x], with row 0 at the top, as in an image.
type Map struct {
	Width, Height int
	Values        []float32
}

// MaxPixels is the most values (pixels) of a map that this package
// allocates, in [New] and [Map.Resize], and of a picture that package
// display draws or reads. A size larger than that is refused with an error
// before anything is allocated: a 100000x100000 map would take 40 GB. 100
// megapixels is more than any screen or printed page shows. Set it before
// the call to allow larger maps.
var MaxPixels = 100_000_000

// CheckSize reports an error if width x height is not a positive size of at
// most [MaxPixels] pixels; what names the thing of that size in the message.
func CheckSize(what string, width, height int) error {
	if width <= 0 || height <= 0 {
		return fmt.Errorf("%s size %dx%d: both sides must be at least 1", what, width, height)
	}
	if height > MaxPixels/width {
		return fmt.Errorf("%s size %dx%d is %.1f megapixels, over the limit of %.1f (heatmap.MaxPixels): ask for a smaller size, or raise heatmap.MaxPixels",
			what, width, height, float64(width)*float64(height)/1e6, float64(MaxPixels)/1e6)
	}
	return nil
}

// New returns a Map of the given size that uses values as its storage
// (without copying). If values is nil, New allocates a map of zeros, of at
// most [MaxPixels] values. It returns an error if a dimension is not
// positive, if len(values) is not width*height, or if New would allocate
// more than MaxPixels values.
func New(width, height int, values []float32) (Map, error) {
	if width <= 0 || height <= 0 {
		return Map{}, fmt.Errorf("heatmap: invalid map size %dx%d", width, height)
	}
	if values == nil {
		if err := CheckSize("heatmap.New: map", width, height); err != nil {
			return Map{}, err
		}
		values = make([]float32, width*height)
	}
	m := Map{Width: width, Height: height, Values: values}
	if err := m.Validate(); err != nil {
		return Map{}, err
	}
	return m, nil
}

// Validate reports whether m is well formed: positive dimensions and exactly
// Width*Height values. Functions that take a Map call it and
// return its error.
func (m Map) Validate() error {
	if m.Width <= 0 || m.Height <= 0 {
		return fmt.Errorf("heatmap: invalid map size %dx%d", m.Width, m.Height)
	}
	// len(m.Values) == Width*Height, without overflowing the product.
	if len(m.Values)%m.Width != 0 || len(m.Values)/m.Width != m.Height {
		want := fmt.Sprint(m.Width * m.Height)
		if m.Height > math.MaxInt/m.Width {
			want = fmt.Sprintf("%.4g, more than a slice holds", float64(m.Width)*float64(m.Height))
		}
		return fmt.Errorf("heatmap: map of size %dx%d has %d values, want %s",
			m.Width, m.Height, len(m.Values), want)
	}
	return nil
}

// At returns the value at column x and row y. It panics if (x, y) is outside
// the map, like indexing a slice.
func (m Map) At(x, y int) float32 {
	if x < 0 || x >= m.Width || y < 0 || y >= m.Height {
		panic(fmt.Sprintf("heatmap: Map.At(%d, %d) outside %dx%d map", x, y, m.Width, m.Height))
	}
	return m.Values[y*m.Width+x]
}

// MinMax returns the smallest and largest values of m, ignoring NaNs.
// It returns (0, 0) if m has no value that is not NaN.
func (m Map) MinMax() (lo, hi float32) {
	first := true
	for _, v := range m.Values {
		if v != v { // NaN
			continue
		}
		if first {
			lo, hi, first = v, v, false
			continue
		}
		lo = min(lo, v)
		hi = max(hi, v)
	}
	return lo, hi
}

// Normalized returns a copy of m rescaled linearly so that its minimum
// becomes 0 and its maximum 1: (v-min)/(max-min). A constant map becomes all
// zeros; NaNs stay NaN. The receiver is not modified.
//
// This is plain min-max normalisation. pytorch-grad-cam normalises CAMs
// slightly differently ((v-min)/(1e-7+max-min) after a ReLU); the gradcam
// package does that itself and hands over maps already in [0, 1].
func (m Map) Normalized() Map {
	lo, hi := m.MinMax()
	out := Map{Width: m.Width, Height: m.Height, Values: make([]float32, len(m.Values))}
	span := hi - lo
	for i, v := range m.Values {
		switch {
		case v != v:
			out.Values[i] = v
		case span > 0 && !math.IsInf(float64(span), 0):
			out.Values[i] = (v - lo) / span
		}
	}
	return out
}

// errEmptyTarget is returned when a resize is asked for a non-positive size.
var errEmptyTarget = errors.New("heatmap: resize target size must be positive")

// Resize returns m resampled to width x height by bilinear interpolation
// with half-pixel centres, the convention of OpenCV's cv2.resize with
// INTER_LINEAR (which pytorch-grad-cam uses to bring a CAM to the input
// size): destination pixel (dx, dy) samples the source at
//
//	sx = (dx+0.5)*Width/width - 0.5,  sy = (dy+0.5)*Height/height - 0.5
//
// with coordinates clamped to the outermost pixel centres, so the border
// rows and columns are repeated rather than faded. If the size is unchanged
// Resize returns a copy. A target of more than [MaxPixels] values is an
// error.
func (m Map) Resize(width, height int) (Map, error) {
	if err := m.Validate(); err != nil {
		return Map{}, err
	}
	if width <= 0 || height <= 0 {
		return Map{}, fmt.Errorf("%w: got %dx%d", errEmptyTarget, width, height)
	}
	if err := CheckSize("heatmap: resize target", width, height); err != nil {
		return Map{}, err
	}
	out := Map{Width: width, Height: height, Values: make([]float32, width*height)}
	if width == m.Width && height == m.Height {
		copy(out.Values, m.Values)
		return out, nil
	}
	xs := resample.Taps(m.Width, width)
	ys := resample.Taps(m.Height, height)
	row := make([]float32, width) // one source row interpolated horizontally
	row2 := make([]float32, width)
	for dy, ty := range ys {
		interpRow(m.Values[ty.I0*m.Width:(ty.I0+1)*m.Width], xs, row)
		interpRow(m.Values[ty.I1*m.Width:(ty.I1+1)*m.Width], xs, row2)
		dst := out.Values[dy*width : (dy+1)*width]
		for dx := range dst {
			dst[dx] = float32(row[dx]*(1-ty.F)) + float32(row2[dx]*ty.F)
		}
	}
	return out, nil
}

func interpRow(src []float32, xs []resample.Tap, dst []float32) {
	for i, t := range xs {
		dst[i] = float32(src[t.I0]*(1-t.F)) + float32(src[t.I1]*t.F)
	}
}

// Tiles are maps to be shown side by side under one title, each with its
// label: the channels of one layer, say (display.TileGrid draws them).
type Tiles struct {
	Title  string
	Labels []string
	Maps   []Map
}
