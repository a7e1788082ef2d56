package embedded

import (
	"fmt"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// MNISTName is the name of the embedded MNIST model.
const MNISTName = "mnist"

// MNISTInput is what the MNIST model takes: grey 28x28 digits, channels-last,
// pixels in [0,1] with white (1) ink on a black (0) background, as in MNIST.
var MNISTInput = models.Input{Layout: models.NHWC, Channels: 1, Height: 28, Width: 28, Normalization: models.Identity}

// MNISTLabels are the class names of the MNIST model: "0" to "9".
func MNISTLabels() []string {
	return []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
}

// The MNIST network, layer by layer (shapes for a batch of one):
//
//	conv1  3x3 conv, 1->16, same padding   [1 28 28 16]
//	relu1                                  [1 28 28 16]
//	pool1  2x2 max-pool, stride 2          [1 14 14 16]
//	conv2  3x3 conv, 16->32, same padding  [1 14 14 32]
//	relu2                                  [1 14 14 32]
//	pool2  2x2 max-pool, stride 2          [1 7 7 32]
//	conv3  3x3 conv, 32->64, same padding  [1 7 7 64]
//	relu3                                  [1 7 7 64]
//	logits dense, 7*7*64 -> 10             [1 10]
//
// Its variables, each stored in one file (see [LoadMNIST]). Convolution
// kernels are laid out [height, width, in, out], as GoMLX's
// layers.Convolution; the dense weights [in, out], with the input flattened
// from relu3 in (row, column, channel) order.
var mnistVariables = []weight{
	{"conv1", "weights", []int{3, 3, 1, 16}},
	{"conv1", "biases", []int{16}},
	{"conv2", "weights", []int{3, 3, 16, 32}},
	{"conv2", "biases", []int{32}},
	{"conv3", "weights", []int{3, 3, 32, 64}},
	{"conv3", "biases", []int{64}},
	{"logits", "weights", []int{7 * 7 * 64, 10}},
	{"logits", "biases", []int{10}},
}

// MNISTForward is the MNIST network as a [models.ForwardFunc]: x is a batch shaped
// [N, 28, 28, 1] (see [MNISTInput]) and the result the logits, [N, 10]. Its
// variables are created in scope with GoMLX's default (He) initialiser when
// absent, which is how training starts; [MNIST] fills them from the embedded
// weights instead.
//
// The convolutions are written as im2col (shifted slices concatenated along
// the channels, then one matrix multiply), which the pure-Go backend runs
// several times faster than its direct convolution, forwards and backwards.
func MNISTForward(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
	x = tap("conv1", conv3x3(scope.In("conv1"), x, 16, 1))
	x = tap("relu1", activation.Relu(x))
	x = tap("pool1", mnistMaxPool2x2(x))
	x = tap("conv2", conv3x3(scope.In("conv2"), x, 32, 1))
	x = tap("relu2", activation.Relu(x))
	x = tap("pool2", mnistMaxPool2x2(x))
	x = tap("conv3", conv3x3(scope.In("conv3"), x, 64, 1))
	x = tap("relu3", activation.Relu(x))
	x = graph.Reshape(x, x.Shape().Dimensions[0], -1)
	return tap("logits", mnistDense(scope.In("logits"), x, 10))
}

// conv3x3 is a 3x3 convolution with zero padding of one pixel, the given
// stride and a bias, over x shaped [N, H, W, C], as im2col: the nine shifted
// (strided) windows of the padded input are concatenated into [N, H', W', 9C],
// in kernel order (dy, dx, c), and multiplied by the kernel reshaped to
// [9C, out]. With stride 1 the output keeps the input's size ("same").
func conv3x3(scope *model.Scope, x *graph.Node, out, stride int) *graph.Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	if len(dims) != 4 {
		panic(fmt.Errorf("conv3x3: input shaped %v, want [N H W C]", dims))
	}
	n, h, w, c := dims[0], dims[1], dims[2], dims[3]
	oh, ow := (h-1)/stride+1, (w-1)/stride+1
	kernel := scope.VariableWithShape("weights", shapes.Make(dtypes.Float32, 3, 3, c, out)).NodeValue(g)
	bias := scope.VariableWithShape("biases", shapes.Make(dtypes.Float32, out)).NodeValue(g)
	padded := graph.Pad(x, graph.ScalarZero(g, x.DType()),
		compute.PadAxis{}, compute.PadAxis{Start: 1, End: 1}, compute.PadAxis{Start: 1, End: 1}, compute.PadAxis{})
	windows := make([]*graph.Node, 0, 9)
	for dy := range 3 {
		for dx := range 3 {
			windows = append(windows, graph.Slice(padded, graph.AxisRange(),
				graph.AxisRange(dy, dy+(oh-1)*stride+1).Stride(stride),
				graph.AxisRange(dx, dx+(ow-1)*stride+1).Stride(stride), graph.AxisRange()))
		}
	}
	cols := graph.Reshape(graph.Concatenate(windows, -1), n*oh*ow, 9*c)
	y := graph.MatMul(cols, graph.Reshape(kernel, 9*c, out))
	y = graph.Add(y, graph.ExpandLeftToRank(bias, 2))
	return graph.Reshape(y, n, oh, ow, out)
}

// mnistMaxPool2x2 takes the maximum of each 2x2 block of x, shaped [N, H, W, C]
// with even H and W.
func mnistMaxPool2x2(x *graph.Node) *graph.Node {
	d := x.Shape().Dimensions
	return graph.ReduceMax(graph.Reshape(x, d[0], d[1]/2, 2, d[2]/2, 2, d[3]), 2, 4)
}

// mnistDense is x·W + b for x shaped [N, in].
func mnistDense(scope *model.Scope, x *graph.Node, out int) *graph.Node {
	g := x.Graph()
	in := x.Shape().Dimensions[1]
	w := scope.VariableWithShape("weights", shapes.Make(dtypes.Float32, in, out)).NodeValue(g)
	b := scope.VariableWithShape("biases", shapes.Make(dtypes.Float32, out)).NodeValue(g)
	return graph.Add(graph.MatMul(x, w), graph.ExpandLeftToRank(b, 2))
}
