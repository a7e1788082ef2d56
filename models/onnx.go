package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/onnx-gomlx/onnx"
	"github.com/gomlx/onnx-gomlx/onnx/parser"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ONNX is a [Model] read from an ONNX file.
type ONNX struct {
	name     string
	checksum string
	onnx     onnx.Model
	store    *model.Store
	input    Input
	inName   string
	logits   string
	labels   []string
	layers   []Layer
	rewrites []string
	chunk    int                 // When > 0, the graph only takes batches of this size.
	nodes    []*protos.NodeProto // The graph's nodes, to list the layers again at another size.
}

// LoadONNX reads an ONNX classifier with a single image input. Its input name,
// layout and size are read from the file; its preprocessing defaults to
// [ImageNet] normalisation, which [ONNX.SetNormalization] changes.
//
// Every node is converted once while loading, so a model that uses an ONNX op
// onnx-gomlx does not support fails here, with the op named.
func LoadONNX(path string) (*ONNX, error) {
	contents, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading model: %w", err)
	}
	m, err := ParseONNX(path, contents)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	return m, nil
}

// ParseONNX is [LoadONNX] of contents already read from path (a download checked
// against its hash, say): path names the model and is where external weights
// are looked for.
func ParseONNX(path string, contents []byte) (*ONNX, error) {
	nodes, err := graphNodes(contents)
	if err != nil {
		return nil, errors.New("not a readable ONNX file (corrupt or not ONNX); re-export it with torch.onnx.export")
	}
	sum := sha256.Sum256(contents)
	weights := &selfReader{dir: filepath.Dir(path), data: contents}
	defer weights.release()
	if contents, err = externalizeWeights(contents, nodes); err != nil {
		return nil, fmt.Errorf("reading weights: %w", err)
	}
	// The weights are external now, so decoding the whole model is cheap.
	var pb protos.ModelProto
	if err := proto.Unmarshal(contents, &pb); err != nil {
		return nil, errors.New("not a readable ONNX file (corrupt or not ONNX); re-export it with torch.onnx.export")
	}
	if err := validateGraph(pb.GetGraph(), filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("invalid ONNX model: %w", err)
	}
	var fixed compatResult
	if needsCompat(contents, nodes) { // See onnx_compat.go.
		if fixed, err = compatRewrite(&pb); err != nil {
			return nil, err
		}
		contents, nodes = fixed.contents, pb.GetGraph().GetNode()
	}
	om, err := parser.Parse(contents)
	if err != nil {
		return nil, fmt.Errorf("parsing ONNX: %w", err)
	}
	m := &ONNX{
		name:     strings.TrimSuffix(baseName(path), ".onnx"),
		checksum: hex.EncodeToString(sum[:]),
		onnx:     om.WithExternalDataReader(weights),
		store:    model.NewStore(),
		rewrites: fixed.notes,
	}
	names, inShapes := om.Inputs()
	if len(names) != 1 {
		return nil, fmt.Errorf("the model has %d inputs %q; convlens takes models with one image input", len(names), names)
	}
	m.inName = names[0]
	if m.input, err = inputFromShape(inShapes[0].Dimensions); err != nil {
		return nil, fmt.Errorf("input %q: %w", m.inName, err)
	}
	outNames, _ := om.Outputs()
	if len(outNames) == 0 {
		return nil, errors.New("the model has no outputs")
	}
	m.logits = outNames[0]
	if err := om.VariablesToScope(m.store.RootScope()); err != nil {
		return nil, fmt.Errorf("reading weights: %w", err)
	}
	m.nodes = nodes
	if m.layers, err = m.inferLayers(nodes); err != nil {
		return nil, err
	}
	if fixed.batch > 0 {
		m.checkBatches(fixed.batch)
	}
	return m, nil
}

// checkBatches decides how a model whose file fixed the batch at declared
// runs other batches. The input was made dynamic (compatRewrite); if the
// graph then builds for twice the declared batch and every layer that had
// the declared batch on its first axis doubles it, while every other layer
// keeps its shape, images are computed apart and any batch runs whole. A
// graph that reshapes to the declared batch (a Reshape to [1,-1], say) fails
// that test, and its batches run in chunks of the declared size.
func (m *ONNX) checkBatches(declared int) {
	fn := func(scope *model.Scope, x *graph.Node) []*graph.Node {
		names := make([]string, len(m.layers))
		for i, l := range m.layers {
			names[i] = l.Name
		}
		return m.onnx.CallGraph(scope, x.Graph(), map[string]*graph.Node{m.inName: x}, names...)
	}
	one, err1 := buildShapes(m.store, m.input.Shape(declared), fn)
	two, err2 := buildShapes(m.store, m.input.Shape(2*declared), fn)
	whole := err1 == nil && err2 == nil
	for i := 0; whole && i < len(one); i++ {
		want := slices.Clone(one[i].Dimensions)
		if len(want) > 0 && want[0] == declared {
			want[0] = 2 * declared
		}
		whole = one[i].DType == two[i].DType && slices.Equal(two[i].Dimensions, want)
	}
	if whole {
		m.rewrites = append(m.rewrites, fmt.Sprintf("the file fixes the batch at %d; the graph computes each image apart, so any batch runs whole", declared))
		return
	}
	m.chunk = declared
	m.input.Batch = declared
	m.rewrites = append(m.rewrites, fmt.Sprintf("the file fixes the batch at %d and the graph depends on it; batches run in chunks of %d", declared, declared))
}

