package models

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gomlx/compute-onnx/support/protos"
)

func poolNode(op string, attrs map[string][]int64) *protos.NodeProto {
	n := &protos.NodeProto{OpType: op, Name: "/pool", Input: []string{"x"}, Output: []string{"y"}}
	for name, v := range attrs {
		a := &protos.AttributeProto{Name: name, Type: protos.AttributeProto_INTS, Ints: v}
		if len(v) == 1 && (name == "ceil_mode" || name == "count_include_pad") {
			a = &protos.AttributeProto{Name: name, Type: protos.AttributeProto_INT, I: v[0]}
		}
		n.Attribute = append(n.Attribute, a)
	}
	return n
}

// Ceil mode becomes stride-1 more end padding where that is exact for every
// input size, and is refused where the last window could start in the padding.
func TestCeilToPadding(t *testing.T) {
	for _, c := range []struct {
		op    string
		attrs map[string][]int64
		want  string // The pads after rewriting, or the error's text.
	}{
		{"MaxPool", map[string][]int64{"ceil_mode": {1}, "kernel_shape": {3, 3}, "strides": {2, 2}}, "[0 0 1 1]"},
		{"MaxPool", map[string][]int64{"ceil_mode": {1}, "kernel_shape": {3, 2}, "strides": {3, 1}, "pads": {1, 0, 0, 1}}, "[1 0 2 1]"},
		{"AveragePool", map[string][]int64{"ceil_mode": {1}, "kernel_shape": {2, 2}, "strides": {2, 2}}, "[0 0 1 1]"},
		{"MaxPool", map[string][]int64{"ceil_mode": {1}, "kernel_shape": {2, 2}, "strides": {2, 2}, "pads": {1, 1, 1, 1}}, "depends on the input size"},
		{"MaxPool", map[string][]int64{"ceil_mode": {1}, "kernel_shape": {1, 1}, "strides": {2, 2}}, "depends on the input size"},
		{"AveragePool", map[string][]int64{"ceil_mode": {1}, "count_include_pad": {1}, "kernel_shape": {2, 2}, "strides": {2, 2}}, "count_include_pad=1"},
	} {
		n := poolNode(c.op, c.attrs)
		_, err := ceilToPadding(n)
		if err != nil {
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s %v: %v, want %q", c.op, c.attrs, err, c.want)
			}
			continue
		}
		if got := fmt.Sprint(intsAttr(n, "pads")); got != c.want || findAttr(n, "ceil_mode") != nil {
			t.Errorf("%s %v: pads %s, ceil_mode %v; want pads %s and no ceil_mode", c.op, c.attrs, got, findAttr(n, "ceil_mode"), c.want)
		}
	}
}

// Weights listed as graph inputs are dropped from the inputs; Dropout
// becomes an Identity, and Identity nodes are folded: their readers read the
// Identity's input, or, for a graph output, the producer writes its name.
func TestCompatGraphRewrites(t *testing.T) {
	g := &protos.GraphProto{
		Input:       []*protos.ValueInfoProto{{Name: "w"}, {Name: "image"}, {Name: "b"}},
		Initializer: []*protos.TensorProto{{Name: "w"}, {Name: "b"}, {Name: "ratio"}},
		Node: []*protos.NodeProto{
			{OpType: "Dropout", Input: []string{"image", "ratio"}, Output: []string{"d", "mask"}},
			{OpType: "Identity", Input: []string{"w"}, Output: []string{"w2"}},
			{OpType: "Identity", Input: []string{"w2"}, Output: []string{"w3"}},
			{OpType: "Conv", Input: []string{"d", "w3", ""}, Output: []string{"c"}},
			{OpType: "Add", Input: []string{"c", "b"}, Output: []string{"sum"}},
			{OpType: "Identity", Input: []string{"sum"}, Output: []string{"out"}},
			{OpType: "Relu", Input: []string{"sum"}, Output: []string{"r"}},
			{OpType: "Identity", Input: []string{"b"}, Output: []string{"bias_out"}},
		},
		Output: []*protos.ValueInfoProto{{Name: "out"}, {Name: "r"}, {Name: "bias_out"}},
	}
	if n := dropInitializerInputs(g); n != 2 || len(g.Input) != 1 || g.Input[0].GetName() != "image" {
		t.Errorf("dropped %d inputs, left %v; want 2, only image", n, g.Input)
	}
	if n, err := dropoutToIdentity(g); err != nil || n != 1 {
		t.Fatalf("dropoutToIdentity = %d, %v", n, err)
	}
	if n := foldIdentities(g); n != 4 {
		t.Errorf("folded %d Identity nodes, want 4", n)
	}
	if n := trimOmittedInputs(g); n != 1 {
		t.Errorf("trimmed %d nodes, want 1", n)
	}
	var got []string
	for _, n := range g.Node {
		got = append(got, fmt.Sprintf("%s%v%v", n.OpType, n.Input, n.Output))
	}
	// The Identity from a weight to a graph output stays: nothing to fold it into.
	want := "Conv[image w][c] Add[c b][out] Relu[out][r] Identity[b][bias_out]"
	if strings.Join(got, " ") != want {
		t.Errorf("rewritten graph\n %s\nwant\n %s", strings.Join(got, " "), want)
	}
}
