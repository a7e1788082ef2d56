package models

import (
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // JPEG photographs are the common input.
	_ "image/png"
	"io"
	"math"
	"os"

	"github.com/convlens/convlens/internal/resample"
	"github.com/gomlx/gomlx/core/tensors"
)

// Layout is the axis order of an image tensor.
type Layout int

const (
	// NCHW is channels-first: [batch, channels, height, width], as PyTorch and ONNX exports use.
	NCHW Layout = iota
	// NHWC is channels-last: [batch, height, width, channels], as GoMLX layers use.
	NHWC
)

func (l Layout) String() string {
	if l == NHWC {
		return "NHWC"
	}
	return "NCHW"
}

// ChannelAxis is the axis that holds channels in a rank-4 tensor of this layout.
func (l Layout) ChannelAxis() int {
	if l == NHWC {
		return 3
	}
	return 1
}

// SpatialAxes are the height and width axes of a rank-4 tensor of this layout.
func (l Layout) SpatialAxes() (height, width int) {
	if l == NHWC {
		return 1, 2
	}
	return 2, 3
}

// Normalization maps a pixel in [0,1] to the model's input: (v - Mean[c]) / Std[c].
type Normalization struct {
	Mean, Std []float32
}

// ImageNet is the normalisation torchvision's ImageNet models were trained with.
var ImageNet = Normalization{
	Mean: []float32{0.485, 0.456, 0.406},
	Std:  []float32{0.229, 0.224, 0.225},
}

// Identity leaves pixels in [0,1].
var Identity = Normalization{}

// apply normalises channel c of value v, which is in [0,1].
func (n Normalization) apply(c int, v float32) float32 {
	if len(n.Mean) > 0 {
		v -= n.Mean[c%len(n.Mean)]
	}
	if len(n.Std) > 0 {
		v /= n.Std[c%len(n.Std)]
	}
	return v
}

// invert maps a normalised value of channel c back to [0,1] (unclamped).
func (n Normalization) invert(c int, v float32) float32 {
	if len(n.Std) > 0 {
		v *= n.Std[c%len(n.Std)]
	}
	if len(n.Mean) > 0 {
		v += n.Mean[c%len(n.Mean)]
	}
	return v
}

// Input describes the image tensor a model expects and how images become one.
type Input struct {
	Layout Layout
	// Channels is 3 (RGB) or 1 (grey).
	Channels int
	// Height and Width of the image the model takes: images are resized to
	// them. When AnySize is set the model takes any size, and these are the
	// size in use, which [ONNX.SetSize] changes.
	Height, Width int
	AnySize       bool
	// Normalization applied after scaling 8-bit pixels to [0,1].
	Normalization Normalization
	// Batch, when > 0, is the only batch size the model's graph computes
	// (its file fixes it and the graph depends on it): [Runner.Run] and
	// gradcam split larger batches into chunks of it ([SplitBatch]), and
	// batches must be a multiple of it.
	Batch int
}

// Shape returns the dimensions of a batch of n inputs.
func (in Input) Shape(n int) []int {
	if in.Layout == NHWC {
		return []int{n, in.Height, in.Width, in.Channels}
	}
	return []int{n, in.Channels, in.Height, in.Width}
}

