package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/internal/testutil"
)

const tinyLast = "/layer2/layer2.0/relu_1/Relu_output_0"

var (
	tinyModel = testutil.Testdata("tinycnn", "model.onnx")
	tinyInput = testutil.Testdata("tinycnn", "input.npy")
	catImage  = testutil.Testdata("images", "chelsea.png")
)

// convlens runs the command line in-process and returns its exit status and output.
func convlens(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("GOMLX_BACKEND", "go")
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestLayersListsNameOpAndShape(t *testing.T) {
	code, out, errOut := convlens(t, "layers", "--model", tinyModel)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The fixture generator names this layer and records its shape [3,32,8,8]
	// for 3 images; torch ran it in module layer2[0], its relu called twice.
	want := tinyLast + "\tRelu\t[1 32 8 8]\tlayer2.0.relu_1"
	if !strings.Contains(out, want+"\n") {
		t.Errorf("layers output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "\tConv\t") || !strings.Contains(out, "\tGemm\t") {
		t.Errorf("layers output lacks Conv or Gemm nodes:\n%s", out)
	}
}

func TestCamWritesMapsOverlayAndPrediction(t *testing.T) {
	dir := t.TempDir()
	outNPY, outPNG := filepath.Join(dir, "cam.npy"), filepath.Join(dir, "overlay.png")
	code, out, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast,
		"--out-npy", outNPY, "--out-png", outPNG)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "backend") {
		t.Errorf("stderr does not name the backend: %q", errOut)
	}
	// testdata/tinycnn/manifest.json: PyTorch's top-1 classes of the three inputs are 9, 2, 5.
	for i, c := range []string{"9", "2", "5"} {
		if !regexp.MustCompile(`image ` + string(rune('0'+i)) + `: predicted class ` + c + `, logit -?[0-9.]+, probability 0\.[0-9]+`).MatchString(out) {
			t.Errorf("stdout lacks image %d's class %s:\n%s", i, c, out)
		}
	}
	maps, shape, err := npy.ReadFloat32(outNPY)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 64, 64}; !slices.Equal(shape, want) {
		t.Fatalf("--out-npy shape %v, want %v", shape, want)
	}
	ref, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "gradcam_layer2_top1_norm.npy"))
	if e := testutil.MaxAbsDiff(maps, ref); e > 1e-3 {
		t.Errorf("--out-npy differs from PyTorch's maps by %.3g", e)
	}
	f, err := os.Open(outPNG)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("--out-png is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 64 || b.Dy() < 3*64 {
		t.Errorf("overlay of 3 images is %v, want at least one 64x64 row per image", b)
	}
}

