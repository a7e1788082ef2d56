package models

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute-onnx/support/protos"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Real exports use a few things onnx-gomlx v0.5.13 refuses or cannot
// differentiate although they have an exact equivalent it takes. Before
// parsing, the model is rewritten (each rewrite belongs upstream in
// onnx-gomlx; it is done here until it is there):
//
//   - IR < 4 (opset < 9) exports list every initializer also as a graph input;
//     those inputs are weights and are dropped from the input list.
//   - Dropout is the identity at inference (refused if its mask output is
//     read), and Identity nodes are folded away: GoMLX's Identity has no
//     gradient, and torch's exporter writes one for every initializer equal
//     to another (ConvNeXt at opset 17 has 108).
//   - Trailing empty input names, ONNX's way to omit an optional input
//     (Swin's Pad has one), are dropped, as if they were never written.
//   - Pad (opset < 11), Clip (< 11) and Slice (< 10) with their arguments as
//     attributes get them as constant inputs, the later form, which alone
//     onnx-gomlx reads: it fails on Pad ("index out of range", DenseNet and
//     Inception at opset 9) and silently drops Clip's bounds (MobileNetV2's
//     ReLU6 became the identity at opsets 7 and 9).
//   - A Slice that reverses a whole axis (step -1 from the end to torch's
//     "-INT64_MAX"), which torch writes for every F.pad, becomes a Gather:
//     onnx-gomlx clamps that end to -1, GoMLX reads -1 as the last index,
//     and the slice comes out empty, so the padding silently disappeared.
//   - MaxPool and AveragePool (count_include_pad=0) with ceil_mode=1 become
//     ceil_mode=0 with stride-1 more end padding per spatial axis, where
//     that is exact for every input size (see ceilToPadding).
//   - BatchNormalization's momentum, a training-only attribute, is dropped.
//   - A Resize of a map with one pixel (DeepLabV3's image pooling branch:
//     a global average pool, a 1×1 convolution, then an upsampling to the
//     feature map's size) becomes an Expand to the sizes asked for, exact
//     for every interpolation mode: GoMLX's interpolation cannot be
//     differentiated from a 1×1 source (its gradient's scatter is built
//     with spans larger than the axis).
//   - A fixed batch size on the image input (the model zoo's files declare
//     [1,3,224,224]) becomes dynamic, so onnx-gomlx takes any batch; the
//     loader then checks that the graph computes each image on its own at
//     batch 2, and otherwise runs batches in chunks of the declared size.
//
// compatRewrite says which rewrites ran, for `convlens layers -v`.

// needsCompat reports whether compatRewrite would change the model: a cheap
// look at the decoded nodes and at how many inputs the graph lists.
func needsCompat(contents []byte, nodes []*protos.NodeProto) bool {
	if len(onePixelResizes(nodes)) > 0 {
		return true
	}
	consts := constants(nodes)
	for _, n := range nodes {
		if _, ok := reversesAxis(n, consts); ok {
			return true
		}
		if _, ok := argumentInputs(n); ok {
			return true
		}
		if in := n.GetInput(); len(in) > 0 && in[len(in)-1] == "" {
			return true
		}
		switch n.GetOpType() {
		case "Dropout", "Identity":
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
		if num == 11 && typ == protowire.BytesType { // GraphProto.input
			inputs++
			v, _ := protowire.ConsumeBytes(b)
			var in protos.ValueInfoProto
			if proto.Unmarshal(v, &in) != nil || fixedBatch(&in) > 0 {
				return true
			}
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return true
		}
		b = b[n:]
	}
	return inputs > 1
}

// compatResult is what compatRewrite did.
type compatResult struct {
	contents []byte
	notes    []string // One line for each kind of rewrite that changed something.
	batch    int      // The batch size the file fixed, made dynamic; 0 if none.
}

// compatRewrite applies the rewrites above to pb and encodes it.
func compatRewrite(pb *protos.ModelProto) (compatResult, error) {
	g := pb.GetGraph()
	var notes []string
	note := func(n int, format string) {
		if n > 0 {
			notes = append(notes, fmt.Sprintf(format, n))
		}
	}
	note(dropInitializerInputs(g), "%d weights listed as graph inputs (IR < 4) are read as weights")
	dropouts, err := dropoutToIdentity(g)
	if err != nil {
		return compatResult{}, err
	}
	note(dropouts, "%d Dropout nodes are the identity (inference)")
	note(foldIdentities(g), "%d Identity nodes folded into their input")
	note(trimOmittedInputs(g), "%d nodes had trailing omitted (empty) inputs dropped")
	note(attrsToInputs(g), "%d Pad, Clip or Slice nodes of opsets before 10/11 given their attributes as inputs")
	note(reverseSlicesToGather(g), "%d axis-reversing Slice nodes (F.pad's) rewritten as Gather")
	note(broadcastResizes(g.GetNode()), "%d Resize nodes of one-pixel maps rewritten as Expand")
	var moments, ceils int
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "BatchNormalization":
			if slices.ContainsFunc(n.Attribute, isMomentum) {
				n.Attribute = slices.DeleteFunc(n.Attribute, isMomentum)
				moments++
			}
		case "MaxPool", "AveragePool":
			changed, err := ceilToPadding(n)
			if err != nil {
				return compatResult{}, err
			}
			if changed {
				ceils++
			}
		}
	}
	note(ceils, "%d ceil_mode pools rewritten as floor mode with end padding")
	note(moments, "%d BatchNormalization momentum attributes (training only) dropped")
	batch := 0
	if len(g.Input) == 1 {
		if batch = fixedBatch(g.Input[0]); batch > 0 {
			dim := g.Input[0].GetType().GetTensorType().GetShape().GetDim()[0]
			dim.Value = &protos.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		}
	}
	out, err := proto.Marshal(pb)
	if err != nil {
		return compatResult{}, fmt.Errorf("re-encoding ONNX: %w", err)
	}
	return compatResult{contents: out, notes: notes, batch: batch}, nil
}

