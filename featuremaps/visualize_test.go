package featuremaps_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// edgeModel is a one-channel 12x12 NHWC model: a 3x3 convolution without
// padding ("conv", 10x10) with a centre-surround kernel (channel 0: +8
// centre, −1 around; channel 1 its negative), then ReLU ("relu"), global
// average and a dense layer. The kernels sum to zero, so on a flat grey
// image, such as the near-uniform random start, both channels are ≈ 0; a
// pattern of isolated bright (channel 0) or dark (channel 1) pixels drives
// them up to several units.
func edgeModel() *models.Native {
	kernel := make([]float32, 3*3*1*2)
	for i := range 9 {
		v := float32(-1)
		if i == 4 {
			v = 8
		}
		kernel[i*2], kernel[i*2+1] = v, -v
	}
	forward := func(scope *model.Scope, x *graph.Node, tap models.Tap) *graph.Node {
		k := scope.VariableWithValue("kernel", tensors.FromFlatDataAndDimensions(kernel, 3, 3, 1, 2)).ValueGraph(x)
		a := tap("relu", activation.Relu(tap("conv", graph.Convolve(x, k).NoPadding().Done())))
		pooled := tap("pool", graph.ReduceMean(a, 1, 2))
		w := scope.VariableWithValue("dense", [][]float32{{1, 0}, {0, 1}}).ValueGraph(x)
		return tap("logits", graph.Dot(pooled, w).Product())
	}
	return models.NewNative("edge", models.Input{Layout: models.NHWC, Channels: 1, Height: 12, Width: 12}, model.NewStore(), forward)
}

func visOptions() featuremaps.VisOptions {
	o := featuremaps.DefaultVisOptions()
	o.Steps = 40
	o.LearningRate = 0.1
	o.Jitter, o.Scale, o.Rotate = 1, 0.05, 5
	o.TV, o.L2 = 0.01, 0.01
	o.Seed = 7
	o.Noise = 0.01 // Lucid's start: grey with faint noise, where both channels are ≈ 0
	return o
}

func TestVisualizeIncreasesActivationDeterministically(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), edgeModel())
	defer r.Close()
	// A unit that is negative before its ReLU on the random start has no
	// gradient, so single units are targeted before the ReLU. And for a
	// single unit of this kernel, a uniform jitter of ±1 pixel averages the
	// objective to exactly zero (the kernel sums to zero over the 3x3
	// shifts), so the neuron runs without jitter.
	channels := []featuremaps.Objective{featuremaps.ChannelObjective("relu", 0), featuremaps.ChannelObjective("relu", 1)}
	neuron := []featuremaps.Objective{featuremaps.NeuronObjective("conv", 0, 3, 8)}
	for _, fourier := range []bool{false, true} {
		opts := visOptions()
		opts.Fourier = fourier
		var steps []int
		opts.Progress = func(p featuremaps.Progress) {
			steps = append(steps, p.Step)
			if p.Steps != opts.Steps || len(p.Values) != 2 || p.Batch != 1 || p.Batches != 1 {
				t.Fatalf("progress %+v", p)
			}
		}
		v, err := featuremaps.Visualize(r, opts, channels...)
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) != opts.Steps || steps[0] != 1 || steps[len(steps)-1] != opts.Steps {
			t.Errorf("fourier %v: progress called for steps %v", fourier, steps)
		}
		opts.Progress = nil
		nopts := opts
		nopts.Jitter = 0
		vn, err := featuremaps.Visualize(r, nopts, neuron...)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range append(channels, neuron...) {
			initial, final := v.Initial, v.Final
			if o.Neuron {
				initial, final, i = vn.Initial, vn.Final, 0
			}
			t.Logf("fourier %v, %s: %.4g → %.4g", fourier, o, initial[i], final[i])
			if !(final[i] > 1 && final[i] > 50*max(initial[i], 0)) {
				t.Errorf("fourier %v, %s: activation %.4g → %.4g, want above 1 and 50 times the start", fourier, o, initial[i], final[i])
			}
		}

		// Final is the model's own activation on the synthesised images.
		_, acts, err := r.Run(v.Tensor(), "relu")
		if err != nil {
			t.Fatal(err)
		}
		relu := tensors.MustCopyFlatData[float32](acts[0]) // [2, 10, 10, 2]
		for i := range channels {
			var mean float64
			for p := range 100 {
				mean += float64(relu[(i*100+p)*2+i]) / 100
			}
			if d := mean - float64(v.Final[i]); d > 1e-4 || d < -1e-4 {
				t.Errorf("fourier %v, %s: Final %g, the model computes %g on the image", fourier, channels[i], v.Final[i], mean)
			}
		}
		_, acts, err = r.Run(vn.Tensor(), "conv")
		if err != nil {
			t.Fatal(err)
		}
		if unit := tensors.MustCopyFlatData[float32](acts[0])[(8*10+3)*2]; unit != vn.Final[0] {
			t.Errorf("fourier %v: neuron Final %g, the model computes %g", fourier, vn.Final[0], unit)
		}

		// Same seed, same images; another seed, other images.
		again, err := featuremaps.Visualize(r, opts, channels...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range channels {
			if !slices.Equal(again.Pixels[i], v.Pixels[i]) {
				t.Errorf("fourier %v, %s: a second run with the same seed gave another image", fourier, channels[i])
			}
		}
		opts.Seed++
		other, err := featuremaps.Visualize(r, opts, channels...)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(other.Pixels[0], v.Pixels[0]) {
			t.Errorf("fourier %v: seeds %d and %d gave the same image", fourier, opts.Seed-1, opts.Seed)
		}
	}
}

