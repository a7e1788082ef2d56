package models_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute-onnx/support/protos"
	"google.golang.org/protobuf/proto"
)

// smallModel is testutil.SmallONNX at 8x8.
func smallModel() *protos.ModelProto { return testutil.SmallONNX(8, 8) }

func encode(t testing.TB, m *protos.ModelProto) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each hostile file is refused with an error naming what is wrong, quickly
// and without allocating what it declares (each declares gigabytes to
// terabytes, or would recurse or dereference nil inside onnx-gomlx).
func TestParseONNXRefusesHostileGraphs(t *testing.T) {
	if _, err := models.ParseONNX("small.onnx", encode(t, smallModel())); err != nil {
		t.Fatalf("the valid model: %v", err)
	}
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "w.bin"), make([]byte, 2*3*3*3*4), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "w.bin"), filepath.Join(dir, "link.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "short.bin"), make([]byte, 16), 0o644); err != nil {
		t.Fatal(err)
	}
	external := func(location string) func(m *protos.ModelProto) {
		return func(m *protos.ModelProto) {
			w := m.Graph.Initializer[0]
			w.RawData = nil
			w.DataLocation = protos.TensorProto_EXTERNAL
			w.ExternalData = []*protos.StringStringEntryProto{{Key: "location", Value: location}}
		}
	}
	for _, c := range []struct {
		name   string
		mutate func(m *protos.ModelProto)
		want   string
	}{
		{"negative input dim", func(m *protos.ModelProto) {
			m.Graph.Input[0].Type.GetTensorType().Shape.Dim[2].Value = &protos.TensorShapeProto_Dimension_DimValue{DimValue: -8}
		}, `graph input "x": dimension 2 is -8`},
		{"huge input", func(m *protos.ModelProto) {
			for _, d := range m.Graph.Input[0].Type.GetTensorType().Shape.Dim[2:] {
				d.Value = &protos.TensorShapeProto_Dimension_DimValue{DimValue: 100000}
			}
		}, "dimension 2 is 100000, outside"},
		{"untyped input", func(m *protos.ModelProto) { m.Graph.Input[0].Type = nil }, `graph input "x": has no tensor type`},
		{"untyped output", func(m *protos.ModelProto) { m.Graph.Output[0].Type = nil }, `graph output "logits": has no tensor type`},
		{"no outputs", func(m *protos.ModelProto) { m.Graph.Output = nil }, "no outputs"},
		{"negative weight dim", func(m *protos.ModelProto) { m.Graph.Initializer[0].Dims[0] = -2 }, "dimension -2 is negative"},
		{"overflowing weight dims", func(m *protos.ModelProto) {
			m.Graph.Initializer[0].Dims = []int64{1 << 40, 1 << 40, 3, 3}
		}, "more elements than fit in 64 bits"},
		{"432 GB weight in a few bytes", func(m *protos.ModelProto) {
			m.Graph.Initializer[0].Dims = []int64{60000, 60000, 10, 3}
		}, "need 432000000000 bytes, the file holds 216"},
		{"typed data short", func(m *protos.ModelProto) {
			w := m.Graph.Initializer[0]
			w.RawData, w.FloatData = nil, []float32{1, 2, 3}
		}, "need 54 values, the file holds 3"},
		{"constant bomb", func(m *protos.ModelProto) {
			m.Graph.Node = append([]*protos.NodeProto{{OpType: "Constant", Output: []string{"k"}, Attribute: []*protos.AttributeProto{{
				Name: "value", Type: protos.AttributeProto_TENSOR,
				T: &protos.TensorProto{Dims: []int64{1 << 20, 1 << 20, 1 << 10}, DataType: int32(protos.TensorProto_FLOAT)},
			}}}}, m.Graph.Node...)
		}, `attribute "value": dims [1048576 1048576 1024] need 1125899906842624 values, the file holds 0`},
		{"cycle", func(m *protos.ModelProto) {
			m.Graph.Node[0].Input[0] = "r" // Conv reads Relu, which reads Conv.
		}, "has a cycle or is not in topological order"},
		{"unknown input", func(m *protos.ModelProto) { m.Graph.Node[1].Input[0] = "nowhere" }, `reads "nowhere", which no node`},
		{"external data through a symlink", external("link.bin"), "inside the model's folder"},
		{"external data outside the folder", external("../w.bin"), "inside the model's folder"},
		{"external data too short", external("short.bin"), "need 216 bytes, the file holds 16"},
		{"external length past the file", func(m *protos.ModelProto) {
			external("short.bin")(m)
			w := m.Graph.Initializer[0]
			w.ExternalData = append(w.ExternalData, &protos.StringStringEntryProto{Key: "length", Value: "216"})
		}, "holds 16 bytes, fewer than offset 0 + length 216"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := smallModel()
			c.mutate(m)
			start := time.Now()
			_, err := models.ParseONNX(filepath.Join(dir, "bad.onnx"), encode(t, m))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseONNX = %v, want an error with %q", err, c.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %s to refuse", d) // A guard against allocating what is declared, not a speed target.
			}
		})
	}
}

// FuzzParseONNX: any byte sequence gives a model or an error, never a panic.
// Seeded with the committed ONNX fixtures and the hostile graphs above.
func FuzzParseONNX(f *testing.F) {
	for _, path := range []string{
		testutil.Testdata("tinycnn", "model.onnx"),
		testutil.Testdata("bad", "unsupported_op.onnx"),
		testutil.Testdata("zoo", "resnet18-v2-7-lookalike.onnx"),
	} {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	m := smallModel()
	f.Add(encode(f, m))
	m.Graph.Node[0].Input[0] = "r"
	f.Add(encode(f, m))
	f.Add([]byte{0x3a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0x78})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := models.ParseONNX(filepath.Join(t.TempDir(), "fuzz.onnx"), data); err != nil {
			return
		}
	})
}