// fixedBatch is the batch size an input's shape fixes on its first axis, or
// 0 if that axis is dynamic (or the shape is not a tensor's of rank ≥ 1).
func fixedBatch(in *protos.ValueInfoProto) int {
	dims := in.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) == 0 || dims[0].GetDimValue() <= 0 || dims[0].GetDimValue() > 1<<20 {
		return 0
	}
	return int(dims[0].GetDimValue())
}

// dropInitializerInputs removes the graph inputs that name an initializer:
// exporters before IR version 4 list every weight as an input too (so that
// it could be overridden), and onnx-gomlx would then ask for each one. It
// returns how many it removed.
func dropInitializerInputs(g *protos.GraphProto) int {
	weights := map[string]bool{}
	for _, t := range g.GetInitializer() {
		weights[t.GetName()] = true
	}
	before := len(g.Input)
	g.Input = slices.DeleteFunc(g.Input, func(v *protos.ValueInfoProto) bool { return weights[v.GetName()] })
	return before - len(g.Input)
}

// dropoutToIdentity turns every Dropout node into an Identity of its data
// input, which is what Dropout computes at inference (and whatever its
// training_mode, convlens only runs inference and its gradients);
// foldIdentities then removes it. Its mask output, all true at inference, is
// refused if anything reads it.
func dropoutToIdentity(g *protos.GraphProto) (int, error) {
	read := readNames(g)
	count := 0
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Dropout" || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			continue
		}
		if len(n.GetInput()) == 0 || len(n.GetOutput()) == 0 {
			return 0, fmt.Errorf("Dropout node %q has no input or output", nodeLabel(n))
		}
		if len(n.Output) > 1 && n.Output[1] != "" && read[n.Output[1]] {
			return 0, fmt.Errorf("Dropout node %q: its mask output %q is used, which convlens does not support (at inference Dropout is the identity and its mask all true; re-export without using the mask)", nodeLabel(n), n.Output[1])
		}
		n.OpType = "Identity"
		n.Input = n.Input[:1]
		n.Output = n.Output[:1]
		n.Attribute = nil
		count++
	}
	return count, nil
}

// readNames is the set of value names some node or the graph's output reads.
func readNames(g *protos.GraphProto) map[string]bool {
	read := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			read[in] = true
		}
	}
	for _, o := range g.GetOutput() {
		read[o.GetName()] = true
	}
	return read
}