func TestVisualizeLayerGrid(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), edgeModel())
	defer r.Close()
	opts := visOptions()
	opts.Steps = 10
	opts.BatchSize = 1
	var batches []int
	opts.Progress = func(p featuremaps.Progress) {
		if p.Step == 1 {
			batches = append(batches, p.Batch)
		}
	}
	v, err := featuremaps.VisualizeLayer(r, "relu", nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Pixels) != 2 || !slices.Equal(batches, []int{1, 2}) {
		t.Errorf("%d images in batches %v, want 2 in [1 2]", len(v.Pixels), batches)
	}
	img, err := display.ImageGrid(v.Images()...).Labels(v.Labels()...).Title(v.Title()).Image()
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() < 2*96 {
		t.Errorf("grid of two 12x12 images is %v", img.Bounds())
	}
}

// TestVisualizeNCHWWithNormalisation runs the ONNX fixture (NCHW, RGB,
// ImageNet normalisation, Fourier and colour-decorrelated parameterisation)
// for a few steps from the default (noisy) start: the target channels more
// than double.
func TestVisualizeNCHWWithNormalisation(t *testing.T) {
	m, err := models.LoadONNX(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	r := models.NewRunner(modeltest.Backend(t), m)
	defer r.Close()
	opts := featuremaps.DefaultVisOptions()
	opts.Steps = 30
	layer := "/layer1/layer1.0/relu_1/Relu_output_0"
	v, err := featuremaps.Visualize(r, opts, featuremaps.ChannelObjective(layer, 3), featuremaps.ChannelObjective(layer, 5))
	if err != nil {
		t.Fatal(err)
	}
	_, acts, err := r.Run(v.Tensor(), layer)
	if err != nil {
		t.Fatal(err)
	}
	act := tensors.MustCopyFlatData[float32](acts[0]) // [2, 16, 16, 16]
	for i, c := range []int{3, 5} {
		var mean float64
		for p := range 256 {
			mean += float64(act[(i*16+c)*256+p]) / 256
		}
		t.Logf("channel %d: %.4g → %.4g (model: %.4g)", c, v.Initial[i], v.Final[i], mean)
		if !(v.Initial[i] > 0 && v.Final[i] > 2*v.Initial[i]) {
			t.Errorf("channel %d: %.4g → %.4g in %d steps, want more than double", c, v.Initial[i], v.Final[i], opts.Steps)
		}
		if d := mean - float64(v.Final[i]); d > 1e-4*max(1, mean) || d < -1e-4*max(1, mean) {
			t.Errorf("channel %d: Final %g, the model computes %g", c, v.Final[i], mean)
		}
	}
}

func TestVisualizeBadInput(t *testing.T) {
	r := models.NewRunner(modeltest.Backend(t), edgeModel())
	defer r.Close()
	opts := visOptions()
	for _, c := range []struct {
		name string
		opts featuremaps.VisOptions
		objs []featuremaps.Objective
		want string
	}{
		{"unknown layer", opts, []featuremaps.Objective{featuremaps.ChannelObjective("rleu", 0)}, "closest: relu"},
		{"channel", opts, []featuremaps.Objective{featuremaps.ChannelObjective("relu", 2)}, "channel 2 out of range"},
		{"neuron", opts, []featuremaps.Objective{featuremaps.NeuronObjective("relu", 0, 10, 0)}, "neuron (10,0) out of range"},
		{"two layers", opts, []featuremaps.Objective{featuremaps.ChannelObjective("relu", 0), featuremaps.ChannelObjective("pool", 0)}, "one layer per call"},
		{"none", opts, nil, "no objective"},
		{"steps", featuremaps.VisOptions{LearningRate: 0.1}, []featuremaps.Objective{featuremaps.ChannelObjective("relu", 0)}, "Steps 0"},
	} {
		_, err := featuremaps.Visualize(r, c.opts, c.objs...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := featuremaps.VisualizeLayer(r, "relu", []int{0}, featuremaps.VisOptions{Steps: 1, LearningRate: 1}); err == nil || !strings.Contains(err.Error(), "BatchSize") {
		t.Errorf("BatchSize 0: %v", err)
	}
}
