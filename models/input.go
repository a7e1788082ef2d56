package models

import (
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // JPEG photographs are the common input.
	_ "image/png"
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
	// Height and Width of the image the model takes.
	Height, Width int
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

// LoadImage decodes a PNG or JPEG file.
func LoadImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decoding image %s: %w (convlens reads PNG and JPEG)", path, err)
	}
	if b := img.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
		return nil, fmt.Errorf("decoding image %s: the %s image is empty", path, format)
	}
	return img, nil
}

// resizeRGB resamples img to w×h with the bilinear convention of package
// resample and returns interleaved RGB values in [0,1].
func resizeRGB(img image.Image, w, h int) []float32 {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	src := make([]float32, 3*sw*sh)
	for y := range sh {
		for x := range sw {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := 3 * (y*sw + x)
			src[i], src[i+1], src[i+2] = float32(r)/0xffff, float32(g)/0xffff, float32(bl)/0xffff
		}
	}
	out := make([]float32, 3*w*h)
	xs, ys := resample.Taps(sw, w), resample.Taps(sh, h)
	for y, ty := range ys {
		for x, tx := range xs {
			for c := range 3 {
				at := func(yy, xx int) float32 { return src[3*(yy*sw+xx)+c] }
				top := at(ty.I0, tx.I0)*(1-tx.F) + at(ty.I0, tx.I1)*tx.F
				bottom := at(ty.I1, tx.I0)*(1-tx.F) + at(ty.I1, tx.I1)*tx.F
				out[3*(y*w+x)+c] = top*(1-ty.F) + bottom*ty.F
			}
		}
	}
	return out
}