// foldIdentities removes the Identity nodes of the main graph: each reader
// of an Identity's output reads its input instead. An Identity whose output
// is a graph output renames the node that produces its input instead, so the
// output keeps its name; one that copies a graph input or a weight to a
// graph output is kept (nothing differentiates through it). It returns how
// many nodes it removed.
func foldIdentities(g *protos.GraphProto) int {
	outputs := map[string]bool{}
	for _, o := range g.GetOutput() {
		outputs[o.GetName()] = true
	}
	producer := map[string]*protos.NodeProto{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	rename := map[string]string{} // Value name → the name it is read by now.
	resolve := func(name string) string {
		for {
			to, ok := rename[name]
			if !ok {
				return name
			}
			name = to
		}
	}
	folded := map[*protos.NodeProto]bool{}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Identity" || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" || len(n.GetInput()) != 1 || len(n.GetOutput()) != 1 {
			continue
		}
		in, out := resolve(n.Input[0]), n.Output[0]
		switch p := producer[in]; {
		case !outputs[out]:
			rename[out] = in
		case p != nil && !outputs[in]:
			// The producer writes the graph output's name itself.
			for i, o := range p.Output {
				if o == in {
					p.Output[i] = out
				}
			}
			producer[out] = p
			rename[in] = out
		default:
			continue
		}
		folded[n] = true
	}
	if len(folded) == 0 {
		return 0
	}
	g.Node = slices.DeleteFunc(g.Node, func(n *protos.NodeProto) bool { return folded[n] })
	for _, n := range g.Node {
		for i, in := range n.Input {
			if in != "" {
				n.Input[i] = resolve(in)
			}
		}
	}
	return len(folded)
}

// trimOmittedInputs drops the empty names at the end of nodes' input lists:
// ONNX writes "" for an optional input left out, and a trailing one means the
// same as a shorter list, which is the only form onnx-gomlx reads.
func trimOmittedInputs(g *protos.GraphProto) int {
	count := 0
	for _, n := range g.GetNode() {
		k := len(n.Input)
		for k > 0 && n.Input[k-1] == "" {
			k--
		}
		if k < len(n.Input) {
			n.Input = n.Input[:k]
			count++
		}
	}
	return count
}

// attrsToInputs moves the arguments that Pad-2, Clip-6 and Slice-1 take as
// attributes to constant inputs, as Pad-11, Clip-11 and Slice-10 take them.
func attrsToInputs(g *protos.GraphProto) int {
	var out []*protos.NodeProto
	count := 0
	for _, n := range g.GetNode() {
		consts, ok := argumentInputs(n)
		if !ok {
			out = append(out, n)
			continue
		}
		inputs := n.Input[:1]
		for i, t := range consts {
			name := fmt.Sprintf("%s/convlens_arg_%d", nodeLabel(n), i)
			t.Name = ""
			out = append(out, &protos.NodeProto{OpType: "Constant", Output: []string{name},
				Attribute: []*protos.AttributeProto{{Name: "value", Type: protos.AttributeProto_TENSOR, T: t}}})
			inputs = append(inputs, name)
		}
		n.Input = inputs
		n.Attribute = slices.DeleteFunc(n.Attribute, func(a *protos.AttributeProto) bool {
			switch a.GetName() {
			case "pads", "value", "min", "max", "starts", "ends", "axes":
				return true
			}
			return false
		})
		out = append(out, n)
		count++
	}
	g.Node = out
	return count
}

// argumentInputs returns, for a node of the attribute form attrsToInputs
// rewrites, the constant tensors of its inputs after the first.
func argumentInputs(n *protos.NodeProto) ([]*protos.TensorProto, bool) {
	ints := func(v []int64) *protos.TensorProto {
		return &protos.TensorProto{DataType: int32(protos.TensorProto_INT64), Dims: []int64{int64(len(v))}, Int64Data: v}
	}
	float := func(v float32) *protos.TensorProto {
		return &protos.TensorProto{DataType: int32(protos.TensorProto_FLOAT), FloatData: []float32{v}}
	}
	floatAttr := func(name string, def float32) float32 {
		if a := findAttr(n, name); a != nil {
			return a.GetF()
		}
		return def
	}
	if len(n.GetInput()) != 1 || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
		return nil, false
	}
	switch n.GetOpType() {
	case "Pad":
		if pads := findAttr(n, "pads"); pads != nil {
			return []*protos.TensorProto{ints(pads.GetInts()), float(floatAttr("value", 0))}, true
		}
	case "Clip":
		if findAttr(n, "min") == nil && findAttr(n, "max") == nil {
			return nil, false
		}
		return []*protos.TensorProto{float(floatAttr("min", -math.MaxFloat32)), float(floatAttr("max", math.MaxFloat32))}, true
	case "Slice":
		starts, ends := findAttr(n, "starts"), findAttr(n, "ends")
		if starts == nil || ends == nil {
			return nil, false
		}
		axes := intsAttr(n, "axes")
		if axes == nil {
			for i := range starts.GetInts() {
				axes = append(axes, int64(i))
			}
		}
		return []*protos.TensorProto{ints(starts.GetInts()), ints(ends.GetInts()), ints(axes)}, true
	}
	return nil, false
}

