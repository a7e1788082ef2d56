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
		err := ceilToPadding(n)
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

// Weights listed as graph inputs are dropped from the inputs; Dropout becomes
// the identity (a Cast to the input's type) of its data input.
func TestCompatGraphRewrites(t *testing.T) {
	g := &protos.GraphProto{
		Input:       []*protos.ValueInfoProto{{Name: "w"}, {Name: "image"}, {Name: "b"}},
		Initializer: []*protos.TensorProto{{Name: "w"}, {Name: "b"}, {Name: "ratio"}},
		Node: []*protos.NodeProto{
			{OpType: "Dropout", Input: []string{"image", "ratio"}, Output: []string{"d", "mask"}},
			{OpType: "Add", Input: []string{"d", "b"}, Output: []string{"out"}},
		},
		Output: []*protos.ValueInfoProto{{Name: "out"}},
	}
	dropInitializerInputs(g)
	if len(g.Input) != 1 || g.Input[0].GetName() != "image" {
		t.Errorf("inputs %v, want only image", g.Input)
	}
	if err := dropoutToIdentity(g); err != nil {
		t.Fatal(err)
	}
	if n := g.Node[0]; n.OpType != "Cast" || intAttr(n, "to", 0) != int64(protos.TensorProto_FLOAT) || fmt.Sprint(n.Input, n.Output) != "[image] [d]" {
		t.Errorf("Dropout rewritten as %v", n)
	}
}
