package nb

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/convlens/convlens/datasets/mnistdata"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/resample"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/backend"
	"github.com/convlens/convlens/models/embedded"
	"github.com/convlens/convlens/models/pretrained"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// ModelEnv names the environment variable that sets the model of [Model]:
// a name embedded.Open knows (an embedded model, or a pretrained one such as
// resnet18, downloaded once) or the path of an ONNX classifier.
const ModelEnv = "CONVLENS_MODEL"

// Model opens the model notebooks explain by default: $CONVLENS_MODEL when
// set, else the small CNN committed as a test fixture
// (testdata/tinycnn/model.onnx: 64x64 inputs, ten classes, random weights).
func Model() models.Model {
	if name := os.Getenv(ModelEnv); name != "" {
		return Open(name)
	}
	return Open(Path("testdata", "tinycnn", "model.onnx"))
}

// Open opens a model as embedded.Open does: an embedded model by name
// ("lesions", "cells"...), a pretrained one (downloaded on first use) or an
// ONNX file.
func Open(name string) models.Model { return Must(embedded.Open(name)) }

// Pretrained returns the named pretrained model (pretrained.Names) if it is
// already in convlens' cache, without downloading anything; otherwise nil and
// the path it would have.
func Pretrained(name string) (models.Model, string) {
	spec, ok := pretrained.Lookup(name)
	if !ok {
		stop(fmt.Errorf("no pretrained model %q; known: %s", name, strings.Join(pretrained.Names(), ", ")))
	}
	d := pretrained.Downloader{}
	path := Must(d.Path(spec))
	if _, err := os.Stat(path); err != nil {
		return nil, path
	}
	return Must(d.LoadSpec(spec)), path
}

// Runner returns a runner for m on the default backend (the kernel of `make
// notebook` sets GOMLX_BACKEND=go: pure Go, offline).
func Runner(m models.Model) *models.Runner {
	b, _, err := backend.Default()
	Check(err)
	return models.NewRunner(b, m)
}

// Input turns images into m's input batch (resized and normalised as m expects).
func Input(m models.Model, images ...image.Image) *tensors.Tensor {
	return Must(m.Input().Tensor(images...))
}

// A Prediction is what a model says about one image.
type Prediction struct {
	// Logits of the image, one per class, and their softmax.
	Logits []float32
	Probs  []float64
	// Class is the predicted class; Label its name ("class N" without names).
	Class int
	Label string
}

// Predict runs the model on the batch x and returns one prediction per image.
func Predict(r *models.Runner, x *tensors.Tensor) []Prediction {
	logits, _, err := r.Run(x)
	Check(err)
	flat := tensors.MustCopyFlatData[float32](logits)
	n := logits.Shape().Dimensions[0]
	classes := len(flat) / n
	labels := r.Model().Labels()
	out := make([]Prediction, n)
	for i := range out {
		l := flat[i*classes : (i+1)*classes]
		c := argmax(l)
		out[i] = Prediction{Logits: l, Probs: Softmax(l), Class: c, Label: Label(labels, c)}
	}
	return out
}

// Softmax is models.Softmax for one image's logits.
func Softmax(logits []float32) []float64 { return Must(models.Softmax(logits)) }