// layers -v says how a file from an old exporter was rewritten to load.
func TestLayersVerboseNamesRewrites(t *testing.T) {
	code, _, errOut := convlens(t, "layers", "-v", "--model", testutil.Testdata("zoo", "vgg16-7-lookalike.onnx"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"weights listed as graph inputs", "2 Dropout nodes are the identity", "fixes the batch at 1"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, _, errOut := convlens(t, "layers", "-v", "--model", tinyModel); code != 0 || !strings.Contains(errOut, "no rewrite needed") {
		t.Errorf("tiny model: exit %d, stderr %q; want no rewrite", code, errOut)
	}
}

// A layer named as PyTorch users name it, by module path, is the module's
// output: the maps equal PyTorch's Grad-CAM with target_layers=[model.layer2].
func TestCamTakesPyTorchModulePaths(t *testing.T) {
	ref, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "gradcam_layer2_top1_norm.npy"))
	for _, layer := range []string{"layer2", "model.layer2[-1]", "layer2.0"} {
		out := filepath.Join(t.TempDir(), "cam.npy")
		code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", layer, "--out-npy", out)
		if code != 0 {
			t.Fatalf("--layer %s: exit %d: %s", layer, code, errOut)
		}
		maps, _, err := npy.ReadFloat32(out)
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.MaxAbsDiff(maps, ref); e > 1e-3 {
			t.Errorf("--layer %s: maps differ from PyTorch's by %.3g", layer, e)
		}
	}
	code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", "layer2", "--grid", "tokens:8x8+1")
	if code == 0 || !strings.Contains(errOut, "is for tokens [N,T,D]") {
		t.Errorf("--grid tokens on a conv layer: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", "fc")
	if code == 0 || !strings.Contains(errOut, `"fc (logits)"`) || !strings.Contains(errOut, "no spatial axes") {
		t.Errorf("--layer fc: exit %d, stderr %q; want the module's node named and refused", code, errOut)
	}
}

func TestCamTopKAndRawShapes(t *testing.T) {
	dir := t.TempDir()
	topNPY, rawNPY := filepath.Join(dir, "top.npy"), filepath.Join(dir, "raw.npy")
	if code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--top", "3", "--out-npy", topNPY); code != 0 {
		t.Fatalf("--top: exit %d: %s", code, errOut)
	}
	maps, shape, err := npy.ReadFloat32(topNPY)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{3, 3, 64, 64}) {
		t.Fatalf("--top 3 shape %v, want [3 3 64 64]", shape)
	}
	ref, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "top3_layer2_norm.npy"))
	if e := testutil.MaxAbsDiff(maps, ref); e > 1e-3 {
		t.Errorf("--top 3 maps differ from PyTorch's by %.3g", e)
	}

	if code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--class", "3", "--raw", "--out-npy", rawNPY); code != 0 {
		t.Fatalf("--raw: exit %d: %s", code, errOut)
	}
	raw, shape, err := npy.ReadFloat32(rawNPY)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{3, 8, 8}) {
		t.Fatalf("--raw shape %v, want [3 8 8]", shape)
	}
	signed, _ := testutil.ReadNPY(t, testutil.Testdata("tinycnn", "gradcam_layer2_class3_raw.npy"))
	for i := range signed {
		signed[i] = max(signed[i], 0) // --raw writes the ReLU'd map.
	}
	if e := testutil.RelErr(raw, signed); e > 1e-4 {
		t.Errorf("--raw maps differ from PyTorch's ReLU'd raw maps by %.3g relative", e)
	}
}

func TestCamOnImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cat.png")
	code, stdout, errOut := convlens(t, "cam", "--model", tinyModel, "--image", catImage, "--layer", tinyLast, "--out-png", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(stdout, "image 0: predicted class ") {
		t.Errorf("stdout %q", stdout)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	// The overlay is drawn over the original picture, 451x300.
	if cfg.Width != 451 || cfg.Height != 300 {
		t.Errorf("overlay is %dx%d, want the image's 451x300", cfg.Width, cfg.Height)
	}
}

// Every bad input gets one line on stderr that says what is wrong, a non-zero
// exit status, and no output file.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.png")
	os.WriteFile(notImage, []byte("these are notes, not a picture"), 0o644)
	corrupt := filepath.Join(dir, "corrupt.onnx")
	os.WriteFile(corrupt, []byte("\x08\x07garbage that is not a protobuf model"), 0o644)
	f64 := writeNPYFile(t, dir, "f64.npy", "np.zeros((1,3,64,64))")
	rank3 := writeNPYFile(t, dir, "rank3.npy", "np.zeros((3,64,64), np.float32)")
	wrongSize := writeNPYFile(t, dir, "size.npy", "np.zeros((1,3,32,32), np.float32)")
	empty := writeNPYFile(t, dir, "empty.npy", "np.zeros((0,3,64,64), np.float32)")
	out := filepath.Join(dir, "out.npy")

	cases := []struct {
		name string
		args []string
		want string // a fragment of the one-line message
	}{
		{"unknown layer", []string{"--model", tinyModel, "--input", tinyInput, "--layer", "/layer2/layer2.0/relu_2/Relu_output_0"}, `no layer "/layer2/layer2.0/relu_2/Relu_output_0"; closest: /layer2/layer2.0/relu_1/Relu_output_0`},
		{"layer without spatial axes", []string{"--model", tinyModel, "--input", tinyInput, "--layer", "logits"}, "no spatial axes"},
		{"missing model", []string{"--model", filepath.Join(dir, "nope.onnx"), "--input", tinyInput, "--layer", tinyLast}, "no such file"},
		{"corrupt model", []string{"--model", corrupt, "--input", tinyInput, "--layer", tinyLast}, "not a readable ONNX file"},
		{"unsupported op", []string{"--model", testutil.Testdata("bad", "unsupported_op.onnx"), "--input", tinyInput, "--layer", "relu"}, `unimplemented ONNX op "Hardmax"`},
		{"image does not decode", []string{"--model", tinyModel, "--image", notImage, "--layer", tinyLast}, "decoding image"},
		{"npy of wrong dtype", []string{"--model", tinyModel, "--input", f64, "--layer", tinyLast}, "float32"},
		{"npy of wrong rank", []string{"--model", tinyModel, "--input", rank3, "--layer", tinyLast}, "input has shape [3 64 64]; the model takes a batch shaped [N 3 64 64]"},
		{"npy of wrong shape", []string{"--model", tinyModel, "--input", wrongSize, "--layer", tinyLast}, "input has shape [1 3 32 32]"},
		{"class out of range", []string{"--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--class", "10"}, "class index 10 is out of range: the model has 10 classes"},
		{"empty batch", []string{"--model", tinyModel, "--input", empty, "--layer", tinyLast}, "empty batch"},
		{"class and top", []string{"--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--class", "1", "--top", "2"}, "not both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, errOut := convlens(t, append([]string{"cam", "--out-npy", out}, c.args...)...)
			if code == 0 {
				t.Fatalf("exit 0; stdout %q", stdout)
			}
			// The backend note may precede the error; the error is the last line.
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			msg := lines[len(lines)-1]
			if !strings.Contains(msg, c.want) {
				t.Errorf("message %q lacks %q", msg, c.want)
			}
			if len(lines) > 2 || (len(lines) == 2 && !strings.Contains(lines[0], "backend")) {
				t.Errorf("stderr has more than the one error line:\n%s", errOut)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("an output file was written")
			}
		})
	}
}

func writeNPYFile(t *testing.T, dir, name, expr string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	testutil.Python(t, "import numpy as np; np.save('"+path+"', "+expr+")")
	return path
}

// Every method runs on an embedded (native GoMLX) model too, including those
// that run the model several times in one graph (Integrated Gradients,
// SmoothGrad), which must reuse its weights.
func TestCamAllMethodsOnEmbeddedModel(t *testing.T) {
	out := filepath.Join(t.TempDir(), "all.png")
	code, _, errOut := convlens(t, "cam", "--model", "mnist", "--image", catImage, "--layer", "relu3", "--method", "all", "--out-png", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatal(err)
	}
}

// Without --layer, cam computes at the last layer with spatial axes, names
// it on stderr, and writes the same maps as when that layer is given.
func TestCamDefaultLayer(t *testing.T) {
	dir := t.TempDir()
	given, chosen := filepath.Join(dir, "given.npy"), filepath.Join(dir, "chosen.npy")
	if code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--out-npy", given); code != 0 {
		t.Fatalf("with --layer: exit %d\n%s", code, errOut)
	}
	code, _, errOut := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--out-npy", chosen)
	if code != 0 {
		t.Fatalf("without --layer: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "no --layer given; using the last layer with spatial axes, "+tinyLast) {
		t.Errorf("stderr does not name the layer chosen:\n%s", errOut)
	}
	a, _ := os.ReadFile(given)
	b, _ := os.ReadFile(chosen)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("maps without --layer (%d bytes) differ from those at %s (%d bytes)", len(b), tinyLast, len(a))
	}
}
