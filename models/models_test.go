package models_test

import (
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

func TestONNXInputLayersAndRunMatchPyTorch(t *testing.T) {
	m, err := models.LoadONNX(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// scripts/reference/gen_fixtures.py exports input "input" as [batch,3,64,64].
	in := m.Input()
	if in.Layout != models.NCHW || in.Channels != 3 || in.Height != 64 || in.Width != 64 {
		t.Errorf("input %+v, want NCHW 3x64x64", in)
	}
	if len(m.Checksum()) != 64 {
		t.Errorf("checksum %q is not a SHA-256", m.Checksum())
	}
	layer := "/layer1/layer1.0/relu_1/Relu_output_0"
	l, err := models.FindLayer(m, layer)
	if err != nil {
		t.Fatal(err)
	}
	if l.Op != "Relu" || fmt.Sprint(l.Shape.Dimensions) != "[1 16 16 16]" {
		t.Errorf("layer %v", l)
	}
	data, shape := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "input.npy"))
	r := models.NewRunner(modeltest.Backend(t), m)
	defer r.Close()
	logits, acts, err := r.Run(tensors.FromFlatDataAndDimensions(data, shape...), layer)
	if err != nil {
		t.Fatal(err)
	}
	wantLogits, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "logits.npy"))
	if e := testutil.RelErr(tensors.MustCopyFlatData[float32](logits), wantLogits); e > 1e-5 {
		t.Errorf("logits differ from PyTorch's by %.3g relative", e)
	}
	wantAct, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "act_layer1.npy"))
	if e := testutil.RelErr(tensors.MustCopyFlatData[float32](acts[0]), wantAct); e > 1e-5 {
		t.Errorf("activation differs from PyTorch's by %.3g relative", e)
	}
}

func TestFindLayerSuggestsClosestNames(t *testing.T) {
	m, err := models.LoadONNX(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = models.FindLayer(m, "/layer1/layer1.0/relu_2/Relu_output_0")
	if err == nil || !strings.Contains(err.Error(), "closest: /layer1/layer1.0/relu_1/Relu_output_0") {
		t.Errorf("err = %v, want the nearest name first", err)
	}
	if _, err := models.SpatialLayer(m, "logits"); err == nil || !strings.Contains(err.Error(), "no spatial axes") {
		t.Errorf("logits accepted as a spatial layer: %v", err)
	}
}

// The preprocessing must equal OpenCV's: INTER_LINEAR resize of the float
// image, scaling to [0,1] and ImageNet normalisation, laid out NCHW.
func TestInputTensorMatchesOpenCV(t *testing.T) {
	cat := testutil.Testdata("images", "chelsea.png")
	ref := filepath.Join(t.TempDir(), "ref.npy")
	testutil.Python(t, `
import cv2, numpy as np
img = cv2.cvtColor(cv2.imread("`+cat+`", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
img = cv2.resize(img, (80, 48), interpolation=cv2.INTER_LINEAR)
img = (img - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
np.save("`+ref+`", img.transpose(2, 0, 1)[None].astype(np.float32))`)
	want, _ := testutil.ReadNPY(t, ref)
	img, err := models.LoadImage(cat)
	if err != nil {
		t.Fatal(err)
	}
	in := models.Input{Layout: models.NCHW, Channels: 3, Height: 48, Width: 80, Normalization: models.ImageNet}
	x, err := in.Tensor(img)
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](x); testutil.MaxAbsDiff(got, want) > 1e-4 {
		t.Errorf("preprocessed image differs from OpenCV's by %.3g", testutil.MaxAbsDiff(got, want))
	}
}

func TestInputImageUndoesNormalisation(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for i := range 16 {
		src.Set(i%4, i/4, color.RGBA{uint8(i * 16), uint8(255 - i*16), 128, 255})
	}
	for _, in := range []models.Input{
		{Layout: models.NCHW, Channels: 3, Height: 4, Width: 4, Normalization: models.ImageNet},
		{Layout: models.NHWC, Channels: 3, Height: 4, Width: 4, Normalization: models.Identity},
	} {
		x, err := in.Tensor(src)
		if err != nil {
			t.Fatal(err)
		}
		back, err := in.Image(tensors.MustCopyFlatData[float32](x), 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 16 {
			if got, want := back.RGBAAt(i%4, i/4), src.RGBAAt(i%4, i/4); got != want {
				t.Fatalf("%s: pixel %d = %v, want %v", in.Layout, i, got, want)
			}
		}
	}
}

func TestBadImagesAndModels(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "a.jpg")
	os.WriteFile(text, []byte("not a jpeg"), 0o644)
	if _, err := models.LoadImage(text); err == nil || !strings.Contains(err.Error(), "PNG and JPEG") {
		t.Errorf("LoadImage(text) = %v", err)
	}
	if _, err := embedded.Open("resnet-imaginary"); err == nil || !strings.Contains(err.Error(), "built-in models") {
		t.Errorf("Open(unknown name) = %v", err)
	}
	if _, err := models.LoadONNX(testutil.Testdata("bad", "unsupported_op.onnx")); err == nil || !strings.Contains(err.Error(), `"Hardmax"`) {
		t.Errorf("LoadONNX(unsupported op) = %v, want the op named", err)
	}
}

func TestNativeModelLayersAndRun(t *testing.T) {
	m := modeltest.TinyNative()
	layers, err := m.Check()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range layers {
		got = append(got, fmt.Sprint(l.Name, l.Shape.Dimensions))
	}
	if want := "[conv[1 5 6 4] relu[1 5 6 4] pool[1 4] logits[1 3]]"; fmt.Sprint(got) != want {
		t.Errorf("layers %v, want %v", got, want)
	}
	if !layers[1].Spatial(models.NHWC) || layers[2].Spatial(models.NHWC) {
		t.Errorf("spatial: relu %v pool %v", layers[1].Spatial(models.NHWC), layers[2].Spatial(models.NHWC))
	}
	x := tensors.FromFlatDataAndDimensions(make([]float32, 2*5*6*2), 2, 5, 6, 2)
	r := models.NewRunner(modeltest.Backend(t), m)
	logits, acts, err := r.Run(x, "pool", "relu")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(logits.Shape().Dimensions, acts[0].Shape().Dimensions, acts[1].Shape().Dimensions) != "[2 3] [2 4] [2 5 6 4]" {
		t.Errorf("shapes %v %v %v", logits.Shape(), acts[0].Shape(), acts[1].Shape())
	}
	if _, _, err := r.Run(x, "relu9"); err == nil || !strings.Contains(err.Error(), "closest: relu") {
		t.Errorf("unknown tap: %v", err)
	}
}

func TestCheckBatch(t *testing.T) {
	m := modeltest.TinyNative()
	for _, c := range []struct {
		dims []int
		want string
	}{
		{[]int{0, 5, 6, 2}, "empty batch"},
		{[]int{5, 6, 2}, "the model takes a batch shaped [N 5 6 2] (NHWC)"},
		{[]int{1, 2, 5, 6}, "input has shape [1 2 5 6]"},
	} {
		x := tensors.FromFlatDataAndDimensions(make([]float32, product(c.dims)), c.dims...)
		if err := models.CheckBatch(m, x.Shape()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckBatch(%v) = %v, want %q", c.dims, err, c.want)
		}
	}
}

func product(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}
