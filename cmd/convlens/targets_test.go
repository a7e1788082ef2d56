package main

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// targetFixture reads testdata/targets/manifest.json (scripts/reference/gen_targets.py).
func targetFixture(t *testing.T) (man struct {
	Binary, Segment struct{ Layer string }
}) {
	t.Helper()
	raw, err := os.ReadFile(testutil.Testdata("targets", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	return man
}

// checkMaps compares the .npy at path with the PyTorch fixture ref of testdata/targets.
func checkMaps(t *testing.T, path, ref string) {
	t.Helper()
	got, _, err := npy.ReadFloat32(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := testutil.ReadNPY(t, testutil.Testdata("targets", ref))
	if e := testutil.MaxAbsDiff(got, want); e > 1e-3 {
		t.Errorf("%s differs from PyTorch's %s by %.3g", path, ref, e)
	}
}

// The targets beyond a softmax class on the command line: a sigmoid
// classifier's decision, an output, a segmentation's region, the
// similarity to another image, and the evidence against a class.
func TestCamTargetsBeyondAClass(t *testing.T) {
	man := targetFixture(t)
	dir := t.TempDir()
	input := testutil.Testdata("targets", "input.npy")
	binary := testutil.Testdata("targets", "binary.onnx")

	out := filepath.Join(dir, "binary.npy")
	code, stdout, stderr := convlens(t, "cam", "--model", binary, "--input", input, "--layer", man.Binary.Layer, "--out-npy", out)
	if code != 0 {
		t.Fatalf("binary: exit %d: %s", code, stderr)
	}
	checkMaps(t, out, "binary_top1_norm.npy")
	// z = 0.537 for image 0: the positive decision, probability σ(z) = 0.631;
	// z = −0.652 for image 1: the negative one, 1 − σ(z) = 0.657.
	for _, want := range []string{"image 0: predicted class 1, logit 0.5366, probability 0.6310", "image 1: predicted class 0, logit 0.6520, probability 0.6575"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = convlens(t, "cam", "--model", binary, "--input", input, "--layer", man.Binary.Layer, "--output", "0", "--out-npy", out)
	if code != 0 {
		t.Fatalf("--output: exit %d: %s", code, stderr)
	}
	checkMaps(t, out, "binary_output0_norm.npy")
	if !strings.Contains(stdout, "image 1: output 0 -0.6520") {
		t.Errorf("--output: stdout lacks image 1's output:\n%s", stdout)
	}

	// The region as a user draws it: white on black.
	values, shape := testutil.ReadNPY(t, testutil.Testdata("targets", "region.npy"))
	mask := image.NewGray(image.Rect(0, 0, shape[1], shape[0]))
	for i, v := range values {
		mask.SetGray(i%shape[1], i/shape[1], color.Gray{Y: uint8(255 * v)})
	}
	regionPNG := filepath.Join(dir, "region.png")
	f, err := os.Create(regionPNG)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, mask); err != nil {
		t.Fatal(err)
	}
	f.Close()
	segment := testutil.Testdata("targets", "segment.onnx")
	code, _, stderr = convlens(t, "cam", "--model", segment, "--input", input, "--layer", man.Segment.Layer, "--segment", "2", "--region", regionPNG, "--out-npy", out)
	if code != 0 {
		t.Fatalf("--segment: exit %d: %s", code, stderr)
	}
	checkMaps(t, out, "segment_region_norm.npy")
	code, _, stderr = convlens(t, "cam", "--model", segment, "--input", input, "--layer", man.Segment.Layer, "--segment", "1", "--out-npy", out)
	if code != 0 {
		t.Fatalf("--segment without --region: exit %d: %s", code, stderr)
	}
	checkMaps(t, out, "segment_predicted_norm.npy")

	// An image is as similar as can be to itself.
	code, stdout, stderr = convlens(t, "cam", "--model", testutil.Testdata("targets", "embed.onnx"), "--image", catImage, "--similar-to", catImage)
	if code != 0 {
		t.Fatalf("--similar-to: exit %d: %s", code, stderr)
	}
	if !regexp.MustCompile(`image 0: cosine similarity to \S+ 1\.0000`).MatchString(stdout) {
		t.Errorf("--similar-to itself: %q, want a similarity of 1", stdout)
	}

	code, stdout, stderr = convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--counterfactual")
	if code != 0 {
		t.Fatalf("--counterfactual: exit %d: %s", code, stderr)
	}
	// Image 0's class is 9 (testdata/tinycnn/manifest.json); its score is minus its logit.
	m := regexp.MustCompile(`image 0: predicted class 9, logit (-?[0-9.]+), .*; explained class 9 \(score (-?[0-9.]+)\)`).FindStringSubmatch(stdout)
	if m == nil || "-"+m[1] != m[2] && m[1] != "-"+m[2] {
		t.Errorf("--counterfactual: %q, want class 9 explained with minus its logit", stdout)
	}
}

func TestCamRefusesTwoTargets(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--class", "1", "--output", "0"}, "give one target: --class or --output"},
		{[]string{"--top", "2", "--segment", "1"}, "give one target: --segment or --top"},
		{[]string{"--region", "x.png"}, "give --segment C too"},
		{[]string{"--output", "-2"}, "take an index from 0"},
	} {
		code, _, stderr := convlens(t, append([]string{"cam", "--model", tinyModel, "--input", tinyInput}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line saying %q", tc.args, code, stderr, tc.want)
		}
	}
}

// --eigen-smooth and --aug-smooth reach the library's options: the maps
// equal the library's with the same options (themselves checked against
// PyTorch in gradcam/smoothcams_test.go), and differ from the plain map.
func TestCamSmoothingFlags(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.npy")
	if code, _, stderr := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, "--out-npy", plain); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	base, _, err := npy.ReadFloat32(plain)
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.LoadONNX(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(modeltest.Backend(t), m)
	data, shape := testutil.ReadNPY(t, tinyInput)
	x := tensors.FromFlatDataAndDimensions(data, shape...)
	for flag, b := range map[string]*gradcam.Builder{
		"--eigen-smooth": gradcam.New(r, tinyLast).EigenSmooth(true),
		"--aug-smooth":   gradcam.New(r, tinyLast).AugSmooth(true),
	} {
		lib, err := b.Explain(x, gradcam.Top(1))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, flag[2:]+".npy")
		if code, _, stderr := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--layer", tinyLast, flag, "--out-npy", out); code != 0 {
			t.Fatalf("%s: exit %d: %s", flag, code, stderr)
		}
		got, _, err := npy.ReadFloat32(out)
		if err != nil {
			t.Fatal(err)
		}
		if e := testutil.MaxAbsDiff(got, base); e < 1e-2 {
			t.Errorf("%s: the map is the plain one (max difference %.3g)", flag, e)
		}
		if e := testutil.MaxAbsDiff(got, lib.Normalized); e > 1e-6 {
			t.Errorf("%s: the map differs from the library's by %.3g", flag, e)
		}
	}
	code, _, stderr := convlens(t, "cam", "--model", tinyModel, "--input", tinyInput, "--method", "saliency", "--eigen-smooth")
	if code != 1 || !strings.Contains(stderr, "EigenSmooth") {
		t.Errorf("--eigen-smooth with saliency: exit %d, %q; want a refusal", code, stderr)
	}
}