// reverseSlicesToGather rewrites each Slice that reverses a whole axis
// (constant inputs: one axis, start -1, step -1, an end below any axis
// length; torch writes -(2^63-1)) as a Gather of that axis at the indices
// Range(len-1, -1, -1), len read with Shape: the same values, in ops
// onnx-gomlx converts right. Torch writes one for every F.pad from opset 11.
func reverseSlicesToGather(g *protos.GraphProto) int {
	consts := constants(g.GetNode())
	var out []*protos.NodeProto
	count := 0
	for _, n := range g.GetNode() {
		axis, ok := reversesAxis(n, consts)
		if !ok {
			out = append(out, n)
			continue
		}
		p := fmt.Sprintf("%s/convlens_reverse", nodeLabel(n))
		scalar := func(name string, v int64) *protos.NodeProto {
			return &protos.NodeProto{OpType: "Constant", Output: []string{p + name}, Attribute: []*protos.AttributeProto{{
				Name: "value", Type: protos.AttributeProto_TENSOR,
				T: &protos.TensorProto{DataType: int32(protos.TensorProto_INT64), Int64Data: []int64{v}},
			}}}
		}
		node := func(op string, inputs []string, output string, attrs ...*protos.AttributeProto) *protos.NodeProto {
			return &protos.NodeProto{OpType: op, Name: p + output, Input: inputs, Output: []string{p + output}, Attribute: attrs}
		}
		gather := node("Gather", []string{n.Input[0], p + "/indices"}, "/gather",
			&protos.AttributeProto{Name: "axis", Type: protos.AttributeProto_INT, I: axis})
		gather.Name, gather.Output = n.GetName(), n.Output
		out = append(out, scalar("/axis", axis), scalar("/one", 1), scalar("/minus_one", -1),
			node("Shape", []string{n.Input[0]}, "/shape"),
			node("Gather", []string{p + "/shape", p + "/axis"}, "/len"),
			node("Sub", []string{p + "/len", p + "/one"}, "/last"),
			node("Range", []string{p + "/last", p + "/minus_one", p + "/minus_one"}, "/indices"),
			gather)
		count++
	}
	g.Node = out
	return count
}

