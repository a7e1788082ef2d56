package models

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute-onnx/support/protos"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Real exports use a few things onnx-gomlx v0.5.13 refuses although they have
// an exact equivalent it takes. Before parsing, the model is rewritten:
//
//   - IR < 4 (opset < 9) exports list every initializer also as a graph input;
//     those inputs are weights and are dropped from the input list.
//   - Dropout is the identity at inference: it becomes a no-op Cast (refused
//     if its mask output is read).
//   - MaxPool and AveragePool (count_include_pad=0) with ceil_mode=1 become
//     ceil_mode=0 with stride-1 more end padding per spatial axis, where
//     that is exact for every input size (see ceilToPadding).
//   - BatchNormalization's momentum, a training-only attribute, is dropped.

// needsCompat reports whether compatRewrite would change the model: a cheap
// look at the decoded nodes and at how many inputs the graph lists.
func needsCompat(contents []byte, nodes []*protos.NodeProto) bool {
	for _, n := range nodes {
		switch n.GetOpType() {
		case "Dropout":
			return true
		case "MaxPool", "AveragePool":
			if intAttr(n, "ceil_mode", 0) != 0 {
				return true
			}
		case "BatchNormalization":
			if slices.ContainsFunc(n.GetAttribute(), isMomentum) {
				return true
			}
		}
	}
	graph, err := field(contents, 7) // ModelProto.graph
	if err != nil {
		return true // Let the full decoding report it.
	}
	inputs := 0
	for b := graph; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return true
		}
		b = b[n:]
		if num == 11 { // GraphProto.input
			inputs++
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return true
		}
		b = b[n:]
	}
	return inputs > 1
}

// compatRewrite returns contents with the rewrites above applied.
func compatRewrite(contents []byte) ([]byte, error) {
	var pb protos.ModelProto
	if err := proto.Unmarshal(contents, &pb); err != nil {
		return nil, fmt.Errorf("decoding ONNX: %w", err)
	}
	g := pb.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("decoding ONNX: no graph")
	}
	dropInitializerInputs(g)
	if err := dropoutToIdentity(g); err != nil {
		return nil, err
	}
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "BatchNormalization":
			n.Attribute = slices.DeleteFunc(n.Attribute, isMomentum)
		case "MaxPool", "AveragePool":
			if err := ceilToPadding(n); err != nil {
				return nil, err
			}
		}
	}
	out, err := proto.Marshal(&pb)
	if err != nil {
		return nil, fmt.Errorf("re-encoding ONNX: %w", err)
	}
	return out, nil
}

// dropInitializerInputs removes the graph inputs that name an initializer:
// exporters before IR version 4 list every weight as an input too (so that
// it could be overridden), and onnx-gomlx would then ask for each one.
func dropInitializerInputs(g *protos.GraphProto) {
	weights := map[string]bool{}
	for _, t := range g.GetInitializer() {
		weights[t.GetName()] = true
	}
	g.Input = slices.DeleteFunc(g.Input, func(v *protos.ValueInfoProto) bool { return weights[v.GetName()] })
}

// dropoutToIdentity turns every Dropout node into the identity of its data
// input, which is what Dropout computes at inference (and whatever its
// training_mode, convlens only runs inference and its gradients). Its mask
// output, all true at inference, is refused if anything reads it.
//
// The identity is written as a Cast to the model's float type, which
// onnx-gomlx converts to its input node itself: ONNX Identity would become a
// GoMLX Identity node, which has no gradient (Grad-CAM through it fails). The
// float type is that of the graph's first input (dropInitializerInputs runs
// first, so the image); a Dropout on another type then fails to convert
// rather than giving wrong values.
func dropoutToIdentity(g *protos.GraphProto) error {
	read := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			read[in] = true
		}
	}
	for _, o := range g.GetOutput() {
		read[o.GetName()] = true
	}
	// The model's float type: that of its (image) input.
	dtype := int64(protos.TensorProto_FLOAT)
	if in := g.GetInput(); len(in) > 0 {
		if t := in[0].GetType().GetTensorType(); t != nil && t.GetElemType() != 0 {
			dtype = int64(t.GetElemType())
		}
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Dropout" || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			continue
		}
		if len(n.GetInput()) == 0 || len(n.GetOutput()) == 0 {
			return fmt.Errorf("Dropout node %q has no input or output", nodeLabel(n))
		}
		if len(n.Output) > 1 && n.Output[1] != "" && read[n.Output[1]] {
			return fmt.Errorf("Dropout node %q: its mask output %q is used, which convlens does not support (at inference Dropout is the identity and its mask all true; re-export without using the mask)", nodeLabel(n), n.Output[1])
		}
		n.OpType = "Cast"
		n.Input = n.Input[:1]
		n.Output = n.Output[:1]
		n.Attribute = []*protos.AttributeProto{{Name: "to", Type: protos.AttributeProto_INT, I: dtype}}
	}
	return nil
}

