package models_test

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Every call of the package given a bad argument returns an error that
// names the argument, and never panics (nor, for huge sizes, allocates
// before refusing).
func TestBadArgumentsAreErrors(t *testing.T) {
	rgb := models.Input{Layout: models.NHWC, Channels: 3, Height: 4, Width: 4, Normalization: models.ImageNet}
	with := func(f func(*models.Input)) models.Input {
		in := rgb
		f(&in)
		return in
	}
	img := image.NewRGBA(image.Rect(0, 0, 6, 5))
	var nilRGBA *image.RGBA
	missing, _ := models.LoadImage(filepath.Join(t.TempDir(), "missing.png")) // An error ignored.
	batch := make([]float32, 2*3*4*4)
	b := modeltest.Backend(t)
	tiny := modeltest.TinyNative()
	x := tensors.FromShape(shapes.Make(dtypes.Float32, 1, 5, 6, 2))
	freed := tensors.FromShape(shapes.Make(dtypes.Float32, 1, 5, 6, 2))
	freed.MustFinalizeAll()
	tensorErr := func(in models.Input, images ...image.Image) func() error {
		return func() error {
			x, err := in.Tensor(images...)
			if x != nil {
				t.Errorf("a tensor with the error %v", err)
			}
			return err
		}
	}
	imageErr := func(in models.Input, batch []float32, n int) func() error {
		return func() error {
			img, err := in.Image(batch, n)
			if img != nil {
				t.Errorf("an image with the error %v", err)
			}
			return err
		}
	}
	runErr := func(r *models.Runner, x *tensors.Tensor) func() error {
		return func() error {
			_, _, err := r.Run(x)
			return err
		}
	}
	softmaxErr := func(logits ...float32) func() error {
		return func() error {
			_, err := models.Softmax(logits)
			return err
		}
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, c := range []struct {
		name string
		call func() error
		want []string
	}{
		{"Tensor no images", tensorErr(rgb), []string{"empty batch"}},
		{"Tensor nil image", tensorErr(rgb, img, nil), []string{"image 1 is nil"}},
		{"Tensor typed-nil image", tensorErr(rgb, nilRGBA), []string{"image 0 is a nil *image.RGBA"}},
		{"Tensor image of a failed LoadImage", tensorErr(rgb, missing), []string{"image 0 is nil", "LoadImage's error"}},
		{"Tensor 0x0 image", tensorErr(rgb, image.NewRGBA(image.Rectangle{})), []string{"image 0 (*image.RGBA) is empty"}},
		{"Tensor 0x3 image", tensorErr(rgb, image.NewGray(image.Rect(0, 0, 0, 3))), []string{"image 0 (*image.Gray) is empty"}},
		{"Tensor image without pixels", tensorErr(rgb, &image.NRGBA{Rect: image.Rect(0, 0, 4, 4)}), []string{"image 0 (*image.NRGBA) cannot be read"}},
		{"Tensor palette too short", tensorErr(rgb, &image.Paletted{Pix: []uint8{0, 3}, Stride: 2, Rect: image.Rect(0, 0, 2, 1), Palette: color.Palette{color.Black}}),
			[]string{"image 0 (*image.Paletted)", "cannot be read"}},
		{"Tensor zero Channels", tensorErr(with(func(in *models.Input) { in.Channels = 0 }), img), []string{"Input.Tensor: Channels is 0"}},
		{"Tensor 2 Channels", tensorErr(with(func(in *models.Input) { in.Channels = 2; in.Normalization = models.Identity }), img),
			[]string{"Input.Tensor: Channels is 2", "1 (grey) or 3 (RGB)"}},
		{"Tensor negative Height", tensorErr(with(func(in *models.Input) { in.Height = -1 }), img), []string{"Height is -1"}},
		{"Tensor zero Width", tensorErr(with(func(in *models.Input) { in.Width = 0 }), img), []string{"Width is 0"}},
		{"Tensor bad Layout", tensorErr(with(func(in *models.Input) { in.Layout = 7 }), img), []string{"Layout 7", "NCHW"}},
		{"Tensor short Mean", tensorErr(with(func(in *models.Input) { in.Normalization.Mean = []float32{0.5, 0.5} }), img),
			[]string{"Normalization.Mean has 2 values for 3 channels"}},
		{"Tensor long Std", tensorErr(with(func(in *models.Input) { in.Normalization.Std = []float32{1, 1, 1, 1} }), img),
			[]string{"Normalization.Std has 4 values for 3 channels"}},
		{"Tensor zero Std", tensorErr(with(func(in *models.Input) { in.Normalization.Std = []float32{0.2, 0, 0.2} }), img),
			[]string{"Normalization.Std[1] is 0", "positive"}},
		{"Tensor NaN Mean", tensorErr(with(func(in *models.Input) { in.Normalization.Mean = []float32{nan} }), img),
			[]string{"Normalization.Mean[0] is NaN"}},
		{"Tensor huge size", tensorErr(with(func(in *models.Input) { in.Height, in.Width = 1<<31, 1<<31 }), img),
			[]string{"Height×Width 2147483648×2147483648", "models.MaxImagePixels"}},
		{"Tensor size over the limit", tensorErr(with(func(in *models.Input) { in.Height, in.Width = 100000, 100000 }), img),
			[]string{"10000.0 megapixels, over the limit of 100.0"}},
		{"Image n negative", imageErr(rgb, batch, -1), []string{"image n=-1 is outside", "2 whole images"}},
		{"Image n past the batch", imageErr(rgb, batch, 2), []string{"image n=2 is outside", "[0, 2)"}},
		{"Image batch too short", imageErr(rgb, batch[:47], 1), []string{"image n=1 is outside a batch of 47 values"}},
		{"Image nil batch", imageErr(rgb, nil, 0), []string{"image n=0 is outside a batch of 0 values"}},
		{"Image zero Channels", imageErr(with(func(in *models.Input) { in.Channels = 0 }), batch, 0), []string{"Input.Image: Channels is 0"}},
		{"Image huge size", imageErr(with(func(in *models.Input) { in.Height, in.Width = 1<<40, 1<<40 }), batch, 0), []string{"models.MaxImagePixels"}},
		{"Image bad Layout", imageErr(with(func(in *models.Input) { in.Layout = -1 }), batch, 0), []string{"Layout -1"}},
		{"NewRunner nil backend", runErr(models.NewRunner(nil, tiny), x), []string{"backend b is nil"}},
		{"NewRunner nil model", runErr(models.NewRunner(b, nil), x), []string{"model m is nil"}},
		{"NewRunner typed-nil model", runErr(models.NewRunner(b, (*models.Native)(nil)), x), []string{"model m is nil"}},
		{"NewRunner nil store", runErr(models.NewRunner(b, models.NewNative("nostore", rgb, nil, nil)), x), []string{"model nostore has a nil weight store"}},
		{"Run on a nil runner", runErr(nil, x), []string{"runner is nil"}},
		{"Run nil tensor", runErr(models.NewRunner(b, tiny), nil), []string{"input x: Tensor is nil"}},
		{"Run freed tensor", runErr(models.NewRunner(b, tiny), freed), []string{"input x: Tensor shape is invalid"}},
		{"Exec on a nil runner", func() error {
			_, err := (*models.Runner)(nil).Exec("k", func(*model.Scope, []*graph.Node) []*graph.Node { return nil })
			return err
		}, []string{"runner is nil"}},
		{"Exec nil function", func() error { _, err := models.NewRunner(b, tiny).Exec("k", nil); return err }, []string{"graph function fn"}},
		{"Exec of a nil executable", func() error { _, err := (*models.Executable)(nil).Exec(x); return err }, []string{"executable is nil"}},
		{"CheckBatch nil model", func() error { return models.CheckBatch(nil, x.Shape()) }, []string{"model m is nil"}},
		{"FindLayer nil model", func() error { _, err := models.FindLayer(nil, "conv"); return err }, []string{"model m is nil"}},
		{"LastSpatialLayer nil model", func() error { _, err := models.LastSpatialLayer(nil); return err }, []string{"model m is nil"}},
		{"SplitBatch nil tensor", func() error { _, err := models.SplitBatch(nil, 2); return err }, []string{"x: Tensor is nil"}},
		{"JoinBatch nil part", func() error { _, err := models.JoinBatch([]*tensors.Tensor{x, nil}); return err }, []string{"part 1: Tensor is nil"}},
		{"NewNative nil forward", func() error { _, err := models.NewNative("noforward", rgb, model.NewStore(), nil).Check(); return err },
			[]string{"model noforward: the forward function is nil"}},
		{"Softmax empty", softmaxErr(), []string{"no logits"}},
		{"Softmax NaN", softmaxErr(1, nan, 2), []string{"logit 1 of 3 is NaN"}},
		{"Softmax Inf", softmaxErr(inf, 2), []string{"logit 0 of 2 is +Inf"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatalf("no error, want one saying %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// A runner of nil arguments says so before running, and its methods do nothing harmful.
	r := models.NewRunner(nil, nil)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "backend b is nil") {
		t.Errorf("Err() = %v", err)
	}
	r.SetMaxGraphs(1)
	r.Close()
	var nilRunner *models.Runner
	nilRunner.SetHeapSlack(1)
	nilRunner.SetMaxGraphs(1)
	nilRunner.Close()
	if nilRunner.Model() != nil || nilRunner.Backend() != nil || nilRunner.Err() == nil {
		t.Error("a nil runner has a model, a backend or no error")
	}
	if err := models.NewRunner(b, tiny).Err(); err != nil {
		t.Errorf("a runner of a good model: %v", err)
	}
}

// A grey input takes an RGB normalisation such as ImageNet (the ONNX
// loader's default), using its first value, and 1 value serves every channel.
func TestInputValidateAcceptsBroadcastNormalisation(t *testing.T) {
	for _, in := range []models.Input{
		{Channels: 1, Height: 2, Width: 2, Normalization: models.ImageNet},
		{Channels: 3, Height: 2, Width: 2, Normalization: models.Normalization{Mean: []float32{0.5}, Std: []float32{0.5}}},
		{Layout: models.NHWC, Channels: 2, Height: 5, Width: 6},
	} {
		if err := in.Validate(); err != nil {
			t.Errorf("%+v: %v", in, err)
		}
	}
}

// Transparent and translucent pixels keep their stored colour, as PIL's
// Image.convert("RGB") keeps it: the reference is PIL's output for the same
// files (an RGBA PNG, a palette PNG with transparency and a grey-and-alpha
// PNG, which PIL writes). An image.RGBA is premultiplied: its colour is
// divided by alpha, and a fully transparent pixel is black.
func TestTensorReadsTransparentColourAsPIL(t *testing.T) {
	dir := t.TempDir()
	nrgba := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	for i := range 15 {
		nrgba.SetNRGBA(i%5, i/5, color.NRGBA{uint8(17 * i), uint8(250 - 13*i), uint8(40 + 9*i), uint8([]int{0, 0, 1, 128, 255}[i%5])})
	}
	paletted := image.NewPaletted(image.Rect(0, 0, 3, 2), color.Palette{
		color.NRGBA{200, 100, 50, 0}, color.NRGBA{10, 220, 30, 90}, color.NRGBA{0, 0, 255, 255},
	})
	copy(paletted.Pix, []uint8{0, 1, 2, 2, 1, 0})
	for name, img := range map[string]image.Image{"nrgba.png": nrgba, "paletted.png": paletted} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	testutil.Python(t, `
import numpy as np
from PIL import Image
dir = "`+dir+`"
la = np.zeros((3, 4, 2), np.uint8)
la[..., 0] = np.arange(12).reshape(3, 4) * 21
la[..., 1] = [0, 0, 64, 255]
Image.fromarray(la, "LA").save(dir + "/la.png")
for name in ["nrgba", "paletted", "la"]:
    im = Image.open(dir + "/" + name + ".png")
    np.save(dir + "/" + name + ".npy", np.asarray(im.convert("RGB"), np.float32) / 255)
`)
	for _, name := range []string{"nrgba", "paletted", "la"} {
		img, err := models.LoadImage(filepath.Join(dir, name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		want, shape := testutil.ReadNPY(t, filepath.Join(dir, name+".npy"))
		in := models.Input{Layout: models.NHWC, Channels: 3, Height: shape[0], Width: shape[1], Normalization: models.Identity}
		x, err := in.Tensor(img)
		if err != nil {
			t.Fatal(err)
		}
		if d := testutil.MaxAbsDiff(tensors.MustCopyFlatData[float32](x), want); d > 1e-6 {
			t.Errorf("%s (%T): differs from PIL's convert(\"RGB\") by %.3g", name, img, d)
		}
	}
	// Premultiplied: (64, 32, 0) at alpha 128 is straight (0.5, 0.25, 0);
	// fully transparent is black; opaque is as stored.
	rgba := image.NewRGBA(image.Rect(0, 0, 3, 1))
	copy(rgba.Pix, []uint8{64, 32, 0, 128, 0, 0, 0, 0, 255, 51, 0, 255})
	in := models.Input{Layout: models.NHWC, Channels: 3, Height: 1, Width: 3, Normalization: models.Identity}
	x, err := in.Tensor(rgba)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{64.0 / 128, 32.0 / 128, 0, 0, 0, 0, 1, 0.2, 0}
	if d := testutil.MaxAbsDiff(tensors.MustCopyFlatData[float32](x), want); d > 1e-6 {
		t.Errorf("image.RGBA read as %v, want %v", tensors.MustCopyFlatData[float32](x), want)
	}
}
