package gradcam_test

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
)

// On the pure-Go backend a batch is explained in concurrent parts, one per
// core. With three cores, a batch of 5 runs as parts of 2, 2 and 1 images:
// every image's maps, classes, scores and logits must be those of the image
// explained alone, in the batch's order, for a class chosen per image and
// for the top 2.
func TestBatchInConcurrentPartsEqualsImagesAlone(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	cam, err := gradcam.New(r, "relu").Done()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	const n, per = 5, 5 * 6 * 2
	data := make([]float32, n*per)
	for i := range data {
		data[i] = rng.Float32()*2 - 1
	}
	classes := []int{2, 0, 1, 1, 0}
	for _, target := range []struct {
		name   string
		all    gradcam.Target
		single func(i int) gradcam.Target
	}{
		{"class per image", gradcam.Class(classes...), func(i int) gradcam.Target { return gradcam.Class(classes[i]) }},
		{"top 2", gradcam.Top(2), func(int) gradcam.Target { return gradcam.Top(2) }},
	} {
		batch, err := cam.Explain(tensors.FromFlatDataAndDimensions(data, n, 5, 6, 2), target.all)
		if err != nil {
			t.Fatal(err)
		}
		if batch.N != n {
			t.Fatalf("%s: %d images explained, want %d", target.name, batch.N, n)
		}
		size, k := batch.Height*batch.Width, batch.K
		raw := batch.Raw[0].Height * batch.Raw[0].Width
		for i := range n {
			alone, err := cam.Explain(tensors.FromFlatDataAndDimensions(data[i*per:(i+1)*per], 1, 5, 6, 2), target.single(i))
			if err != nil {
				t.Fatal(err)
			}
			if got := batch.Classes[i*k : (i+1)*k]; !slices.Equal(got, alone.Classes) {
				t.Errorf("%s, image %d: classes %v in the batch, %v alone", target.name, i, got, alone.Classes)
			}
			for _, c := range []struct {
				what      string
				got, want []float32
			}{
				{"normalised maps", batch.Normalized[i*k*size : (i+1)*k*size], alone.Normalized},
				{"raw maps", batch.Raw[0].Values[i*k*raw : (i+1)*k*raw], alone.Raw[0].Values},
				{"scores", batch.Scores[i*k : (i+1)*k], alone.Scores},
				{"logits", batch.Logits[i*batch.NumClasses : (i+1)*batch.NumClasses], alone.Logits},
			} {
				if e := testutil.RelErr(c.got, c.want); e > 1e-6 {
					t.Errorf("%s, image %d: %s differ from the image's alone by %.3g relative", target.name, i, c.what, e)
				}
			}
		}
	}
}

// The perturbation and mask methods run their calls of the model side by
// side once a call is slow enough (tinycnn's are not): forced to, with 3
// points per call so that the last call of a layer overlaps the one before
// it, they must give the maps of one call at a time, which the PyTorch
// reference tests check.
func TestSideBySideCallsEqualOneAtATime(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	r, x, _ := loadTiny(t)
	for _, m := range []gradcam.Method{
		gradcam.ScoreCAM, gradcam.AblationCAM, gradcam.SSCAMMethod{Samples: 2},
		gradcam.OcclusionMethod{Window: 16, Stride: 12}, gradcam.RISEMethod{Masks: 20, Grid: 4, Keep: 0.5, Seed: 3},
	} {
		explain := func() *gradcam.Result {
			t.Helper()
			cam, err := gradcam.New(r).Method(m).PointsPerCall(3).Done()
			if err != nil {
				t.Fatal(err)
			}
			res, err := cam.Explain(x, gradcam.Top(2))
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		alone := explain()
		undo := gradcam.SideBySideAlways()
		sideBySide := explain()
		undo()
		if e := testutil.RelErr(sideBySide.Raw[0].Values, alone.Raw[0].Values); e > 1e-6 || len(alone.Raw[0].Values) == 0 {
			t.Errorf("%s: raw maps side by side differ from one call at a time by %.3g relative", m.Name(), e)
		}
		if !slices.Equal(sideBySide.Classes, alone.Classes) {
			t.Errorf("%s: classes %v side by side, %v one call at a time", m.Name(), sideBySide.Classes, alone.Classes)
		}
	}
}
