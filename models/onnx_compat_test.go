package models_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/catch"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/onnx-gomlx/onnx/parser"
	"google.golang.org/protobuf/proto"
)

// Real PyTorch exports with what onnx-gomlx refuses as is (see
// onnx_compat.go) load and give PyTorch's logits and input gradient. Each
// file is first checked to have its trait and to fail in onnx-gomlx without
// convlens's rewrite (to convert, or, for Identity, to differentiate).
func TestONNXCompatRewritesMatchPyTorch(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(testutil.Root(), "scripts", "reference", "onnx_compat.py")
	testutil.Python(t, fmt.Sprintf("import sys; sys.argv = ['onnx_compat.py', %q]; exec(open(%q).read())", dir, script))
	for _, c := range []struct {
		name, rawErr string
		trait        func(g *protos.GraphProto) bool
		chunk        int // The batch the graph only takes, or 0 for any.
	}{
		{"init_inputs_op7", "inputs", weightsAsInputs, 0},
		{"init_inputs_op9", "inputs", weightsAsInputs, 0},
		{"dropout_op13", `unimplemented ONNX op "Dropout"`, hasOp("Dropout"), 0},
		{"dropout_op7", "inputs", func(g *protos.GraphProto) bool { return weightsAsInputs(g) && hasOp("Dropout")(g) }, 0},
		{"ceil_pool", "'ceil_mode' is not yet implemented", ceilPools(2), 0},
		{"squeezenet", "'ceil_mode' is not yet implemented", ceilPools(3), 0},
		{"identity_op17", "no gradient", hasOp("Identity"), 0},
		// onnx-gomlx skips this Pad (swin_t's fails to convert): the Gemm after it sees too few values.
		{"pad_omitted", "contracting dimensions do not match", trailingEmptyInput, 0},
		{"attrs_op9", "index out of range", func(g *protos.GraphProto) bool { return hasOp("Clip")(g) && hasOp("Pad")(g) && hasOp("Slice")(g) }, 0},
		{"image_pooling", "has to be a combination of the indexed rank", hasOp("Resize"), 0},
		{"fixed_flatten", "invalid shape", fixedBatchOf(1), 0},
		{"fixed_reshape", "invalid shape", fixedBatchOf(1), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".onnx")
			contents, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var pb protos.ModelProto
			if err := proto.Unmarshal(contents, &pb); err != nil {
				t.Fatal(err)
			}
			if !c.trait(pb.GetGraph()) {
				t.Fatalf("the export lacks the trait under test")
			}
			data, shape := testutil.ReadNPY(t, filepath.Join(dir, c.name+"_input.npy"))
			if err := rawONNXGoMLX(t, contents, shape[0]); err == nil || !strings.Contains(err.Error(), c.rawErr) {
				t.Fatalf("onnx-gomlx without the rewrite: %v, want an error with %q", err, c.rawErr)
			}

			m, err := models.LoadONNX(path)
			if err != nil {
				t.Fatal(err)
			}
			if in := m.Input(); in.Channels != 3 || in.Layout != models.NCHW {
				t.Errorf("input %+v", in)
			}
			if err := m.SetSize(7, 9); err == nil || !strings.Contains(err.Error(), "its file fixes the size") {
				t.Errorf("SetSize on a fixed-size model: %v", err)
			}
			if m.Input().Batch != c.chunk {
				t.Errorf("Input().Batch = %d, want %d (rewrites %q)", m.Input().Batch, c.chunk, m.Rewrites())
			}
			if len(m.Rewrites()) == 0 {
				t.Error("Rewrites() is empty")
			}
			t.Logf("rewrites: %q", m.Rewrites())
			r := models.NewRunner(modeltest.Backend(t), m)
			defer r.Close()
			logits, _, err := r.Run(tensors.FromFlatDataAndDimensions(data, shape...))
			if err != nil {
				t.Fatal(err)
			}
			want, wantShape := testutil.ReadNPY(t, filepath.Join(dir, c.name+"_logits.npy"))
			if fmt.Sprint(logits.Shape().Dimensions) != fmt.Sprint(wantShape) {
				t.Fatalf("logits shaped %v, PyTorch's %v", logits.Shape().Dimensions, wantShape)
			}
			e := testutil.RelErr(tensors.MustCopyFlatData[float32](logits), want)
			t.Logf("logits differ from PyTorch's by %.3g relative", e)
			if e > 1e-4 {
				t.Errorf("logits differ from PyTorch's by %.3g relative", e)
			}

			// The gradient flows through the rewritten nodes (max-pool padding
			// included), in chunks of the batch the graph takes.
			exec, err := r.Exec("input-gradient", func(scope *model.Scope, in []*graph.Node) []*graph.Node {
				logits, _ := m.Forward(scope, in[0], nil)
				k := graph.Add(graph.Iota(logits.Graph(), logits.Shape(), 1), graph.OnePlus(graph.ScalarZero(logits.Graph(), logits.DType())))
				return []*graph.Node{graph.Gradient(graph.ReduceAllSum(graph.Mul(logits, k)), in[0])[0]}
			})
			if err != nil {
				t.Fatal(err)
			}
			chunk := shape[0]
			if b := m.Input().Batch; b > 0 {
				chunk = b
			}
			xs, err := models.SplitBatch(tensors.FromFlatDataAndDimensions(data, shape...), chunk)
			if err != nil {
				t.Fatal(err)
			}
			var grads []*tensors.Tensor
			for _, x := range xs {
				g, err := exec.Exec(x)
				if err != nil {
					t.Fatal(err)
				}
				grads = append(grads, g[0])
			}
			grad, err := models.JoinBatch(grads)
			if err != nil {
				t.Fatal(err)
			}
			wantGrad, _ := testutil.ReadNPY(t, filepath.Join(dir, c.name+"_grad.npy"))
			e = testutil.RelErr(tensors.MustCopyFlatData[float32](grad), wantGrad)
			t.Logf("input gradient differs from PyTorch's by %.3g relative", e)
			if e > 1e-4 {
				t.Errorf("input gradient differs from PyTorch's by %.3g relative", e)
			}
		})
	}

	// A model with dynamic height and width takes the size it is set to,
	// non-square included, and gives PyTorch's logits there.
	t.Run("any_size", func(t *testing.T) {
		m, err := models.LoadONNX(filepath.Join(dir, "any_size.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		if in := m.Input(); !in.AnySize || in.Height != models.AnySizeDefault || in.Width != models.AnySizeDefault {
			t.Fatalf("input %+v, want AnySize at %d", in, models.AnySizeDefault)
		}
		if err := m.SetSize(32, 40); err != nil {
			t.Fatal(err)
		}
		if l, err := models.FindLayer(m, "layer4"); err != nil || fmt.Sprint(l.Shape.Dimensions) != "[1 512 1 2]" {
			t.Errorf("layer4 at 32x40: %v, %v; want [1 512 1 2]", l.Shape.Dimensions, err)
		}
		data, shape := testutil.ReadNPY(t, filepath.Join(dir, "any_size_input.npy"))
		r := models.NewRunner(modeltest.Backend(t), m)
		defer r.Close()
		logits, _, err := r.Run(tensors.FromFlatDataAndDimensions(data, shape...))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := testutil.ReadNPY(t, filepath.Join(dir, "any_size_logits.npy"))
		if e := testutil.RelErr(tensors.MustCopyFlatData[float32](logits), want); e > 1e-4 {
			t.Errorf("logits at 32x40 differ from PyTorch's by %.3g relative", e)
		}
		if _, _, err := r.Run(tensors.FromFlatDataAndDimensions(make([]float32, 3*32*32), 1, 3, 32, 32)); err == nil {
			t.Error("a 32x32 batch ran at size 32x40")
		}
	})

	// A Dropout whose mask output is used is refused, with the reason.
	_, err := models.LoadONNX(filepath.Join(dir, "dropout_mask.onnx"))
	if err == nil || !strings.Contains(err.Error(), "mask output") {
		t.Errorf("LoadONNX(Dropout mask used) = %v, want the mask named", err)
	}
}

