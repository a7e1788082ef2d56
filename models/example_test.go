package models_test

import (
	"fmt"
	"log"
	"math"

	"github.com/convlens/convlens/models"
)

// An ONNX model says what it takes and which layers it has; the layer a CAM
// is computed at by default is the last one with spatial axes. The committed
// tiny CNN takes NCHW 3x64x64 images (its manifest: input_shape [batch, 3,
// 64, 64]) and its last spatial layer is layer2's ReLU, 32 channels of 8x8.
func ExampleLoadONNX() {
	m, err := models.LoadONNX("../testdata/tinycnn/model.onnx")
	if err != nil {
		log.Fatal(err)
	}
	in := m.Input()
	fmt.Println(in.Layout, in.Shape(1))
	l, err := models.LastSpatialLayer(m)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Name, l.Shape.Dimensions)
	// Output:
	// NCHW [1 3 64 64]
	// /layer2/layer2.0/relu_1/Relu_output_0 [1 32 8 8]
}

// Softmax of logits 0 and ln 3 is 1/4 and 3/4, and adding a constant to
// every logit changes nothing; a NaN logit is an error.
func ExampleSoftmax() {
	for _, logits := range [][]float32{{0, 1.0986123}, {1000, 1001.0986123}, {0, float32(math.NaN())}} {
		p, err := models.Softmax(logits)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%.4f\n", p)
	}
	// Output:
	// [0.2500 0.7500]
	// [0.2500 0.7500]
	// models.Softmax: logit 1 of 2 is NaN: the model's output is not finite (check the input and the weights for NaN or Inf)
}

// A layer name with a typo is an error that names the closest layers, so
// the message alone fixes it: by edit distance, the intended name (2 edits)
// first, then the two names 4 edits away in graph order.
func ExampleFindLayer() {
	m, err := models.LoadONNX("../testdata/tinycnn/model.onnx")
	if err != nil {
		log.Fatal(err)
	}
	_, err = models.FindLayer(m, "/layer2/layer2.0/relu_1/Relu_output")
	fmt.Println(err)
	// Output:
	// model model has no layer "/layer2/layer2.0/relu_1/Relu_output"; closest: /layer2/layer2.0/relu_1/Relu_output_0, /layer1/layer1.0/relu_1/Relu_output_0, /layer2/layer2.0/relu/Relu_output_0 (list all with `convlens layers`)
}
