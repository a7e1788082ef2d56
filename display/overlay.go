package display

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/convlens/convlens/heatmap"
)

// valueRange is the range of map values that the colormap spans.
type valueRange struct{ lo, hi float32 }

// defaultRange is [0, 1]: maps are taken to be normalised already, as
// pytorch-grad-cam's show_cam_on_image expects.
var defaultRange = valueRange{0, 1}

func (r valueRange) validate() error {
	if !(r.lo < r.hi) || math.IsInf(float64(r.lo), 0) || math.IsInf(float64(r.hi), 0) {
		return fmt.Errorf("display: invalid value range [%g, %g]: want finite lo < hi", r.lo, r.hi)
	}
	return nil
}

// scale maps v to [0, 1] (unclamped). For the default range it is the
// identity, exactly.
func (r valueRange) scale(v float32) float32 {
	if r == defaultRange {
		return v
	}
	return (v - r.lo) / (r.hi - r.lo)
}

// A HeatmapBuilder colours a heatmap.Map with a colormap. Create one with Heatmap.
type HeatmapBuilder struct {
	m             heatmap.Map
	cmap          Colormap
	rng           valueRange
	width, height int
}

// Heatmap starts building the colour picture of m. By default it uses Jet,
// maps the values 0..1 to the ends of the colormap (see
// HeatmapBuilder.Range), and has one pixel per map value.
func Heatmap(m heatmap.Map) *HeatmapBuilder {
	return &HeatmapBuilder{m: m, cmap: Jet, rng: defaultRange}
}

// Colormap sets the colormap (default Jet).
func (b *HeatmapBuilder) Colormap(c Colormap) *HeatmapBuilder { b.cmap = c; return b }

// Range sets the values that map to the first and last colours of the
// colormap (default 0 and 1); values outside are clamped. To spread a raw
// feature map over the whole colormap use Range(m.MinMax()).
func (b *HeatmapBuilder) Range(lo, hi float32) *HeatmapBuilder {
	b.rng = valueRange{lo, hi}
	return b
}

// Size sets the size of the picture; the map is resized bilinearly (see
// [heatmap.Map.Resize]). The default is the map's own size. A size of more
// than heatmap.MaxPixels pixels is an error when the picture is rendered.
func (b *HeatmapBuilder) Size(width, height int) *HeatmapBuilder {
	b.width, b.height = width, height
	return b
}

// Image renders the heat map as an opaque *image.RGBA whose bounds start
// at (0, 0).
func (b *HeatmapBuilder) Image() (image.Image, error) {
	img, err := b.render()
	if err != nil {
		return nil, err // not a typed nil
	}
	return img, nil
}

// Show displays the picture inline in a GoNB notebook (see [Show]).
func (b *HeatmapBuilder) Show() error { return showImage(b.Image()) }

// Save writes the picture to path as a PNG file, atomically (see [SavePNG]).
func (b *HeatmapBuilder) Save(path string) error { return saveImage(path, b.Image) }

func (b *HeatmapBuilder) render() (*image.RGBA, error) {
	if err := b.m.Validate(); err != nil {
		return nil, err
	}
	if err := b.rng.validate(); err != nil {
		return nil, err
	}
	w, h := b.width, b.height
	if w == 0 && h == 0 {
		w, h = b.m.Width, b.m.Height
	}
	if err := checkSize("Heatmap: picture", w, h); err != nil {
		return nil, err
	}
	m, err := b.m.Resize(w, h)
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i, v := range m.Values {
		c := b.cmap.Index(quantize(b.rng.scale(v)))
		copy(img.Pix[4*i:4*i+4], []uint8{c.R, c.G, c.B, c.A})
	}
	return img, nil
}

// An OverlayBuilder blends a coloured map over an image. Create one with
// Overlay.
type OverlayBuilder struct {
	base  image.Image
	m     heatmap.Map
	cmap  Colormap
	alpha float64
	rng   valueRange
}

