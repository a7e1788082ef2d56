package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute-onnx/support/protos"
)

// --class -5 and --class "" used to be taken for no --class (eval, and cam
// and report); every command now refuses them with one usage line, exit 2.
func TestClassFlagRefusesEmptyAndNegative(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"cam empty", []string{"cam", "--model", tinyModel, "--input", tinyInput, "--class", ""}, "--class is empty"},
		{"cam commas", []string{"cam", "--model", tinyModel, "--input", tinyInput, "--class", ","}, "--class is empty"},
		{"cam negative", []string{"cam", "--model", tinyModel, "--input", tinyInput, "--class", "1,-5"}, "--class -5: class indices start at 0"},
		{"cam empty with top", []string{"cam", "--model", tinyModel, "--input", tinyInput, "--class", "", "--top", "2"}, "give --class or --top, not both"},
		{"eval empty", []string{"eval", "--metric", "drop", "--model", tinyModel, "--input", tinyInput, "--class", ""}, "--class is empty"},
		{"eval negative", []string{"eval", "--metric", "drop", "--model", tinyModel, "--input", tinyInput, "--class", "-5"}, "--class -5: class indices start at 0"},
		{"eval -1", []string{"eval", "--metric", "drop", "--model", tinyModel, "--input", tinyInput, "--class", "-1"}, "--class -1: class indices start at 0"},
		{"eval several", []string{"eval", "--metric", "drop", "--model", tinyModel, "--input", tinyInput, "--class", "1,2"}, "--class 1,2: give one class index"},
		{"report empty", []string{"report", "--model", tinyModel, "--image", catImage, "--out", filepath.Join(dir, "r.html"), "--class", ""}, "--class is empty"},
		{"report negative", []string{"report", "--model", tinyModel, "--image", catImage, "--out", filepath.Join(dir, "r.html"), "--class", "-5"}, "class indices start at 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := convlens(t, c.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 || stdout != "" {
				t.Errorf("stderr %q, stdout %q; want one line with %q", stderr, stdout, c.want)
			}
		})
	}
	if left := listDir(t, dir); len(left) > 0 {
		t.Errorf("left %v", left)
	}
}

// A model whose output has no classes used to fail with GoMLX's text about
// broadcasting shapes; cam, eval and report now say what is wrong.
func TestZeroClassModelIsRefused(t *testing.T) {
	zero := tinyVariant(t, "fc.weight", func(w *protos.TensorProto) { w.Dims, w.RawData = []int64{0, 32}, nil },
		func(g *protos.GraphProto) {
			for _, in := range g.Initializer {
				if in.Name == "fc.bias" {
					in.Dims, in.RawData = []int64{0}, nil
				}
			}
			g.Output[0].Type.GetTensorType().Shape.Dim[1].Value = &protos.TensorShapeProto_Dimension_DimValue{DimValue: 0}
		})
	dir := t.TempDir()
	for _, args := range [][]string{
		{"cam", "--model", zero, "--input", tinyInput, "--out-npy", filepath.Join(dir, "cam.npy")},
		{"cam", "--model", zero, "--input", tinyInput, "--class", "0"},
		{"eval", "--metric", "drop", "--model", zero, "--input", tinyInput},
		{"report", "--model", zero, "--image", catImage, "--out", filepath.Join(dir, "r.html")},
	} {
		code, _, stderr := convlens(t, args...)
		const want = "has no classes to explain: its output logits is shaped [1 0]"
		if msg := errorLine(t, stderr); code != 1 || !strings.Contains(msg, want) || strings.Contains(msg, "broadcast") {
			t.Errorf("%s: exit %d, message %q; want exit 1 and %q", args[0], code, msg, want)
		}
	}
	if left := listDir(t, dir); len(left) > 0 {
		t.Errorf("left %v", left)
	}
}

// train used to check --out only once the weights were trained, minutes
// later; a folder the weights cannot be saved in is now refused at once.
func TestTrainChecksOutBeforeTraining(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mnist", "--out", file}, "--out " + file + " is a file, not a folder for the weights"},
		{[]string{"lesions", "--out", file}, "is a file, not a folder"},
		{[]string{"cells", "--out", filepath.Join(file, "weights")}, "the weights could not be saved there"},
		{[]string{"mnist", "--out", filepath.Join(file, "a", "b")}, "the weights could not be saved there"},
	} {
		var out, errOut strings.Builder
		err := runTrain(c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
		if errOut.Len() > 0 || out.Len() > 0 {
			t.Errorf("%v: training started: %q %q", c.args, out.String(), errOut.String())
		}
	}
	if left := listDir(t, dir); len(left) != 1 {
		t.Errorf("the checks left %v", left)
	}
}