// Label is class c's name in labels, or "class c" when there are none.
func Label(labels []string, c int) string {
	if c >= 0 && c < len(labels) {
		return labels[c]
	}
	return fmt.Sprintf("class %d", c)
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// Cat returns the photograph the notebooks explain: scikit-image's
// chelsea.png (451x300; CC0, Stefan van der Walt), from testdata/images.
func Cat() image.Image { return Image("chelsea.png") }

// Image loads a picture: a path (relative to the notebook's folder), or the
// name of a file in the checkout's testdata/images.
func Image(path string) image.Image {
	if _, err := os.Stat(path); err != nil && !filepath.IsAbs(path) {
		if dir := os.Getenv(protocol.GONB_DIR_ENV); dir != "" {
			if _, err := os.Stat(filepath.Join(dir, path)); err == nil {
				path = filepath.Join(dir, path)
			}
		}
		if _, err := os.Stat(path); err != nil {
			if alt := Path("testdata", "images", path); fileExists(alt) {
				path = alt
			}
		}
	}
	return Must(models.LoadImage(path))
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Fit returns img scaled to the given width (bilinear, half-pixel centres),
// keeping its proportions: panels and grids of a fitted photograph fit the
// notebook's page instead of being shrunk by the browser, text and all.
func Fit(img image.Image, width int) image.Image {
	b := img.Bounds()
	if width <= 0 || b.Dx() == 0 {
		stop(fmt.Errorf("nb.Fit: cannot fit a %dx%d picture to width %d", b.Dx(), b.Dy(), width))
	}
	height := max(1, int(math.Round(float64(b.Dy())*float64(width)/float64(b.Dx()))))
	xs, ys := resample.Taps(b.Dx(), width), resample.Taps(b.Dy(), height)
	out := image.NewRGBA(image.Rect(0, 0, width, height))
	px := func(x, y int) [4]float64 {
		r, g, bl, a := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
		return [4]float64{float64(r), float64(g), float64(bl), float64(a)}
	}
	for y, ty := range ys {
		for x, tx := range xs {
			var acc [4]float64
			for _, c := range []struct {
				x, y int
				w    float64
			}{
				{tx.I0, ty.I0, float64((1 - tx.F) * (1 - ty.F))},
				{tx.I1, ty.I0, float64(tx.F * (1 - ty.F))},
				{tx.I0, ty.I1, float64((1 - tx.F) * ty.F)},
				{tx.I1, ty.I1, float64(tx.F * ty.F)},
			} {
				p := px(c.x, c.y)
				for k := range acc {
					acc[k] += c.w * p[k]
				}
			}
			out.SetRGBA(x, y, color.RGBA{uint8(acc[0] / 257), uint8(acc[1] / 257), uint8(acc[2] / 257), uint8(acc[3] / 257)})
		}
	}
	return out
}

// Digit returns the first of convlens' 10,000 MNIST digits with the given
// label (datasets/mnistdata): its index, and its 28x28 grey levels (0 to 255,
// white ink on black) as a map, row 0 at the top.
func Digit(label int) (int, heatmap.Map) {
	d := Must(mnistdata.Load())
	for i, l := range d.Labels {
		if int(l) == label {
			v := make([]float32, mnistdata.Rows*mnistdata.Cols)
			for p, x := range d.Image(i) {
				v[p] = float32(x)
			}
			return i, heatmap.Map{Width: mnistdata.Cols, Height: mnistdata.Rows, Values: v}
		}
	}
	stop(fmt.Errorf("no MNIST digit %d", label))
	return 0, heatmap.Map{}
}

// Grey returns the map as a greyscale picture, one pixel per value, each
// value rounded and clamped to 0..255.
func Grey(m heatmap.Map) *image.Gray {
	Check(m.Validate())
	img := image.NewGray(image.Rect(0, 0, m.Width, m.Height))
	for i, v := range m.Values {
		img.Pix[i] = uint8(max(0, min(255, math.Round(float64(v)))))
	}
	return img
}

// LastLayer is the layer Grad-CAM explains by default: the last one with
// spatial axes (models.LastSpatialLayer).
func LastLayer(m models.Model) string { return Must(models.LastSpatialLayer(m)).Name }

// Stages lists, for each spatial resolution from input to output, the last
// layer at that resolution: the output of each stage of the network.
func Stages(m models.Model) []string {
	var out []string
	lastH := -1
	hAxis, _ := m.Input().Layout.SpatialAxes()
	for _, l := range m.Layers() {
		if !l.Spatial(m.Input().Layout) || !l.Shape.DType.IsFloat() {
			continue
		}
		if h := l.Shape.Dimensions[hAxis]; h == lastH {
			out[len(out)-1] = l.Name
		} else {
			out, lastH = append(out, l.Name), h
		}
	}
	return out
}

// ReLULayers lists the spatial layers that come out of a ReLU, input to
// output (every spatial layer if the model names no ReLU).
func ReLULayers(m models.Model) []string {
	var relus, spatial []string
	for _, l := range m.Layers() {
		if !l.Spatial(m.Input().Layout) {
			continue
		}
		spatial = append(spatial, l.Name)
		if strings.EqualFold(l.Op, "Relu") {
			relus = append(relus, l.Name)
		}
	}
	if len(relus) == 0 {
		return spatial
	}
	return relus
}

// Short returns the short name of a layer for labels and chart axes: its
// PyTorch module path where the model records one ("layer1.0.relu"),
// otherwise its name.
func Short(m models.Model, layer string) string {
	if l, err := models.FindLayer(m, layer); err == nil && l.Module != "" {
		return l.Module
	}
	return layer
}

// Shorts is Short for each layer.
func Shorts(m models.Model, layers []string) []string {
	out := make([]string, len(layers))
	for i, l := range layers {
		out[i] = Short(m, l)
	}
	return out
}