// Overlay starts building base with the map m laid over it as a heat map,
// the standard Grad-CAM picture. Defaults: colormap Jet, Alpha 0.5, value
// range 0..1.
//
// The result reproduces pytorch-grad-cam's show_cam_on_image(img, mask,
// use_rgb=True, image_weight=1-alpha):
//
//  1. m is resized to the size of base if needed (bilinear, half-pixel
//     centres, like cv2.resize);
//  2. each value is coloured with the colormap (see Colormap.At);
//  3. with image and heat map as float32 in [0, 1], each channel becomes
//     alpha*heat + (1-alpha)*image;
//  4. the whole picture is divided by its largest channel value, so its
//     brightest channel is 1, and converted to 8 bits by truncation.
//
// A base with transparency is first composited over white.
//
// A nil base (or a nil pointer inside the interface), an empty one, or one
// of more than heatmap.MaxPixels pixels, is an error when the picture is
// rendered.
func Overlay(base image.Image, m heatmap.Map) *OverlayBuilder {
	return &OverlayBuilder{base: base, m: m, cmap: Jet, alpha: 0.5, rng: defaultRange}
}

// Colormap sets the colormap of the heat map (default Jet).
func (b *OverlayBuilder) Colormap(c Colormap) *OverlayBuilder { b.cmap = c; return b }

// Alpha sets the weight of the heat map in the blend, from 0 (image only)
// to 1 (heat map only). The default is 0.5.
func (b *OverlayBuilder) Alpha(a float64) *OverlayBuilder { b.alpha = a; return b }

// Range sets the values that map to the ends of the colormap (default 0 and
// 1); see HeatmapBuilder.Range.
func (b *OverlayBuilder) Range(lo, hi float32) *OverlayBuilder {
	b.rng = valueRange{lo, hi}
	return b
}

// Image renders the overlay as an opaque *image.RGBA of the size of the
// base image, with bounds starting at (0, 0).
func (b *OverlayBuilder) Image() (image.Image, error) {
	img, _, err := b.render()
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Show displays the overlay in the running GoNB notebook cell, or falls
// back as Show does.
func (b *OverlayBuilder) Show() error { return showImage(b.Image()) }

// Save writes the picture to path as a PNG file, atomically (see [SavePNG]).
func (b *OverlayBuilder) Save(path string) error { return saveImage(path, b.Image) }

// render returns the overlay and the heat map at the size of the base image.
func (b *OverlayBuilder) render() (overlay, heat *image.RGBA, err error) {
	if err := checkImage("Overlay: base image", b.base); err != nil {
		return nil, nil, err
	}
	if !(b.alpha >= 0 && b.alpha <= 1) {
		return nil, nil, fmt.Errorf("display: overlay alpha %g outside [0, 1]", b.alpha)
	}
	bounds := b.base.Bounds()
	w, h := bounds.Dx(), bounds.Dy()
	hb := HeatmapBuilder{m: b.m, cmap: b.cmap, rng: b.rng, width: w, height: h}
	heat, err = hb.render()
	if err != nil {
		return nil, nil, err
	}

	// Blend in float32, as show_cam_on_image does with numpy float32 arrays.
	// The explicit float32 conversions stop the compiler from fusing
	// multiply-adds, which would change the rounding.
	hw := float32(b.alpha)
	iw := float32(1 - b.alpha)
	cam := make([]float32, 3*w*h)
	var peak float32
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, bl := rgb8(b.base.At(bounds.Min.X+x, bounds.Min.Y+y))
			p := heat.Pix[heat.PixOffset(x, y):]
			i := 3 * (y*w + x)
			for k, v := range [3]uint8{r, g, bl} {
				c := float32(hw*(float32(p[k])/255)) + float32(iw*(float32(v)/255))
				cam[i+k] = c
				peak = max(peak, c)
			}
		}
	}
	overlay = image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		for k := 0; k < 3; k++ {
			var v uint8
			if peak > 0 {
				v = uint8(float32(255 * float32(cam[3*i+k]/peak)))
			}
			overlay.Pix[4*i+k] = v
		}
		overlay.Pix[4*i+3] = 0xff
	}
	return overlay, heat, nil
}

// rgb8 returns the 8-bit colour of c composited over white.
func rgb8(c color.Color) (r, g, b uint8) {
	r16, g16, b16, a16 := c.RGBA() // premultiplied
	white := 0xffff - a16
	return uint8((r16 + white) >> 8), uint8((g16 + white) >> 8), uint8((b16 + white) >> 8)
}
