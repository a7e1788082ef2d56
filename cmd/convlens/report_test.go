package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

func TestReportOnePagePerImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.html")
	code, stdout, stderr := convlens(t, "report", "--model", tinyModel, "--image", catImage+","+catImage, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "no --layer given; using the last layer with spatial axes, "+tinyLast) {
		t.Errorf("stderr does not say which layer was chosen: %q", stderr)
	}
	if !regexp.MustCompile(`wrote .*report\.html: 2 page\(s\), gradcam at ` + regexp.QuoteMeta(tinyLast)).MatchString(stdout) {
		t.Errorf("stdout: %q", stdout)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	if n := strings.Count(page, `<section class="page"`); n != 2 {
		t.Errorf("%d pages, want 2", n)
	}
	model, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(model)
	// testdata/tinycnn/manifest.json: PyTorch's top-1 class of the cat is 9 (see the demo).
	for _, want := range []string{
		hex.EncodeToString(sum[:]), "SHA-256 of the model file",
		tinyLast, "chosen automatically: the last layer with spatial axes",
		"chelsea.png", "Predicted: <b>class 9</b>", "<td>gradcam</td>",
		time.Now().Format("2006-01-02"),
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || regexp.MustCompile(`(?i)(src|href)=["']?(https?:|//)`).MatchString(page) {
		t.Error("the report is not self-contained")
	}

	// Printed in a real browser: one A4 page per image.
	chromium, ok := printTools(t)
	if !ok {
		return
	}
	if n := pdfPages(t, chromium, out); n != 2 {
		t.Errorf("printed %d pages, want 2 (one per image)", n)
	}
}

func TestReportLayerAndClass(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.html")
	layer := "/layer1/layer1.0/relu_1/Relu_output_0"
	code, _, stderr := convlens(t, "report", "--model", tinyModel, "--image", catImage, "--layer", layer, "--class", "4", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "no --layer given") {
		t.Error("a given layer is reported as chosen automatically")
	}
	raw, _ := os.ReadFile(out)
	page := string(raw)
	for _, want := range []string{layer, "evidence for <b>class 4</b>", "not for the prediction"} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(page, "chosen automatically") {
		t.Error("a given layer is noted as chosen automatically")
	}
}

func TestReportBadInputWritesNothing(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.png")
	if err := os.WriteFile(notImage, []byte("these are notes, not a picture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report.html")
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"not an image", []string{"--model", tinyModel, "--image", notImage, "--out", out}, 1, "decoding image"},
		{"missing image", []string{"--model", tinyModel, "--image", filepath.Join(dir, "none.png"), "--out", out}, 1, "opening image"},
		{"unknown layer", []string{"--model", tinyModel, "--image", catImage, "--layer", "/nope", "--out", out}, 1, "has no layer"},
		{"class out of range", []string{"--model", tinyModel, "--image", catImage, "--class", "10", "--out", out}, 1, "out of range"},
		{"no --out", []string{"--model", tinyModel, "--image", catImage}, 2, "--out"},
		{"no --image", []string{"--model", tinyModel, "--out", out}, 2, "--image"},
		{"bad --class", []string{"--model", tinyModel, "--image", catImage, "--class", "cat", "--out", out}, 2, "not a class index"},
		{"unknown method", []string{"--model", tinyModel, "--image", catImage, "--method", "magic", "--out", out}, 2, "unknown --method"},
	}
	for _, c := range cases {
		code, _, stderr := convlens(t, append([]string{"report"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.stderr) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, code, stderr, c.code, c.stderr)
		}
		if lines := strings.Count(strings.TrimSpace(lastLines(stderr)), "\n"); lines > 0 {
			t.Errorf("%s: the error takes %d lines: %q", c.name, lines+1, stderr)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: a report was written", c.name)
		}
	}
}

// lastLines drops the backend line, which is informational.
func lastLines(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, "convlens: backend") && !strings.Contains(l, "no --layer given") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestWeightsChecksumOfNativeModels(t *testing.T) {
	native := func(w float32) models.Model {
		store := model.NewStore()
		store.RootScope().In("dense").VariableWithValue("weights", tensors.FromFlatDataAndDimensions([]float32{w, 2, 3, 4}, 4, 1))
		in := models.Input{Layout: models.NHWC, Channels: 1, Height: 2, Width: 2, Normalization: models.Identity}
		return models.NewNative("tiny", in, store, func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
			x = tap("x", x)
			flat := graph.Reshape(x, x.Shape().Dimensions[0], 4)
			return graph.MatMul(flat, scope.In("dense").VariableWithShape("weights", shapes.Make(dtypes.Float32, 4, 1)).NodeValue(x.Graph()))
		})
	}
	a, ofA := weightsChecksum(native(1))
	b, _ := weightsChecksum(native(1))
	c, _ := weightsChecksum(native(1.5))
	if len(a) != 64 || a != b {
		t.Errorf("checksums of the same weights: %q and %q", a, b)
	}
	if a == c {
		t.Error("different weights, same checksum")
	}
	if !strings.Contains(ofA, "1 variable(s)") {
		t.Errorf("checksum note %q does not say what was hashed", ofA)
	}
	onnx, err := models.LoadONNX(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	if s, of := weightsChecksum(onnx); s != onnx.Checksum() || !strings.Contains(of, "model file") {
		t.Errorf("ONNX checksum %q (%s), want the file's %q", s, of, onnx.Checksum())
	}
}

// printTools finds Chromium and poppler's pdfinfo; without them the print
// check is skipped, except under CI=true, where it fails.
func printTools(t *testing.T) (string, bool) {
	t.Helper()
	chromium := testutil.Chromium()
	_, errInfo := exec.LookPath("pdfinfo")
	if chromium == "" || errInfo != nil {
		msg := "printing the report needs Chromium and pdfinfo (apt-get install chromium poppler-utils)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Log(msg + "; print check skipped outside CI")
		return "", false
	}
	return chromium, true
}

// pdfPages prints the HTML file to PDF in headless Chromium (the flags
// shared/STACK.md gives, no network use) and returns the page count.
func pdfPages(t *testing.T, chromium, htmlPath string) int {
	t.Helper()
	dir := t.TempDir()
	pdf := filepath.Join(dir, "report.pdf")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--no-pdf-header-footer", "--print-to-pdf="+pdf, "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	info, err := exec.CommandContext(ctx, "pdfinfo", pdf).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, info)
	}
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo gives no page count:\n%s", info)
	}
	if !strings.Contains(string(info), "(A4)") {
		t.Errorf("not A4:\n%s", info)
	}
	n := 0
	for _, c := range m[1] {
		n = 10*n + int(c-'0')
	}
	return n
}