// Tensor preprocesses images into one float32 batch: each image is resized to
// the model's input size (bilinear, half-pixel centres, as OpenCV's
// INTER_LINEAR), scaled to [0,1], converted to the model's channel count,
// normalised, and laid out as the model needs.
func (in Input) Tensor(images ...image.Image) (*tensors.Tensor, error) {
	if len(images) == 0 {
		return nil, errors.New("empty batch: give at least one image")
	}
	plane := in.Height * in.Width
	data := make([]float32, len(images)*in.Channels*plane)
	for n, img := range images {
		rgb := resizeRGB(img, in.Width, in.Height)
		for p := range plane {
			r, g, b := rgb[3*p], rgb[3*p+1], rgb[3*p+2]
			pixel := [3]float32{r, g, b}
			if in.Channels == 1 {
				// ITU-R BT.601 luma, as image/color's Gray conversion.
				pixel[0] = 0.299*r + 0.587*g + 0.114*b
			}
			for c := range in.Channels {
				v := in.Normalization.apply(c, pixel[c])
				if in.Layout == NHWC {
					data[(n*plane+p)*in.Channels+c] = v
				} else {
					data[(n*in.Channels+c)*plane+p] = v
				}
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(data, in.Shape(len(images))...), nil
}

// Image turns image n of a preprocessed batch back into a picture, undoing
// the normalisation; it shows what the model saw.
func (in Input) Image(batch []float32, n int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, in.Width, in.Height))
	plane := in.Height * in.Width
	for p := range plane {
		var px [3]uint8
		for c := range in.Channels {
			var v float32
			if in.Layout == NHWC {
				v = batch[(n*plane+p)*in.Channels+c]
			} else {
				v = batch[(n*in.Channels+c)*plane+p]
			}
			px[c] = to8(in.Normalization.invert(c, v))
		}
		if in.Channels == 1 {
			px[1], px[2] = px[0], px[0]
		}
		copy(img.Pix[4*p:], []uint8{px[0], px[1], px[2], 255})
	}
	return img
}

func to8(v float32) uint8 {
	return uint8(math.Round(float64(min(max(v, 0), 1) * 255)))
}

// MaxImagePixels is the most pixels (width × height) LoadImage decodes. A
// compressed file can declare far more pixels than it holds, so a small PNG
// could otherwise make LoadImage allocate gigabytes; the header is checked
// against this limit before anything is decoded. 100 megapixels is more than
// a camera photograph or a slide tile needs, and decodes in at most 800 MB
// (8 bytes a pixel at 16 bits a channel). Set it before loading to accept
// larger images.
var MaxImagePixels = 100_000_000

// LoadImage decodes a PNG or JPEG file of at most MaxImagePixels pixels.
func LoadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("decoding image %s: %w (convlens reads PNG and JPEG)", path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("decoding image %s: the %s image is empty", path, format)
	}
	// Image sides fit in 31 bits, so their product fits in an int64.
	if px := int64(cfg.Width) * int64(cfg.Height); px > int64(MaxImagePixels) {
		return nil, fmt.Errorf("image %s is %d×%d pixels (%.1f megapixels), over the limit of %.1f megapixels that guards against decompression bombs: downscale it first, or raise models.MaxImagePixels",
			path, cfg.Width, cfg.Height, float64(px)/1e6, float64(MaxImagePixels)/1e6)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading image %s: %w", path, err)
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decoding image %s: %w (convlens reads PNG and JPEG)", path, err)
	}
	return img, nil
}

// resizeRGB resamples img to w×h with the bilinear convention of package
// resample and returns interleaved RGB values in [0,1]. Each output pixel
// blends four source pixels, read from img as needed: a float copy of a
// large photograph would take 12 bytes a pixel.
func resizeRGB(img image.Image, w, h int) []float32 {
	b := img.Bounds()
	at := func(x, y int) [3]float32 {
		r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
		return [3]float32{float32(r) / 0xffff, float32(g) / 0xffff, float32(bl) / 0xffff}
	}
	out := make([]float32, 3*w*h)
	xs, ys := resample.Taps(b.Dx(), w), resample.Taps(b.Dy(), h)
	for y, ty := range ys {
		for x, tx := range xs {
			p00, p01 := at(tx.I0, ty.I0), at(tx.I1, ty.I0)
			p10, p11 := at(tx.I0, ty.I1), at(tx.I1, ty.I1)
			for c := range 3 {
				top := p00[c]*(1-tx.F) + p01[c]*tx.F
				bottom := p10[c]*(1-tx.F) + p11[c]*tx.F
				out[3*(y*w+x)+c] = top*(1-ty.F) + bottom*ty.F
			}
		}
	}
	return out
}