// rawONNXGoMLX is what loading did before the rewrites: onnx-gomlx on the
// file's bytes, one image input, for a batch of n, the whole graph built and
// the logits differentiated with respect to the input.
func rawONNXGoMLX(t *testing.T, contents []byte, n int) error {
	om, err := parser.Parse(contents)
	if err != nil {
		return err
	}
	names, inShapes := om.Inputs()
	if len(names) != 1 {
		return fmt.Errorf("the model has %d inputs", len(names))
	}
	store := model.NewStore()
	if err := om.VariablesToScope(store.RootScope()); err != nil {
		return err
	}
	dims := append([]int{n}, inShapes[0].Dimensions[1:]...)
	g := graph.NewGraph(modeltest.Backend(t), "raw")
	defer g.Finalize()
	return catch.Do(func() {
		x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, dims...))
		outs := om.CallGraph(store.RootScope(), g, map[string]*graph.Node{names[0]: x})
		graph.Gradient(graph.ReduceAllSum(outs[0]), x)
	})
}

func trailingEmptyInput(g *protos.GraphProto) bool {
	for _, n := range g.GetNode() {
		if in := n.GetInput(); len(in) > 0 && in[len(in)-1] == "" {
			return true
		}
	}
	return false
}

func fixedBatchOf(n int64) func(g *protos.GraphProto) bool {
	return func(g *protos.GraphProto) bool {
		dims := g.GetInput()[0].GetType().GetTensorType().GetShape().GetDim()
		return len(g.GetInput()) == 1 && len(dims) > 0 && dims[0].GetDimValue() == n
	}
}

func weightsAsInputs(g *protos.GraphProto) bool {
	weights := map[string]bool{}
	for _, w := range g.GetInitializer() {
		weights[w.GetName()] = true
	}
	n := 0
	for _, in := range g.GetInput() {
		if weights[in.GetName()] {
			n++
		}
	}
	return n > 0 && len(g.GetInput()) == n+1
}

func hasOp(op string) func(g *protos.GraphProto) bool {
	return func(g *protos.GraphProto) bool {
		for _, n := range g.GetNode() {
			if n.GetOpType() == op {
				return true
			}
		}
		return false
	}
}

// ceilPools checks for at least n pools with ceil_mode=1.
func ceilPools(n int) func(g *protos.GraphProto) bool {
	return func(g *protos.GraphProto) bool {
		found := 0
		for _, node := range g.GetNode() {
			for _, a := range node.GetAttribute() {
				if (node.GetOpType() == "MaxPool" || node.GetOpType() == "AveragePool") && a.GetName() == "ceil_mode" && a.GetI() == 1 {
					found++
				}
			}
		}
		return found >= n
	}
}
