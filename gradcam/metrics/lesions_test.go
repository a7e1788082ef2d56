package metrics_test

import (
	"testing"

	"github.com/convlens/convlens/datasets/lesiondata"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// On the lesion model, whose evidence is known to lie in the lesion, ROAD
// separates Grad-CAM from random maps by a wide margin: removing the pixels
// Grad-CAM ranks first destroys the score, removing those it ranks last does
// not (measured gap 0.62; random maps about 0).
func TestMetricsSeparateGradCAMFromRandomOnLesions(t *testing.T) {
	m, err := embedded.Lesions()
	if err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(modeltest.Backend(t), m)
	const n = 12
	set := lesiondata.HeldOut(lesiondata.Standard())
	in := m.Input()
	size := in.Height * in.Width * in.Channels
	data := make([]float32, 0, n*size)
	for i := 0; len(data) < n*size; i++ {
		if set.Class(i) == lesiondata.NoLesion {
			continue // no lesion, no known evidence
		}
		px := make([]float32, size)
		set.Sample(i).Float32(px)
		data = append(data, px...)
	}
	x := tensors.FromFlatDataAndDimensions(data, in.Shape(n)...)
	cam, err := gradcam.New(r, embedded.LesionsGradCAMLayer).Done()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cam.Explain(x, gradcam.Top(1))
	if err != nil {
		t.Fatal(err)
	}
	maps, classes, err := metrics.FromResult(res, 0)
	if err != nil {
		t.Fatal(err)
	}
	random, err := metrics.RandomMaps(n, res.Height, res.Width, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Pixels are removed by ROAD's imputation from their neighbours: the
	// lesion model has never seen a black (or any constant) hole, and any
	// such hole, wherever it is, flips its decision at once.
	e, err := metrics.New(r, metrics.Options{Percentiles: []float64{10, 20, 30, 40}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	road, err := e.ROAD(x, maps, classes)
	if err != nil {
		t.Fatal(err)
	}
	roadRandom, err := e.ROAD(x, random, classes)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ROAD gap: Grad-CAM %.3f (MoRF %.2f, LeRF %.2f), random %.3f", road.Gap, road.MeanMoRF, road.MeanLeRF, roadRandom.Gap)
	if road.Gap < roadRandom.Gap+0.3 {
		t.Errorf("ROAD gap %.3f is not well above the random maps' %.3f", road.Gap, roadRandom.Gap)
	}
}
