package models

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // JPEG photographs are the common input.
	_ "image/png"
	"io"
	"math"
	"os"
	"strings"

	"github.com/convlens/convlens/internal/check"

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
	switch l {
	case NCHW:
		return "NCHW"
	case NHWC:
		return "NHWC"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
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

// Validate reports what is wrong with in, if anything, for making or reading
// an image tensor: a Layout other than NCHW and NHWC, a Channels, Height or
// Width that is not positive, more than [MaxImagePixels] pixels (Height ×
// Width: a larger input would make [Input.Tensor] allocate gigabytes), or a
// Normalization whose Mean or Std has a number of values other than 0, 1 or
// Channels (a grey input also takes 3, an RGB normalisation such as
// [ImageNet], and uses the first), a value that is not finite, or a Std that
// is not positive.
func (in Input) Validate() error {
	if in.Layout != NCHW && in.Layout != NHWC {
		return fmt.Errorf("models.Input: Layout %d is neither NCHW (%d) nor NHWC (%d)", int(in.Layout), int(NCHW), int(NHWC))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"Channels", in.Channels}, {"Height", in.Height}, {"Width", in.Width}} {
		if f.v <= 0 {
			return fmt.Errorf("models.Input: %s is %d: it must be at least 1", f.name, f.v)
		}
	}
	if in.Height > MaxImagePixels/in.Width {
		return fmt.Errorf("models.Input: Height×Width %d×%d is %.1f megapixels, over the limit of %.1f megapixels (models.MaxImagePixels): give a smaller input size, or raise models.MaxImagePixels",
			in.Height, in.Width, float64(in.Height)*float64(in.Width)/1e6, float64(MaxImagePixels)/1e6)
	}
	for _, f := range []struct {
		name string
		v    []float32
	}{{"Mean", in.Normalization.Mean}, {"Std", in.Normalization.Std}} {
		if n := len(f.v); n > 1 && n != in.Channels && !(in.Channels == 1 && n == 3) {
			return fmt.Errorf("models.Input: Normalization.%s has %d values for %d channels: give 1 value, or one a channel", f.name, n, in.Channels)
		}
		for i, v := range f.v {
			switch {
			case math.IsNaN(float64(v)) || math.IsInf(float64(v), 0):
				return fmt.Errorf("models.Input: Normalization.%s[%d] is %v: it must be finite", f.name, i, v)
			case f.name == "Std" && v <= 0:
				return fmt.Errorf("models.Input: Normalization.Std[%d] is %v: a standard deviation must be positive (leave Std empty for none)", i, v)
			}
		}
	}
	return nil
}

// validatePictures is Validate for converting between pictures and tensors,
// which need grey or RGB channels.
func (in Input) validatePictures(fn string) error {
	if err := in.Validate(); err != nil {
		return fmt.Errorf("models.Input.%s: %s", fn, strings.TrimPrefix(err.Error(), "models.Input: "))
	}
	if in.Channels != 1 && in.Channels != 3 {
		return fmt.Errorf("models.Input.%s: Channels is %d: pictures convert to 1 (grey) or 3 (RGB) channels", fn, in.Channels)
	}
	return nil
}

