package gradcam_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/backend"
)

// The short path: from an ONNX file and an image to a saved overlay in five
// calls, with the layer found for you. The model is the committed tiny CNN
// (random weights, a ResNet-like stem and two stages); the layer chosen is
// the last one with spatial axes, the output of layer2 (the fixture's own
// manifest names it), and the map is at the model's 64x64 input size with
// values in [0, 1], its largest 1 up to the 1e-7 of the min-max denominator.
func Example() {
	b, err := backend.New("go") // backend.Default() picks XLA where it is installed
	if err != nil {
		log.Fatal(err)
	}
	m, err := models.LoadONNX("../testdata/tinycnn/model.onnx")
	if err != nil {
		log.Fatal(err)
	}
	img, err := models.LoadImage("../testdata/images/chelsea.png")
	if err != nil {
		log.Fatal(err)
	}
	res, err := gradcam.New(models.NewRunner(b, m)).ExplainImages(gradcam.Top(1), img)
	if err != nil {
		log.Fatal(err)
	}
	heat, err := res.Map(0, 0) // image 0, its first target
	if err != nil {
		log.Fatal(err)
	}
	out := filepath.Join(os.TempDir(), "convlens-example-cam.png")
	defer os.Remove(out)
	if err := display.Overlay(img, heat).Save(out); err != nil {
		log.Fatal(err)
	}

	_, hi := heat.MinMax()
	fmt.Println("layer:", res.Layers[0])
	fmt.Printf("map: %dx%d, max %.4f\n", heat.Width, heat.Height, hi)
	// Output:
	// layer: /layer2/layer2.0/relu_1/Relu_output_0
	// map: 64x64, max 1.0000
}

// The long path keeps a CAM for many batches and says what to compute: here
// HiResCAM at layer1 for class 3 of a preprocessed batch of two images. The
// raw maps are at the layer's resolution, 16x16 (the fixture's manifest).
func ExampleBuilder_Done() {
	b, err := backend.New("go")
	if err != nil {
		log.Fatal(err)
	}
	m, err := models.LoadONNX("../testdata/tinycnn/model.onnx")
	if err != nil {
		log.Fatal(err)
	}
	cam, err := gradcam.New(models.NewRunner(b, m), "/layer1/layer1.0/relu_1/Relu_output_0").
		Method(gradcam.HiResCAM).Done()
	if err != nil {
		log.Fatal(err)
	}
	img, err := models.LoadImage("../testdata/images/chelsea.png")
	if err != nil {
		log.Fatal(err)
	}
	x, err := m.Input().Tensor(img, img)
	if err != nil {
		log.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Class(3))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cam.Method().Name(), res.N, "images, classes", res.Classes)
	fmt.Printf("raw map at layer resolution: %dx%d\n", res.Raw[0].Width, res.Raw[0].Height)
	// Output:
	// hirescam 2 images, classes [3 3]
	// raw map at layer resolution: 16x16
}
