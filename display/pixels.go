package display

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
)

// Limits of PixelGrid.
const (
	// MaxPixelGridSide is the largest width or height PixelGrid accepts:
	// beyond that the numbers are too many to read.
	MaxPixelGridSide = 64
	// MinPixelGridCell is the smallest cell size in pixels at which the
	// numbers stay legible.
	MinPixelGridCell = 20
)

var gridLineColor = color.RGBA{0x99, 0x99, 0x99, 0xff}

// A PixelGridBuilder draws a small greyscale image enlarged, one square cell
// per pixel, with each pixel's value written in its cell. Create one with
// PixelGrid.
type PixelGridBuilder struct {
	img    image.Image
	cell   int
	invert bool
}

// PixelGrid starts building the textbook picture of what a network sees: a
// small greyscale image such as a 28x28 MNIST digit, every pixel drawn as a
// cell of its grey level with its value (0..255) written in it, in black or
// white, whichever contrasts more with the cell. Colour images are
// converted to grey first (color.GrayModel). The default cell size is 32
// pixels.
func PixelGrid(img image.Image) *PixelGridBuilder {
	return &PixelGridBuilder{img: img, cell: 32}
}

// CellSize sets the side of a cell in pixels (at least MinPixelGridCell).
func (b *PixelGridBuilder) CellSize(px int) *PixelGridBuilder { b.cell = px; return b }

// Invert shades each cell with 255 minus its value, so that MNIST's
// white-on-black digits print as dark ink on white paper. The numbers
// written are the stored values either way.
func (b *PixelGridBuilder) Invert(on bool) *PixelGridBuilder { b.invert = on; return b }

// Image renders the grid. Cells are separated by 1-pixel grey lines, so the
// picture is width*cell+1 by height*cell+1 pixels.
func (b *PixelGridBuilder) Image() (image.Image, error) {
	if err := checkImage("PixelGrid: img", b.img); err != nil {
		return nil, err
	}
	r := b.img.Bounds()
	if r.Empty() || r.Dx() > MaxPixelGridSide || r.Dy() > MaxPixelGridSide {
		return nil, fmt.Errorf("display: PixelGrid needs an image of 1x1 to %dx%d pixels, got %dx%d",
			MaxPixelGridSide, MaxPixelGridSide, r.Dx(), r.Dy())
	}
	if b.cell < MinPixelGridCell {
		return nil, fmt.Errorf("display: PixelGrid cell size %d below the minimum %d", b.cell, MinPixelGridCell)
	}
	// The cell size is checked on its own first, so that the picture's
	// sides cannot overflow.
	if err := checkSize("PixelGrid: cell", b.cell, b.cell); err != nil {
		return nil, err
	}
	if err := checkSize("PixelGrid: picture", r.Dx()*b.cell+1, r.Dy()*b.cell+1); err != nil {
		return nil, err
	}
	face, err := newFace(math.Round(float64(b.cell) * 0.45))
	if err != nil {
		return nil, err
	}
	defer face.Close()

	c := b.cell
	out := image.NewRGBA(image.Rect(0, 0, r.Dx()*c+1, r.Dy()*c+1))
	draw.Draw(out, out.Bounds(), image.NewUniform(gridLineColor), image.Point{}, draw.Src)
	for y := 0; y < r.Dy(); y++ {
		for x := 0; x < r.Dx(); x++ {
			v := color.GrayModel.Convert(b.img.At(r.Min.X+x, r.Min.Y+y)).(color.Gray).Y
			shade := v
			if b.invert {
				shade = 255 - v
			}
			cell := image.Rect(x*c+1, y*c+1, (x+1)*c, (y+1)*c)
			draw.Draw(out, cell, image.NewUniform(color.Gray{shade}), image.Point{}, draw.Src)
			drawTextCentered(out, face, cell, strconv.Itoa(int(v)), textColorOn(shade))
		}
	}
	return out, nil
}

// Show displays the picture inline in a GoNB notebook (see [Show]).
func (b *PixelGridBuilder) Show() error { return showImage(b.Image()) }

// Save writes the picture to path as a PNG file, atomically (see [SavePNG]).
func (b *PixelGridBuilder) Save(path string) error { return saveImage(path, b.Image) }

// textColorOn returns black or white, whichever has the higher WCAG 2
// contrast ratio against the grey level g.
func textColorOn(g uint8) color.Gray {
	l := relativeLuminance(g)
	onBlack := (l + 0.05) / 0.05 // contrast of black text
	onWhite := 1.05 / (l + 0.05) // contrast of white text
	if onBlack >= onWhite {
		return color.Gray{0}
	}
	return color.Gray{255}
}

// relativeLuminance of an sRGB grey level, as WCAG 2 defines it.
func relativeLuminance(g uint8) float64 {
	c := float64(g) / 255
	if c <= 0.04045 {
		return c / 12.92
	}
	return math.Pow((c+0.055)/1.055, 2.4)
}
