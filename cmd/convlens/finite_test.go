package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/npy"
	"github.com/gomlx/compute-onnx/support/protos"
	"google.golang.org/protobuf/proto"
)

// nanInput is the tiny model's fixture batch with one NaN pixel in image 1.
func nanInput(t *testing.T) string {
	t.Helper()
	data, shape, err := npy.ReadFloat32(tinyInput)
	if err != nil {
		t.Fatal(err)
	}
	data[1*3*64*64+5*64+7] = float32(math.NaN())
	path := filepath.Join(t.TempDir(), "nan.npy")
	if err := npy.WriteFloat32(path, data, shape...); err != nil {
		t.Fatal(err)
	}
	return path
}

// tinyVariant writes the tiny model with the initializer named init changed
// by change, and the graph by graph (if given).
func tinyVariant(t *testing.T, init string, change func(*protos.TensorProto), graph func(*protos.GraphProto)) string {
	t.Helper()
	data, err := os.ReadFile(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	var m protos.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range m.Graph.Initializer {
		if in.Name == init {
			change(in)
			found = true
		}
	}
	if !found {
		t.Fatalf("the tiny model has no initializer %q", init)
	}
	if graph != nil {
		graph(m.Graph)
	}
	if data, err = proto.Marshal(&m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "variant.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// nanWeights is the tiny model with a NaN in its last layer's weights: the
// feature maps are finite, the logits of class 0 NaN.
func nanWeights(t *testing.T) string {
	return tinyVariant(t, "fc.weight", func(w *protos.TensorProto) {
		nan := math.Float32bits(float32(math.NaN()))
		w.RawData[0], w.RawData[1], w.RawData[2], w.RawData[3] = byte(nan), byte(nan>>8), byte(nan>>16), byte(nan>>24)
	}, nil)
}

// errorLine returns stderr's last line and fails unless it is the only line
// besides the notes on the backend, the layer chosen and a method's cost.
func errorLine(t *testing.T, stderr string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(lastLines(stderr)), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, "forward passes of one image") })
	if len(lines) != 1 {
		t.Errorf("the error takes %d lines:\n%s", len(lines), stderr)
	}
	return lines[len(lines)-1]
}

// A NaN pixel in --input, or NaN weights, used to exit 0 with an all-NaN map
// and disagreeing "predicted" and "explained" classes (report and features
// then failed with misleading messages). Every command now exits 1 with one
// line naming the file and the image, writes nothing, and prints no
// predictions.
func TestNonFiniteInputOrWeightsWriteNothing(t *testing.T) {
	nan, weights := nanInput(t), nanWeights(t)
	const inputMsg = "nan.npy: image 1: 1 of the 12288 values of the input are not finite (the first is NaN)"
	const logitsMsg = "image 0: 1 of the 10 values of the logits are not finite (the first is NaN)"
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"cam input", []string{"cam", "--model", tinyModel, "--input", nan}, inputMsg},
		{"cam all methods", []string{"cam", "--model", tinyModel, "--input", nan, "--method", "all"}, "nan.npy: ablationcam: image 1: 1 of the 12288 values of the input"},
		{"cam scorecam", []string{"cam", "--model", tinyModel, "--input", nan, "--method", "scorecam"}, inputMsg},
		{"eval input", []string{"eval", "--metric", "drop", "--model", tinyModel, "--input", nan}, inputMsg},
		{"features input", []string{"features", "--model", tinyModel, "--input", nan, "--layers", "all"}, inputMsg},
		{"cam weights", []string{"cam", "--model", weights, "--input", tinyInput}, "input.npy: " + logitsMsg},
		{"cam weights, image", []string{"cam", "--model", weights, "--image", catImage}, "chelsea.png: " + logitsMsg},
		{"report weights", []string{"report", "--model", weights, "--image", catImage}, "chelsea.png: " + logitsMsg},
		{"eval weights", []string{"eval", "--metric", "deletion", "--model", weights, "--input", tinyInput}, "input.npy: " + logitsMsg},
		{"features weights", []string{"features", "--model", weights, "--input", tinyInput, "--layers", "all"}, "input.npy: " + logitsMsg},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := c.args
			switch args[0] {
			case "cam":
				args = append(args, "--out-png", filepath.Join(dir, "cam.png"))
				if !strings.Contains(strings.Join(args, " "), "--method all") {
					args = append(args, "--out-npy", filepath.Join(dir, "cam.npy"))
				}
			case "report":
				args = append(args, "--out", filepath.Join(dir, "report.html"))
			case "features":
				args = append(args, "--out", filepath.Join(dir, "features"))
			}
			code, stdout, stderr := convlens(t, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if msg := errorLine(t, stderr); !strings.Contains(msg, c.want) {
				t.Errorf("message %q lacks %q", msg, c.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if left := listDir(t, dir); len(left) > 0 {
				t.Errorf("left %v", left)
			}
		})
	}
}
