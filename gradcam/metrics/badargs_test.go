package metrics_test

import (
	"math"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// nanLogitsModel takes the evidence model's images; its logits are (mean
// of the image, NaN), and its last tapped layer is not the logits, so the
// number of classes is known only from its output.
func nanLogitsModel() *models.Native {
	fwd := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		x = tap("image", x)
		mean := graph.Reshape(graph.ReduceMean(x, 1, 2, 3), -1, 1)
		nan := graph.Sqrt(graph.AddScalar(graph.ZerosLike(mean), -1))
		return graph.Concatenate([]*graph.Node{mean, nan}, 1)
	}
	return models.NewNative("nan", models.Input{Layout: models.NCHW, Channels: 1, Height: side, Width: side}, model.NewStore(), fwd)
}

// Every entry point given a bad argument returns an error that names it,
// and never panics.
func TestBadArgumentsAreErrors(t *testing.T) {
	e, r, x := setup(t, metrics.Options{Steps: 2, Percentiles: []float64{50}})
	maps := exactMaps(x)
	b := modeltest.Backend(t)
	nanRunner := models.NewRunner(b, nanLogitsModel())
	nanEval, err := metrics.New(nanRunner, metrics.Options{Steps: 2})
	if err != nil {
		t.Fatal(err)
	}
	nanLogitEval, err := metrics.New(nanRunner, metrics.Options{Steps: 2, Logits: true})
	if err != nil {
		t.Fatal(err)
	}
	square := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0}}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	one := &gradcam.Result{N: 1, K: 1, Height: 1, Width: 1, Normalized: []float32{1}, Classes: []int{0}}
	noMaps := &gradcam.Result{N: 2, K: 1, Height: 1, Width: 1, Normalized: []float32{1}, Classes: []int{0, 0}}
	pointing := func(m heatmap.Map, mask []bool) func() error {
		return func() error { _, err := metrics.PointingHit(m, mask); return err }
	}
	energy := func(m heatmap.Map, mask []bool) func() error {
		return func() error { _, err := metrics.EnergyFraction(m, mask); return err }
	}
	fromResult := func(res *gradcam.Result, k int) func() error {
		return func() error { _, _, err := metrics.FromResult(res, k); return err }
	}
	randomMaps := func(n, h, w int) func() error {
		return func() error { _, err := metrics.RandomMaps(n, h, w, 1); return err }
	}
	spearman := func(a, b []float32) func() error {
		return func() error { _, err := metrics.Spearman(a, b); return err }
	}
	explain := func(*models.Runner) ([][]float32, error) { return maps, nil }
	for _, c := range []struct {
		name string
		call func() error
		want []string
	}{
		{"PointingHit empty map", pointing(heatmap.Map{}, nil), []string{"metrics.PointingHit: map m", "invalid map size 0x0"}},
		{"PointingHit short mask", pointing(square, []bool{true, false, true}), []string{"mask has 3 values for a 2x2 map"}},
		{"PointingHit nil mask", pointing(square, nil), []string{"mask has 0 values for a 2x2 map"}},
		{"PointingHit NaN map", pointing(heatmap.Map{Width: 2, Height: 1, Values: []float32{1, nan}}, []bool{true, true}), []string{"map m holds NaN at (1, 0)"}},
		{"PointingHit map short of values", pointing(heatmap.Map{Width: 3, Height: 3, Values: []float32{1}}, make([]bool, 9)), []string{"map m", "has 1 values, want 9"}},
		{"EnergyFraction empty map", energy(heatmap.Map{}, nil), []string{"metrics.EnergyFraction: map m"}},
		{"EnergyFraction long mask", energy(square, make([]bool, 5)), []string{"mask has 5 values for a 2x2 map"}},
		{"EnergyFraction Inf map", energy(heatmap.Map{Width: 1, Height: 1, Values: []float32{inf}}, []bool{true}), []string{"map m holds +Inf"}},
		{"FromResult nil", fromResult(nil, 0), []string{"result res is nil"}},
		{"FromResult empty", fromResult(&gradcam.Result{}, 0), []string{"result res is empty (N=0"}},
		{"FromResult k out of range", fromResult(one, 1), []string{"target k=1 is outside the result's K=1"}},
		{"FromResult negative k", fromResult(one, -1), []string{"target k=-1"}},
		{"FromResult inconsistent", fromResult(noMaps, 0), []string{"Normalized holds 1 values"}},
		{"RandomMaps negative n", randomMaps(-1, 2, 2), []string{"n=-1 maps"}},
		{"RandomMaps zero height", randomMaps(1, 0, 2), []string{"h×w = 0×2"}},
		{"RandomMaps huge", randomMaps(1, 1<<40, 1<<40), []string{"over models.MaxImagePixels"}},
		{"RandomMaps too many", randomMaps(math.MaxInt/2, 4, 4), []string{"overflow"}},
		{"Spearman lengths", spearman([]float32{1, 2, 3}, []float32{1, 2}), []string{"a has 3 values and b 2"}},
		{"Spearman empty", spearman(nil, nil), []string{"a and b are empty"}},
		{"Spearman NaN", spearman([]float32{1, 2}, []float32{nan, 1}), []string{"b[0] is NaN"}},
		{"Randomize nil", func() error { _, err := metrics.Randomize(nil, 1); return err }, []string{"model m is nil"}},
		{"Randomize typed nil", func() error { _, err := metrics.Randomize((*models.Native)(nil), 1); return err }, []string{"model m", "nil weight store"}},
		{"Randomization nil runner", func() error { _, err := metrics.Randomization(nil, 1, explain); return err }, []string{"runner r", "runner is nil"}},
		{"Randomization runner of no model", func() error { _, err := metrics.Randomization(models.NewRunner(b, nil), 1, explain); return err },
			[]string{"runner r", "model m is nil"}},
		{"Randomization nil explain", func() error { _, err := metrics.Randomization(r, 1, nil); return err }, []string{"explain is nil"}},
		{"New nil runner", func() error { _, err := metrics.New(nil, metrics.Options{}); return err }, []string{"metrics.New: runner r", "runner is nil"}},
		{"New runner of no backend", func() error {
			_, err := metrics.New(models.NewRunner(nil, evidenceModel()), metrics.Options{})
			return err
		},
			[]string{"metrics.New: runner r", "backend b is nil"}},
		{"nil Evaluator", func() error { _, err := (*metrics.Evaluator)(nil).Deletion(x, maps, zeros); return err }, []string{"evaluator is nil"}},
		{"Deletion nil x", func() error { _, err := e.Deletion(nil, maps, zeros); return err }, []string{"deletion: input x: Tensor is nil"}},
		{"Insertion nil x", func() error { _, err := e.Insertion(nil, maps, zeros); return err }, []string{"insertion: input x: Tensor is nil"}},
		{"Confidence nil x", func() error { _, err := e.Confidence(nil, maps, zeros); return err }, []string{"confidence: input x: Tensor is nil"}},
		{"ROAD nil x", func() error { _, err := e.ROAD(nil, maps, zeros); return err }, []string{"road: input x: Tensor is nil"}},
		{"ROAD nil map", func() error { _, err := e.ROAD(x, [][]float32{nil, maps[1], maps[2], maps[3]}, zeros); return err }, []string{"map 0 has 0 values"}},
		{"class past the logits", func() error { _, err := nanLogitEval.Deletion(x, maps, []int{0, 0, 5, 0}); return err },
			[]string{"class 5 of image 2 is out of range: the model has 2 classes"}},
		{"NaN logit", func() error { _, err := nanEval.Confidence(x, maps, zeros); return err }, []string{"image 0", "logit 1 of 2 is NaN"}},
		{"NaN logit scored as a logit", func() error { _, err := nanLogitEval.ROAD(x, maps, []int{1, 1, 1, 1}); return err },
			[]string{"image 0", "the logit of class 1 is NaN"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatalf("no error, want one saying %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// What the checks let through still works.
	if hit, err := metrics.PointingHit(square, []bool{false, true, false, false}); err != nil || !hit {
		t.Errorf("PointingHit = %v, %v; want a hit", hit, err)
	}
	if f, err := metrics.EnergyFraction(square, []bool{false, true, false, false}); err != nil || math.Abs(f-1/1.5) > 1e-9 {
		t.Errorf("EnergyFraction = %v, %v; want 2/3", f, err)
	}
	if f, err := metrics.EnergyFraction(heatmap.Map{Width: 2, Height: 1, Values: []float32{0, 0}}, []bool{true, false}); err != nil || f != 0 {
		t.Errorf("EnergyFraction of a blank map = %v, %v; want 0", f, err)
	}
	if m, err := metrics.RandomMaps(0, 3, 3, 1); err != nil || len(m) != 0 {
		t.Errorf("RandomMaps(0, ...) = %v, %v", m, err)
	}
	if m, c, err := metrics.FromResult(one, 0); err != nil || len(m) != 1 || len(c) != 1 {
		t.Errorf("FromResult of one map = %v, %v, %v", m, c, err)
	}
}