// onePixelResizes returns the Resize nodes, with sizes given, whose input
// is a map of one pixel ([N,C,1,1]): the output of a global pool, or of a
// ReduceMean or ReduceMax over both spatial axes keeping them, carried
// through element-wise ops of one input, BatchNormalization, and
// convolutions with 1×1 kernels and no padding.
func onePixelResizes(nodes []*protos.NodeProto) []*protos.NodeProto {
	onePixel := map[string]bool{}
	var found []*protos.NodeProto
	for _, n := range nodes {
		in, out := n.GetInput(), n.GetOutput()
		if len(out) == 0 {
			continue
		}
		from := len(in) > 0 && onePixel[in[0]]
		switch n.GetOpType() {
		case "GlobalAveragePool", "GlobalMaxPool":
			onePixel[out[0]] = true
		case "ReduceMean", "ReduceMax":
			axes := intsAttr(n, "axes")
			slices.Sort(axes)
			onePixel[out[0]] = intAttr(n, "keepdims", 1) == 1 && (slices.Equal(axes, []int64{2, 3}) || slices.Equal(axes, []int64{-2, -1}))
		case "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh", "Clip", "BatchNormalization":
			onePixel[out[0]] = from
		case "Conv":
			k, pads := intsAttr(n, "kernel_shape"), intsAttr(n, "pads")
			onePixel[out[0]] = from && slices.Equal(k, []int64{1, 1}) && !slices.ContainsFunc(pads, func(p int64) bool { return p != 0 }) &&
				stringAttr(n, "auto_pad", "NOTSET") == "NOTSET"
		case "Resize":
			if from && len(in) == 4 && in[3] != "" && stringAttr(n, "coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize" {
				found = append(found, n)
			}
		}
	}
	return found
}

// broadcastResizes rewrites the Resize nodes of onePixelResizes as Expand
// nodes to their sizes, and returns how many.
func broadcastResizes(nodes []*protos.NodeProto) int {
	found := onePixelResizes(nodes)
	for _, n := range found {
		n.OpType, n.Input, n.Attribute = "Expand", []string{n.Input[0], n.Input[3]}, nil
	}
	return len(found)
}

// constants maps the outputs of Constant nodes to their values.
func constants(nodes []*protos.NodeProto) map[string]*protos.TensorProto {
	consts := map[string]*protos.TensorProto{}
	for _, n := range nodes {
		if n.GetOpType() == "Constant" && len(n.GetOutput()) == 1 {
			if a := findAttr(n, "value"); a != nil && a.GetT() != nil {
				consts[n.Output[0]] = a.GetT()
			}
		}
	}
	return consts
}

// reversesAxis reports whether n is a Slice reverseSlicesToGather rewrites,
// and the axis it reverses.
func reversesAxis(n *protos.NodeProto, consts map[string]*protos.TensorProto) (int64, bool) {
	in := n.GetInput()
	if n.GetOpType() != "Slice" || len(in) != 5 || len(n.GetOutput()) != 1 {
		return 0, false
	}
	ints := func(name string) []int64 {
		t := consts[name]
		if t == nil || t.GetDataType() != int32(protos.TensorProto_INT64) {
			return nil
		}
		if len(t.GetInt64Data()) > 0 {
			return t.GetInt64Data()
		}
		raw := t.GetRawData()
		v := make([]int64, len(raw)/8)
		for i := range v {
			v[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return v
	}
	starts, ends, axes, steps := ints(in[1]), ints(in[2]), ints(in[3]), ints(in[4])
	if len(starts) != 1 || len(ends) != 1 || len(axes) != 1 || len(steps) != 1 ||
		starts[0] != -1 || steps[0] != -1 || ends[0] > math.MinInt32 {
		return 0, false
	}
	return axes[0], true
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
func ceilToPadding(n *protos.NodeProto) (changed bool, err error) {
	if intAttr(n, "ceil_mode", 0) == 0 {
		return false, nil
	}
	op := n.GetOpType()
	if a := stringAttr(n, "auto_pad", "NOTSET"); a != "NOTSET" {
		return false, nil // Left to onnx-gomlx, which refuses auto_pad.
	}
	if op == "AveragePool" && intAttr(n, "count_include_pad", 0) != 0 {
		return false, fmt.Errorf("%s node %q: ceil_mode=1 with count_include_pad=1 is not supported (the padding counted differs from ceil mode's extra cells)", op, nodeLabel(n))
	}
	kernel := intsAttr(n, "kernel_shape")
	rank := len(kernel)
	if rank == 0 {
		return false, fmt.Errorf("%s node %q has no kernel_shape", op, nodeLabel(n))
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
		return false, fmt.Errorf("%s node %q: kernel_shape, strides, pads and dilations disagree on the number of spatial axes", op, nodeLabel(n))
	}
	pads = slices.Clone(pads)
	for i := range rank {
		k := dilations[i]*(kernel[i]-1) + 1
		if pads[rank+i]+strides[i] > k {
			return false, fmt.Errorf("%s node %q: ceil_mode=1 with end padding %d, stride %d and kernel %d is not supported: whether its last window is dropped depends on the input size", op, nodeLabel(n), pads[rank+i], strides[i], k)
		}
		pads[rank+i] += strides[i] - 1
	}
	n.Attribute = slices.DeleteFunc(n.Attribute, func(a *protos.AttributeProto) bool {
		return a.GetName() == "ceil_mode" || a.GetName() == "pads"
	})
	n.Attribute = append(n.Attribute, &protos.AttributeProto{Name: "pads", Type: protos.AttributeProto_INTS, Ints: pads})
	return true, nil
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
