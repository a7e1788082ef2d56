package gradcam_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// tinyBatch is n images for TinyNative, every value v.
func filledBatch(n int, v float32) []float32 {
	data := make([]float32, n*5*6*2)
	for i := range data {
		data[i] = v
	}
	return data
}

// wantNonFinite checks that err is a NonFiniteError for image and what, and
// that its message names both.
func wantNonFinite(t *testing.T, err error, image int, what string) {
	t.Helper()
	var nf *gradcam.NonFiniteError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want a NonFiniteError", err)
	}
	if nf.Image != image || nf.What != what {
		t.Errorf("error for image %d, %s; want image %d, %s", nf.Image, nf.What, image, what)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "image ") || !strings.Contains(msg, "values of the "+what+" are not finite") {
		t.Errorf("message %q does not name the image and the %s", msg, what)
	}
}

// One NaN pixel used to give an all-NaN map for its image and a class
// chosen from NaN logits; every method now refuses it, naming the image.
func TestExplainRefusesNonFiniteInput(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		data := filledBatch(3, 0.5)
		data[2*5*6*2+7] = bad // image 2
		x := tensors.FromFlatDataAndDimensions(data, 3, 5, 6, 2)
		for _, m := range []gradcam.Method{gradcam.GradCAM, gradcam.ScoreCAM, gradcam.Saliency} {
			_, err := gradcam.New(r, "relu").Method(m).Explain(x, gradcam.Top(1))
			wantNonFinite(t, err, 2, "input")
			if err != nil && !strings.Contains(err.Error(), "1 of the 60 values") {
				t.Errorf("%s: %v does not count the bad values", m.Name(), err)
			}
		}
	}
}

// NaN weights make NaN logits from a finite input.
func TestExplainRefusesNaNWeights(t *testing.T) {
	dense := [][]float32{{1, -1, 0.5}, {0.2, float32(math.NaN()), -0.4}, {-0.6, 0.1, 0.9}, {0.7, 0.7, -0.2}}
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNativeWithDense(dense))
	x := tensors.FromFlatDataAndDimensions(filledBatch(2, 0.5), 2, 5, 6, 2)
	_, err := gradcam.New(r, "relu").Explain(x, gradcam.Class(0))
	wantNonFinite(t, err, 0, "logits")
}

// A score whose gradient is NaN though its value is finite (√0) gives NaN
// maps from finite logits.
func TestExplainRefusesNaNMap(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	x := tensors.FromFlatDataAndDimensions(filledBatch(1, 0.5), 1, 5, 6, 2)
	zero := gradcam.Score("sqrt0", func(logits *graph.Node) *graph.Node {
		l := graph.SliceAxis(logits, 1, graph.AxisElem(0))
		return graph.Sqrt(graph.Reshape(graph.Sub(l, l), 1))
	})
	_, err := gradcam.New(r, "relu").Explain(x, zero)
	wantNonFinite(t, err, 0, "map")
}

// overflowModel takes 4×4 grey images in batches of exactly batch (so
// Explain splits larger ones) and overflows to an infinite logit for inputs
// of about 1e10.
func overflowModel(batch int) *models.Native {
	forward := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		w := scope.VariableWithValue("w", []float32{1e30, 1}).ValueGraph(x)
		a := tap("relu", activation.Relu(x))                                                  // [N,1,4,4]
		pooled := graph.ReduceMean(a, 2, 3)                                                   // [N,1]
		return tap("logits", graph.Mul(graph.Reshape(pooled, -1, 1), graph.ExpandAxes(w, 0))) // [N,2]
	}
	return models.NewNative("overflow", models.Input{Layout: models.NCHW, Channels: 1, Height: 4, Width: 4, Batch: batch},
		model.NewStore(), forward)
}

// A model with a fixed batch is explained chunk by chunk; the image named
// is still its index in the whole batch, not in its chunk.
func TestNonFiniteImageIndexesTheWholeBatch(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), overflowModel(2))
	data := make([]float32, 4*16)
	for i := range data {
		data[i] = 1
		if i >= 3*16 {
			data[i] = 1e10 // image 3, the second of the second chunk
		}
	}
	x := tensors.FromFlatDataAndDimensions(data, 4, 1, 4, 4)
	_, err := gradcam.New(r, "relu").Explain(x, gradcam.Class(1))
	wantNonFinite(t, err, 3, "logits")
}
