package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/convlens/convlens/models/backend"
)

// A representative subset of the coverage table, asserted, one row per trait
// real exports have: ResNet-18 at opset 7 (IR 3, weights listed as inputs)
// and 13; MobileNetV2 at opset 9 (ReLU6 as Clip with attribute bounds,
// depthwise convolutions); SqueezeNet (ceil-mode pools); DenseNet-121 at
// opset 9 (Pad with attribute pads); ConvNeXt-Tiny at 17 (Identity nodes,
// fused LayerNorm, channels-last blocks); ViT-B/16 at 17 (token layers, the
// default at the last block's ln_1); Swin-T at 13 (channels-last stages, F.pad
// as a reversing Slice, an omitted Pad input). Each row must load, list the
// reference layer, resolve the module path to it, and match PyTorch's
// Grad-CAM within the tolerances there and at the default layer. Exports go
// to the command's cache, .cache/coverage.
func TestCoverageSubset(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("CONVLENS_COVERAGE") != "1" {
		t.Skip("set CONVLENS_COVERAGE=1 to export torchvision models with Debian's python3-torch and compare convlens with PyTorch; CI always does")
	}
	cfg := config{python: "/usr/bin/python3", backend: "go"}
	if err := cfg.setup(); err != nil {
		t.Fatal(err)
	}
	b, err := backend.New(cfg.backend)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	for _, c := range []struct {
		family string
		opsets []int
	}{
		{"resnet18", []int{7, 13}},
		{"mobilenet_v2", []int{9}},
		{"squeezenet1_1", []int{13}},
		{"densenet121", []int{9}},
		{"convnext_tiny", []int{17}},
		{"vit_b_16", []int{17}},
		{"swin_t", []int{13}},
	} {
		exportErrs := exportMissing(cfg, c.family, c.opsets, t.Logf)
		for _, opset := range c.opsets {
			t.Run(fmt.Sprintf("%s-opset%d", c.family, opset), func(t *testing.T) {
				r := &row{family: c.family, opset: opset, exportErr: exportErrs[opset]}
				if r.exportErr == nil {
					cover(cfg, b, r)
				}
				t.Log(r.summary())
				for _, err := range []error{r.exportErr, r.loadErr, r.namedErr, r.dfltErr} {
					if err != nil {
						t.Fatal(err)
					}
				}
				if !r.listed {
					t.Errorf("the layer list lacks the reference layer %s", r.layer)
				}
				for _, cmp := range []*comparison{r.named, r.dflt} {
					if cmp == r.dflt && cmp.layer != r.layer {
						// Another layer than the reference's (DenseNet's last
						// ReLU, Swin's permuted output): it must give a map.
						if cmp.blank {
							t.Errorf("the default layer %s gives a blank map", cmp.layer)
						}
						continue
					}
					if !cmp.pass() || cmp.top1Differs > 0 {
						t.Errorf("at %s: raw error %.2g (tolerance %.0e), normalised %.2g (%.0e), top-1 differs on %d images",
							cmp.layer, cmp.raw, rawTol, cmp.norm, normTol, cmp.top1Differs)
					}
				}
			})
		}
	}
}

// The table reports a failed row in its own cells, on one line, and goes on.
func TestTableReportsFailures(t *testing.T) {
	rows := []*row{
		{family: "swin_t", opset: 9, exportErr: fmt.Errorf("torch.onnx.export: SymbolicValueError: Unsupported: ONNX export of Pad\nin opset 9 | more")},
		{family: "resnet18", opset: 13, layers: 49, listed: true, layer: "/l",
			named: &comparison{layer: "/l", raw: 1e-6, norm: 2e-6}, dflt: &comparison{layer: "/l", raw: 1e-6, norm: 2e-6}},
	}
	var w strings.Builder
	writeTable(&w, rows)
	writeErrors(&w, rows)
	got := w.String()
	for _, want := range []string{
		"| swin_t | 9 | failed: torch.onnx.export: SymbolicValueError: Unsupported: ONNX export of Pad in opset 9 / more | – |",
		"| resnet18 | 13 | ok | ok | 49 | ok | 0.0e+00 | 1.0e-06 | 2.0e-06 | yes | same layer, within tol |",
		"- swin_t opset 9, export: torch.onnx.export: SymbolicValueError",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