// Tensor preprocesses images into one float32 batch: each image is resized to
// the model's input size (bilinear, half-pixel centres, as OpenCV's
// INTER_LINEAR), scaled to [0,1], converted to the model's channel count,
// normalised, and laid out as the model needs.
//
// Colour is read as PIL's Image.convert("RGB") reads it: alpha is dropped
// and the colour channels kept as stored, not composited over anything. An
// [image.NRGBA] (what image/png decodes an RGBA or grey-and-alpha PNG into)
// and an [image.NRGBA64] store straight colour, so even a fully transparent
// pixel keeps its stored RGB, as in PIL. An [image.RGBA] (and any colour
// that is not [color.NRGBA] or [color.NRGBA64]) stores colour premultiplied
// by alpha: it is divided by alpha again, and a fully transparent pixel,
// which has no colour left, reads as black.
//
// It returns an error, and no tensor, when in is not valid ([Input.Validate]),
// Channels is not 1 or 3, or an image is nil (also a nil pointer inside the
// image.Image), empty, or cannot be read (At panics, as it does for an
// image whose pixel buffer is shorter than its bounds).
func (in Input) Tensor(images ...image.Image) (*tensors.Tensor, error) {
	if err := in.validatePictures("Tensor"); err != nil {
		return nil, err
	}
	if len(images) == 0 {
		return nil, errors.New("models.Input.Tensor: empty batch: give at least one image")
	}
	plane := in.Height * in.Width
	if len(images) > math.MaxInt/(in.Channels*plane) {
		return nil, fmt.Errorf("models.Input.Tensor: %d images of %d values each overflow a tensor's size: give fewer images at a time", len(images), in.Channels*plane)
	}
	for n, img := range images {
		if err := checkImage(img); err != nil {
			return nil, fmt.Errorf("models.Input.Tensor: image %d %w", n, err)
		}
	}
	data := make([]float32, len(images)*in.Channels*plane)
	for n, img := range images {
		rgb, err := resizeRGB(img, in.Width, in.Height)
		if err != nil {
			return nil, fmt.Errorf("models.Input.Tensor: image %d (%T): %w", n, img, err)
		}
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

// checkImage is check.Image, with what to do about a nil image.
func checkImage(img image.Image) error {
	err := check.Image(img)
	if check.IsNil(img) {
		return fmt.Errorf("%w: give a decoded image (from LoadImage, say), and check LoadImage's error", err)
	}
	return err
}

// Image turns image n of a preprocessed batch back into a picture, undoing
// the normalisation; it shows what the model saw. It returns an error when in
// is not valid ([Input.Validate]), Channels is not 1 or 3, or batch does not
// hold image n.
func (in Input) Image(batch []float32, n int) (*image.RGBA, error) {
	if err := in.validatePictures("Image"); err != nil {
		return nil, err
	}
	plane := in.Height * in.Width
	size := in.Channels * plane
	if n < 0 || n >= len(batch)/size {
		return nil, fmt.Errorf("models.Input.Image: image n=%d is outside a batch of %d values, which holds %d whole images of %d×%d×%d: n must be in [0, %d)",
			n, len(batch), len(batch)/size, in.Channels, in.Height, in.Width, len(batch)/size)
	}
	img := image.NewRGBA(image.Rect(0, 0, in.Width, in.Height))
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
	return img, nil
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
//
// It bounds a model's input size too ([Input.Validate]): an Input of more
// pixels than this is refused before [Input.Tensor] or [Input.Image]
// allocates for it.
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
	if err := checkImage(img); err != nil {
		return nil, fmt.Errorf("decoding image %s: the decoded image %w", path, err)
	}
	return img, nil
}

// resizeRGB resamples img to w×h with the bilinear convention of package
// resample and returns interleaved RGB values in [0,1], colour read as
// [Input.Tensor] says. Each output pixel blends four source pixels, read from
// img as needed: a float copy of a large photograph would take 12 bytes a
// pixel. A panic in img's At (a malformed image) is returned as an error.
func resizeRGB(img image.Image, w, h int) (out []float32, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("reading its pixels: %v", p)
		}
	}()
	b := img.Bounds()
	at := pixelReader(img)
	out = make([]float32, 3*w*h)
	xs, ys := resample.Taps(b.Dx(), w), resample.Taps(b.Dy(), h)
	for y, ty := range ys {
		for x, tx := range xs {
			p00, p01 := at(b.Min.X+tx.I0, b.Min.Y+ty.I0), at(b.Min.X+tx.I1, b.Min.Y+ty.I0)
			p10, p11 := at(b.Min.X+tx.I0, b.Min.Y+ty.I1), at(b.Min.X+tx.I1, b.Min.Y+ty.I1)
			for c := range 3 {
				top := p00[c]*(1-tx.F) + p01[c]*tx.F
				bottom := p10[c]*(1-tx.F) + p11[c]*tx.F
				out[3*(y*w+x)+c] = top*(1-ty.F) + bottom*ty.F
			}
		}
	}
	return out, nil
}

// pixelReader returns a function that reads the straight (not premultiplied)
// RGB colour of img at (x, y), in [0,1]. The common decoded types are read
// from their pixel buffers, without boxing a color.Color per pixel.
func pixelReader(img image.Image) func(x, y int) [3]float32 {
	switch img := img.(type) {
	case *image.NRGBA:
		return func(x, y int) [3]float32 {
			p := img.Pix[img.PixOffset(x, y):]
			return straight8(p[0], p[1], p[2])
		}
	case *image.RGBA:
		return func(x, y int) [3]float32 {
			p := img.Pix[img.PixOffset(x, y):]
			return premultiplied16(uint32(p[0])*0x101, uint32(p[1])*0x101, uint32(p[2])*0x101, uint32(p[3])*0x101)
		}
	}
	return func(x, y int) [3]float32 { return straightRGB(img.At(x, y)) }
}

// straightRGB is the straight colour of c in [0,1], alpha dropped.
func straightRGB(c color.Color) [3]float32 {
	switch c := c.(type) {
	case color.NRGBA:
		return straight8(c.R, c.G, c.B)
	case color.NRGBA64:
		return [3]float32{float32(c.R) / 0xffff, float32(c.G) / 0xffff, float32(c.B) / 0xffff}
	}
	return premultiplied16(c.RGBA())
}

func straight8(r, g, b uint8) [3]float32 {
	return [3]float32{float32(r) / 0xff, float32(g) / 0xff, float32(b) / 0xff}
}

// premultiplied16 divides 16-bit premultiplied colour by its alpha; a fully
// transparent colour has none left and is black.
func premultiplied16(r, g, b, a uint32) [3]float32 {
	switch a {
	case 0xffff:
		return [3]float32{float32(r) / 0xffff, float32(g) / 0xffff, float32(b) / 0xffff}
	case 0:
		return [3]float32{}
	}
	fa := float32(a)
	return [3]float32{min(float32(r)/fa, 1), min(float32(g)/fa, 1), min(float32(b)/fa, 1)}
}
