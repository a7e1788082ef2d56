package featuremaps_test

import (
	"fmt"
	"log"

	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/backend"
	"github.com/gomlx/gomlx/core/tensors"
)

// Extract runs a batch once and returns any layers' activations, channels
// first; Tiles lays one image's channels out for a filter grid. The tiny
// CNN's layer1 has 16 channels of 16x16 (its manifest), and the batch is the
// fixture's three images.
func ExampleExtract() {
	b, err := backend.New("go")
	if err != nil {
		log.Fatal(err)
	}
	m, err := models.LoadONNX("../testdata/tinycnn/model.onnx")
	if err != nil {
		log.Fatal(err)
	}
	data, shape, err := npy.ReadFloat32("../testdata/tinycnn/input.npy")
	if err != nil {
		log.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions(data, shape...)
	acts, err := featuremaps.Extract(models.NewRunner(b, m), x, "/layer1/layer1.0/relu_1/Relu_output_0")
	if err != nil {
		log.Fatal(err)
	}
	fm := acts.Maps[0]
	fmt.Println(fm.N, fm.C, fm.H, fm.W)
	tiles, err := fm.Tiles(0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(tiles.Maps), tiles.Labels[15])
	fmt.Println(tiles.Title)
	// Output:
	// 3 16 16 16
	// 16 15
	// /layer1/layer1.0/relu_1/Relu_output_0: 16 channels of 16x16, image 0
}
