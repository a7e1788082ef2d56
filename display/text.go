package display

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strconv"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// Text is set in Go Regular (the Go fonts, BSD licence, shipped inside
// golang.org/x/image), anti-aliased, dark on white.
var (
	inkColor   = color.RGBA{0x1a, 0x1a, 0x1a, 0xff} // near-black: body text
	paperColor = color.RGBA{0xff, 0xff, 0xff, 0xff}
)

var parsedFont struct {
	once sync.Once
	f    *sfnt.Font
	err  error
}

// newFace returns a new face of Go Regular at size pixels. Faces are not safe
// for concurrent use, so every drawing call makes its own.
func newFace(size float64) (font.Face, error) {
	parsedFont.once.Do(func() {
		parsedFont.f, parsedFont.err = opentype.Parse(goregular.TTF)
	})
	if parsedFont.err != nil {
		return nil, fmt.Errorf("display: parsing font: %w", parsedFont.err)
	}
	face, err := opentype.NewFace(parsedFont.f, &opentype.FaceOptions{
		Size:    size,
		DPI:     72, // size is in pixels
		Hinting: font.HintingFull,
	})
	if err != nil {
		return nil, fmt.Errorf("display: making font face: %w", err)
	}
	return face, nil
}

// textWidth returns the advance width of s in whole pixels.
func textWidth(face font.Face, s string) int {
	return font.MeasureString(face, s).Ceil()
}

// lineHeight returns ascent+descent of face in whole pixels.
func lineHeight(face font.Face) int {
	m := face.Metrics()
	return (m.Ascent + m.Descent).Ceil()
}

// drawText draws s with its top-left corner at (x, y).
func drawText(dst *image.RGBA, face font.Face, x, y int, s string, c color.Color) {
	d := font.Drawer{
		Dst:  dst,
		Src:  image.NewUniform(c),
		Face: face,
		Dot:  fixed.P(x, y+face.Metrics().Ascent.Ceil()),
	}
	d.DrawString(s)
}

// drawTextCentered draws s centred horizontally and vertically in r.
func drawTextCentered(dst *image.RGBA, face font.Face, r image.Rectangle, s string, c color.Color) {
	m := face.Metrics()
	w := font.MeasureString(face, s)
	// Centre the digits' visual height (cap height) rather than the full
	// ascent+descent box: numbers have no descenders.
	capHeight := m.CapHeight
	if capHeight <= 0 {
		capHeight = m.Ascent
	}
	x := fixed.I(r.Min.X+r.Max.X)/2 - w/2
	y := fixed.I(r.Min.Y+r.Max.Y)/2 + capHeight/2
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: face, Dot: fixed.Point26_6{X: x, Y: y}}
	d.DrawString(s)
}

// formatValue formats a scale label with three significant digits, without
// an exponent for magnitudes from 0.001 to 99999.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == 0:
		return "0"
	}
	a := math.Abs(v)
	if a < 1e-3 || a >= 1e5 {
		return strconv.FormatFloat(v, 'e', 2, 64)
	}
	// Round to 3 significant digits, then print the shortest form.
	digits := 2 - int(math.Floor(math.Log10(a)))
	p := math.Pow(10, float64(digits))
	return strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
}