// graphNodes decodes the nodes of an ONNX model's graph and skips the rest,
// its weights above all, so that a large model is not held twice in memory.
func graphNodes(contents []byte) ([]*protos.NodeProto, error) {
	graph, err := field(contents, 7) // ModelProto.graph
	if err != nil || graph == nil {
		return nil, errors.New("no graph")
	}
	var nodes []*protos.NodeProto
	for b := graph; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType { // GraphProto.node
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			node := &protos.NodeProto{}
			if err := proto.Unmarshal(v, node); err != nil {
				return nil, err
			}
			nodes = append(nodes, node)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nodes, nil
}

// field returns the bytes of the last length-delimited field num of a message.
func field(msg []byte, num protowire.Number) ([]byte, error) {
	var found []byte
	for len(msg) > 0 {
		n0, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
		if n0 == num && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			found, msg = v, msg[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(n0, typ, msg); n < 0 {
			return nil, protowire.ParseError(n)
		}
		msg = msg[n:]
	}
	return found, nil
}

// isMomentum reports whether a is BatchNormalization's momentum attribute.
// PyTorch writes one on every BatchNorm it cannot fold (DenseNet's, for one);
// it only matters for training, but onnx-gomlx refuses it.
func isMomentum(a *protos.AttributeProto) bool { return a.GetName() == "momentum" }

func baseName(path string) string {
	if i := strings.LastIndexAny(path, `/\`); i >= 0 {
		return path[i+1:]
	}
	return path
}

// AnySizeDefault is the side of the square images a model that takes any
// size is given until [ONNX.SetSize] says otherwise: ImageNet's 224.
const AnySizeDefault = 224

// inputFromShape reads layout and size from an ONNX input shape; dynamic axes are negative.
func inputFromShape(dims []int) (Input, error) {
	if len(dims) != 4 {
		return Input{}, fmt.Errorf("shape %v is not an image batch [N,C,H,W] or [N,H,W,C]", dims)
	}
	in := Input{Layout: NCHW, Channels: dims[1], Height: dims[2], Width: dims[3], Normalization: ImageNet}
	if (dims[1] != 1 && dims[1] != 3) && (dims[3] == 1 || dims[3] == 3) {
		in = Input{Layout: NHWC, Channels: dims[3], Height: dims[1], Width: dims[2], Normalization: ImageNet}
	}
	if in.Channels != 1 && in.Channels != 3 {
		return Input{}, fmt.Errorf("shape %v has %d channels; convlens takes grey (1) or RGB (3) images", dims, in.Channels)
	}
	switch {
	case in.Height <= 0 && in.Width <= 0:
		in.AnySize, in.Height, in.Width = true, AnySizeDefault, AnySizeDefault
	case in.Height <= 0 || in.Width <= 0:
		return Input{}, fmt.Errorf("shape %v has a dynamic height or width but not both; export the model with both dynamic or both fixed", dims)
	}
	return in, nil
}

// inferLayers builds the whole graph once for a batch of one, on the pure-Go
// backend and without running it, to learn each node's output shape. Building
// it also proves every op converts.
func (m *ONNX) inferLayers(nodes []*protos.NodeProto) ([]Layer, error) {
	var layers []Layer
	for _, n := range nodes {
		if n.GetOpType() == "Constant" || len(n.GetOutput()) == 0 || n.GetOutput()[0] == "" {
			continue
		}
		layers = append(layers, Layer{Name: n.GetOutput()[0], Op: n.GetOpType(), Module: modulePath(n.GetName())})
	}
	names := make([]string, len(layers))
	for i, l := range layers {
		names[i] = l.Name
	}
	outs, err := buildShapes(m.store, m.input.Shape(1), func(scope *model.Scope, x *graph.Node) []*graph.Node {
		return m.onnx.CallGraph(scope, x.Graph(), map[string]*graph.Node{m.inName: x}, names...)
	})
	if err != nil {
		return nil, fmt.Errorf("converting the ONNX graph: %w", err)
	}
	for i := range layers {
		layers[i].Shape = outs[i]
	}
	mixed := reachesMixing(nodes, m.inName)
	for i, l := range layers {
		if g, ok := l.Grid(m.input.Layout); ok && g.Tokens {
			layers[i].Local = !mixed[l.Name]
		}
	}
	return layers, nil
}

// reachesMixing returns the values from which a path to the output crosses
// an op that combines positions: a product of two values computed from the
// input (attention), a convolution or pool, a reduction but over the last
// axis. A token
// layer with no such path reaches the output through per-token ops only,
// which in a ViT means through the class token alone. Nodes are in ONNX's
// topological order, so one pass from the end settles every value.
func reachesMixing(nodes []*protos.NodeProto, input string) map[string]bool {
	data := map[string]bool{input: true} // Values computed from the input.
	for _, n := range nodes {
		for _, in := range n.GetInput() {
			if data[in] {
				for _, o := range n.GetOutput() {
					data[o] = true
				}
				break
			}
		}
	}
	reach := map[string]bool{}
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		mixes := false
		switch n.GetOpType() {
		case "MatMul", "Gemm", "Einsum":
			dataIn := 0
			for _, in := range n.GetInput() {
				if data[in] {
					dataIn++
				}
			}
			mixes = dataIn >= 2
		case "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool":
			mixes = true
		case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp":
			// Over the last axis alone (a LayerNorm written out) it is per token.
			axes := intsAttr(n, "axes")
			mixes = len(axes) != 1 || axes[0] != -1
		}
		for _, o := range n.GetOutput() {
			mixes = mixes || reach[o]
		}
		if mixes {
			for _, in := range n.GetInput() {
				reach[in] = true
			}
		}
	}
	return reach
}

// Name is the file name without its extension.
func (m *ONNX) Name() string { return m.name }

// Checksum is the SHA-256 of the ONNX file, identifying the exact weights in reports.
func (m *ONNX) Checksum() string { return m.checksum }

// Input describes the image tensor the model expects.
func (m *ONNX) Input() Input { return m.input }

// SetSize sets the image size of a model that takes any size
// ([Input.AnySize]; AnySizeDefault square until set): images are resized to
// it, batches must have it, and [ONNX.Layers] gives the shapes at it. A model
// whose file fixes its size refuses any other.
func (m *ONNX) SetSize(height, width int) error {
	in := m.input
	if height == in.Height && width == in.Width {
		return nil
	}
	if !in.AnySize {
		return fmt.Errorf("model %s takes %dx%d images only (its file fixes the size); they are resized to it", m.name, in.Width, in.Height)
	}
	if height < 1 || width < 1 || height > maxInputSide || width > maxInputSide {
		return fmt.Errorf("image size %dx%d is outside 1..%d", width, height, maxInputSide)
	}
	m.input.Height, m.input.Width = height, width
	layers, err := m.inferLayers(m.nodes)
	if err != nil {
		m.input = in
		return fmt.Errorf("model %s at %dx%d: %w", m.name, width, height, err)
	}
	m.layers = layers
	return nil
}

// SetNormalization changes the preprocessing normalisation (default [ImageNet]).
func (m *ONNX) SetNormalization(n Normalization) *ONNX {
	m.input.Normalization = n
	return m
}

// Labels returns the class names set with [ONNX.SetLabels], or nil.
func (m *ONNX) Labels() []string { return m.labels }

// SetLabels names the classes, indexed by logit.
func (m *ONNX) SetLabels(labels []string) *ONNX {
	m.labels = labels
	return m
}

// Rewrites says, one line each, how the file was changed while loading to
// take what onnx-gomlx refuses (weights listed as inputs, Dropout, Identity,
// ceil-mode pools...), each rewrite exact for inference; nil if none ran.
func (m *ONNX) Rewrites() []string { return m.rewrites }

// Layers lists every node output, in graph order.
func (m *ONNX) Layers() []Layer { return m.layers }

// Store holds the weights read from the file.
func (m *ONNX) Store() *model.Store { return m.store }

// Forward converts the ONNX graph, asking for the logits and the layers in
// one conversion so that they share a single forward pass.
func (m *ONNX) Forward(scope *model.Scope, x *graph.Node, layers []string) (*graph.Node, []*graph.Node) {
	if n := x.Shape().Dimensions[0]; m.chunk > 0 && n != m.chunk {
		panic(fmt.Errorf("model %s computes %d images at a time (its file fixes the batch), got %d: split the batch with models.SplitBatch", m.name, m.chunk, n))
	}
	outs := m.onnx.CallGraph(scope, x.Graph(), map[string]*graph.Node{m.inName: x}, append([]string{m.logits}, layers...)...)
	return outs[0], outs[1:]
}