// ceilToPadding rewrites a MaxPool or AveragePool with ceil_mode=1 as the
// same pool with ceil_mode=0 and stride-1 more padding at the end of each
// spatial axis. With L the padded length and K the dilated kernel, floor
// mode then has floor((L+s-1-K)/s)+1 = ceil((L-K)/s)+1 windows: ceil mode's
// count, less the ONNX (and PyTorch) rule that drops a last window starting
// in the end padding. The added cells never change a window's result: padding
// is -inf for MaxPool and not counted by AveragePool with count_include_pad=0.
//
// That rule can only apply when the last window can start at or after the
// input's end, that is when end pad + stride > K: then the result depends on
// the input size, not known here, and the node is refused. PyTorch's ceil
// pools in torchvision (SqueezeNet, GoogLeNet: kernel 3, stride 2, no
// padding) are all of the exact kind.
func ceilToPadding(n *protos.NodeProto) error {
	if intAttr(n, "ceil_mode", 0) == 0 {
		return nil
	}
	op := n.GetOpType()
	if a := stringAttr(n, "auto_pad", "NOTSET"); a != "NOTSET" {
		return nil // Left to onnx-gomlx, which refuses auto_pad.
	}
	if op == "AveragePool" && intAttr(n, "count_include_pad", 0) != 0 {
		return fmt.Errorf("%s node %q: ceil_mode=1 with count_include_pad=1 is not supported (the padding counted differs from ceil mode's extra cells)", op, nodeLabel(n))
	}
	kernel := intsAttr(n, "kernel_shape")
	rank := len(kernel)
	if rank == 0 {
		return fmt.Errorf("%s node %q has no kernel_shape", op, nodeLabel(n))
	}
	strides, pads, dilations := intsAttr(n, "strides"), intsAttr(n, "pads"), intsAttr(n, "dilations")
	if strides == nil {
		strides = slices.Repeat([]int64{1}, rank)
	}
	if pads == nil {
		pads = make([]int64, 2*rank)
	}
	if dilations == nil {
		dilations = slices.Repeat([]int64{1}, rank)
	}
	if len(strides) != rank || len(pads) != 2*rank || len(dilations) != rank {
		return fmt.Errorf("%s node %q: kernel_shape, strides, pads and dilations disagree on the number of spatial axes", op, nodeLabel(n))
	}
	pads = slices.Clone(pads)
	for i := range rank {
		k := dilations[i]*(kernel[i]-1) + 1
		if pads[rank+i]+strides[i] > k {
			return fmt.Errorf("%s node %q: ceil_mode=1 with end padding %d, stride %d and kernel %d is not supported: whether its last window is dropped depends on the input size", op, nodeLabel(n), pads[rank+i], strides[i], k)
		}
		pads[rank+i] += strides[i] - 1
	}
	n.Attribute = slices.DeleteFunc(n.Attribute, func(a *protos.AttributeProto) bool {
		return a.GetName() == "ceil_mode" || a.GetName() == "pads"
	})
	n.Attribute = append(n.Attribute, &protos.AttributeProto{Name: "pads", Type: protos.AttributeProto_INTS, Ints: pads})
	return nil
}

func findAttr(n *protos.NodeProto, name string) *protos.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func intAttr(n *protos.NodeProto, name string, def int64) int64 {
	if a := findAttr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

func intsAttr(n *protos.NodeProto, name string) []int64 {
	if a := findAttr(n, name); a != nil {
		return a.GetInts()
	}
	return nil
}

func stringAttr(n *protos.NodeProto, name, def string) string {
	if a := findAttr(n, name); a != nil {
		return string(a.GetS())
	}
	return def
}

// nodeLabel names a node in messages: its name, or else its first output.
func nodeLabel(n *protos.NodeProto) string {
	if n.GetName() != "" || len(n.GetOutput()) == 0 {
		return n.GetName()
	}
	return n.GetOutput()[0]
}
