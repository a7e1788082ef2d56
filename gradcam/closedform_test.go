package gradcam_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TinyNative's logits are mean_ij(A) · W, so ∂logit_c/∂A_ijk = W[k][c]/(h·w)
// and its Grad-CAM raw map is Σ_k W[k][c]/(h·w) · A_k: computed here in plain
// Go from the activation alone, independently of the graph's gradients. The
// model is NHWC, so this also checks the channels-last path.
func TestGradCAMClosedFormOnNativeModel(t *testing.T) {
	m := modeltest.TinyNative()
	r := models.NewRunner(modeltest.Backend(t), m)
	rng := rand.New(rand.NewPCG(1, 2))
	const n, h, w, c = 3, 5, 6, 4
	data := make([]float32, n*h*w*2)
	for i := range data {
		data[i] = rng.Float32()*2 - 1
	}
	x := tensors.FromFlatDataAndDimensions(data, n, h, w, 2)
	_, acts, err := r.Run(x, "relu")
	if err != nil {
		t.Fatal(err)
	}
	a := tensors.MustCopyFlatData[float32](acts[0])

	cam, err := gradcam.New(r, "relu").Done()
	if err != nil {
		t.Fatal(err)
	}
	classes := []int{0, 2, 1}
	res, err := cam.Explain(x, gradcam.Class(classes...))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n*h*w)
	for img := range n {
		for p := range h * w {
			for k := range c {
				want[img*h*w+p] += modeltest.TinyNativeDense[k][classes[img]] / (h * w) * a[(img*h*w+p)*c+k]
			}
		}
	}
	if e := testutil.RelErr(res.Raw[0].Values, want); e > 1e-5 {
		t.Errorf("raw map differs from the closed form by %.3g relative", e)
	}
	for img := range n {
		if got := res.Classes[img*res.K]; got != classes[img] {
			t.Errorf("image %d explained class %d, want %d", img, got, classes[img])
		}
	}
}

// A Score target differentiates any function of the logits: the sum of two
// classes' logits has the sum of their maps (Grad-CAM is linear in the score).
func TestScoreTargetIsLinear(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	x := tensors.FromFlatDataAndDimensions(ramp(2*5*6*2), 2, 5, 6, 2)
	cam, err := gradcam.New(r, "relu").Done()
	if err != nil {
		t.Fatal(err)
	}
	sum := gradcam.Score("class 0 + class 2", func(logits *graph.Node) *graph.Node {
		return graph.Add(graph.SliceAxis(logits, 1, graph.AxisElem(0)), graph.SliceAxis(logits, 1, graph.AxisElem(2)))
	})
	both, err := cam.Explain(x, sum)
	if err != nil {
		t.Fatal(err)
	}
	c0, err := cam.Explain(x, gradcam.Class(0))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := cam.Explain(x, gradcam.Class(2))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(c0.Raw[0].Values))
	for i := range want {
		want[i] = c0.Raw[0].Values[i] + c2.Raw[0].Values[i]
	}
	if e := testutil.RelErr(both.Raw[0].Values, want); e > 1e-5 {
		t.Errorf("map of the sum differs from the sum of maps by %.3g relative", e)
	}
	if c, err := both.Class(0, 0); err != nil || c != -1 {
		t.Errorf("Score target reports class %d (%v), want -1", c, err)
	}
	bad := gradcam.Score("per-class", func(logits *graph.Node) *graph.Node { return graph.ExpandAxes(logits, -1) })
	if _, err := cam.Explain(x, bad); err == nil || !strings.Contains(err.Error(), "one score per image") {
		t.Errorf("rank-3 score accepted: %v", err)
	}
}

func ramp(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%7)/3 - 1
	}
	return v
}

func TestBadTargetsAndLayers(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), modeltest.TinyNative())
	x := tensors.FromFlatDataAndDimensions(ramp(2*5*6*2), 2, 5, 6, 2)
	// No layer: the last one with spatial axes, relu (pool averages them away).
	if cam, err := gradcam.New(r).Done(); err != nil || !slices.Equal(cam.Layers(), []string{"relu"}) {
		t.Errorf("no layer: %v, want the default layer relu", err)
	}
	if _, err := gradcam.New(r, "pool").Done(); err == nil || !strings.Contains(err.Error(), "no spatial axes") {
		t.Errorf("pool layer: %v", err)
	}
	cam, err := gradcam.New(r, "relu").Done()
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[*gradcam.Target]string{
		ptr(gradcam.Class(3)):       "class index 3 is out of range: the model has 3 classes",
		ptr(gradcam.Class(-1)):      "class index -1 is out of range",
		ptr(gradcam.Class(0, 1, 2)): "3 classes given for 2 images",
		ptr(gradcam.Top(4)):         "top 4 classes asked for, but the model has 3 classes",
	} {
		if _, err := cam.Explain(x, *target); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: err = %v, want %q", target, err, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
