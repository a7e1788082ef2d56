package embedded

import (
	"fmt"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// Names of the embedded lesion models.
const (
	// LesionsName is the lesion classifier trained on images whose ruler
	// marking says nothing about the class.
	LesionsName = "lesions"
	// LesionsShortcutName is the same network trained on images where a
	// ruler marks every suspicious lesion and no benign one.
	LesionsShortcutName = "lesions-shortcut"
)

// LesionsInput is what the lesion models take: 128x128 RGB images,
// channels-last, pixels in [0,1] (the images of datasets/lesiondata).
var LesionsInput = models.Input{Layout: models.NHWC, Channels: 3, Height: 128, Width: 128, Normalization: models.Identity}

// LesionsLabels are the class names of the lesion models, by logit. Besides
// the two lesion classes, the models know skin without a lesion: trained on
// such images too, they cannot take skin, hair, rulers or vignetting as
// evidence for either lesion class, which keeps their Grad-CAM maps on the
// lesion.
func LesionsLabels() []string { return []string{"benign", "suspicious", "no lesion"} }

// LesionsGradCAMLayer is the layer Grad-CAM explains the lesion (and cell)
// models at: the last convolution's ReLU, 16x16 for a 128x128 input, each
// cell covering 8x8 pixels.
const LesionsGradCAMLayer = "relu4"

// smallCNN is the architecture of the lesion and blood-cell models: a 3x3
// convolution with stride 2, three 3x3 convolutions with stride 1, each
// followed by a ReLU, 2x2 max-pooling after the first two, global average
// pooling and a dense layer to the logits. For an input of HxW (multiples of
// 8) with widths c1..c4:
//
//	grey   RGB to luma, 0.299R + 0.587G + 0.114B   [N H W 1]   (grey models only)
//	conv1  3x3 conv, stride 2, in->c1              [N H/2 W/2 c1]
//	relu1, pool1                                   [N H/4 W/4 c1]
//	conv2  3x3 conv, c1->c2                        [N H/4 W/4 c2]
//	relu2, pool2                                   [N H/8 W/8 c2]
//	conv3  3x3 conv, c2->c3                        [N H/8 W/8 c3]
//	relu3                                          [N H/8 W/8 c3]
//	conv4  3x3 conv, c3->c4                        [N H/8 W/8 c4]
//	relu4                                          [N H/8 W/8 c4]
//	gap    mean over the spatial axes              [N c4]
//	logits dense, c4 -> classes                    [N classes]
//
// All convolutions pad with zeros ("same"). Pixels, in [0,1], are centred
// to (v − 0.5) × 4 before conv1. A relu4 position sees a 49x49 window of the
// input. Global average pooling makes the logits a mean over the positions
// of relu4 (16x16 for a 128x128 input, each position 8x8 pixels apart), so
// that the evidence Grad-CAM weighs there is spatial; nothing after relu4
// mixes positions but the mean. The stride-1 convolutions are the MNIST
// model's im2col ones ([MNISTForward]); so is the stride-2 one, taking every
// other window.
type smallCNN struct {
	widths  [4]int
	classes int
	grey    bool
}

// lumaWeights are the ITU-R BT.601 weights the grey models convert RGB with.
var lumaWeights = []float32{0.299, 0.587, 0.114}

func (a smallCNN) forward(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
	d := x.Shape().Dimensions
	if a.grey {
		w := graph.Const(x.Graph(), lumaWeights)
		x = tap("grey", graph.Reshape(graph.MatMul(graph.Reshape(x, -1, 3), graph.Reshape(w, 3, 1)), d[0], d[1], d[2], 1))
	}
	x = graph.MulScalar(graph.AddScalar(x, -0.5), 4)
	x = tap("conv1", conv3x3(scope.In("conv1"), x, a.widths[0], 2))
	x = tap("relu1", activation.Relu(x))
	x = tap("pool1", mnistMaxPool2x2(x))
	x = tap("conv2", conv3x3(scope.In("conv2"), x, a.widths[1], 1))
	x = tap("relu2", activation.Relu(x))
	x = tap("pool2", mnistMaxPool2x2(x))
	x = tap("conv3", conv3x3(scope.In("conv3"), x, a.widths[2], 1))
	x = tap("relu3", activation.Relu(x))
	x = tap("conv4", conv3x3(scope.In("conv4"), x, a.widths[3], 1))
	x = tap("relu4", activation.Relu(x))
	x = tap("gap", graph.ReduceMean(x, 1, 2))
	return tap("logits", mnistDense(scope.In("logits"), x, a.classes))
}

// variables lists the network's weights for an input with `in` channels.
func (a smallCNN) variables(in int) []weight {
	if a.grey {
		in = 1
	}
	var ws []weight
	for i, width := range a.widths {
		s := fmt.Sprintf("conv%d", i+1)
		ws = append(ws, weight{s, "weights", []int{3, 3, in, width}}, weight{s, "biases", []int{width}})
		in = width
	}
	return append(ws, weight{"logits", "weights", []int{in, a.classes}}, weight{"logits", "biases", []int{a.classes}})
}

// lesionsNet is the lesion models' network: 61,000 weights or so.
var lesionsNet = smallCNN{widths: [4]int{16, 32, 64, 64}, classes: 3}

var lesionsVariables = lesionsNet.variables(3)

// LesionsForward is the lesion network as a [models.ForwardFunc] (the architecture
// is documented on smallCNN in lesions.go): x is a batch shaped
// [N, 128, 128, 3] (see [LesionsInput]), the result the logits, [N, 3] (see [LesionsLabels]).
// Variables absent from scope are created with GoMLX's default initialiser,
// which is how training starts.
func LesionsForward(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
	return lesionsNet.forward(scope, x, tap)
}
