package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/gradcam/metrics"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/tensors"
)

// metricNames are the values of `convlens eval --metric`.
var metricNames = []string{"deletion", "insertion", "drop", "road", "sanity"}

type evalFlags struct {
	model, input, method, metric string
	images, percentiles          listFlag
	layers                       layerFlags
	class                        classFlag
	steps, batch                 int
	seed                         uint64
	logits, compareRandom        bool
}

func runEval(args []string, stdout, stderr io.Writer) error {
	// `convlens eval DATASET` measures a built-in model's accuracy and localisation.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return runAccuracy(args, stdout, stderr)
	}
	fs := newFlags("eval", stderr)
	var f evalFlags
	fs.StringVar(&f.model, "model", "", "model: an .onnx file or a built-in model name")
	fs.Var(&f.images, "image", "PNG or JPEG image; repeat or separate with commas for a batch")
	fs.StringVar(&f.input, "input", "", "preprocessed float32 batch in a .npy file, in the model's layout, fed as is")
	f.layers.register(fs, "the method's maps are computed there")
	fs.StringVar(&f.method, "method", "gradcam", "method whose maps are evaluated: "+strings.Join(gradcam.MethodNames(), ", "))
	fs.StringVar(&f.metric, "metric", "", "metric: "+strings.Join(metricNames, ", "))
	fs.Var(&f.class, "class", "class to explain for every image (default: each image's top class)")
	fs.IntVar(&f.steps, "steps", 32, "deletion/insertion: points of the curve beyond the first")
	fs.IntVar(&f.batch, "batch", 32, "perturbed images per call of the model")
	fs.Var(&f.percentiles, "percentiles", "road: percentages of pixels removed (default 10,20,...,90)")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of every random draw (ROAD noise, random maps, randomised weights)")
	fs.BoolVar(&f.logits, "logits", false, "score the class's logit instead of its softmax probability")
	fs.BoolVar(&f.compareRandom, "compare-random", false, "also score random maps (seeded), the baseline a method must beat")
	if err := parse(fs, args); err != nil {
		return err
	}
	opt, err := f.check()
	if err != nil {
		return err
	}
	target, err := f.class.one()
	if err != nil {
		return err
	}
	method, err := gradcam.MethodByName(f.method)
	if err != nil {
		return usageError{err}
	}
	m, err := openClassifier(f.model)
	if err != nil {
		return err
	}
	src := &camFlags{images: f.images, input: f.input}
	x, _, err := src.batch(m)
	if err != nil {
		return err
	}
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	r := models.NewRunner(b, m)
	defer r.Close()
	explain := func(r *models.Runner) (*gradcam.Result, error) {
		cam, err := newCAM(r, f.layers, method, stderr)
		if err != nil {
			return nil, err
		}
		res, err := explainCLI(cam, x, target, stderr)
		return res, src.inImage(err)
	}
	if f.metric == "sanity" {
		sim, err := metrics.Randomization(r, f.seed, func(r *models.Runner) ([][]float32, error) {
			res, err := explain(r)
			if err != nil {
				return nil, err
			}
			maps, _, err := metrics.FromResult(res, 0)
			return maps, err
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sanity: %s maps of %s vs the same model with randomised weights (seed %d); Spearman rank correlation, near 0 = the maps depend on the weights\n", method.Name(), m.Name(), f.seed)
		for n, s := range sim.Spearman {
			fmt.Fprintf(stdout, "image %d: similarity %.4f\n", n, s)
		}
		fmt.Fprintf(stdout, "mean similarity %.4f\n", sim.Mean)
		return nil
	}

	res, err := explain(r)
	if err != nil {
		return err
	}
	maps, classes, err := metrics.FromResult(res, 0)
	if err != nil {
		return err
	}
	opt.Progress = progressPrinter(stderr)
	ev, err := metrics.New(r, opt)
	if err != nil {
		return usageError{err}
	}
	in := m.Input()
	runs := []struct {
		name string
		maps [][]float32
	}{{method.Name(), maps}}
	if f.compareRandom {
		random, err := metrics.RandomMaps(len(maps), in.Height, in.Width, f.seed)
		if err != nil {
			return err
		}
		runs = append(runs, struct {
			name string
			maps [][]float32
		}{"random", random})
	}
	score := "probability"
	if f.logits {
		score = "logit"
	}
	for _, run := range runs {
		if err := printMetric(stdout, ev, f.metric, run.name, score, x, run.maps, classes, m.Labels()); err != nil {
			return err
		}
	}
	return nil
}

func (f *evalFlags) check() (metrics.Options, error) {
	opt := metrics.Options{Steps: f.steps, BatchSize: f.batch, Seed: f.seed, Logits: f.logits}
	switch {
	case f.metric == "":
		return opt, usageError{fmt.Errorf("--metric is required: %s", strings.Join(metricNames, ", "))}
	case !slices.Contains(metricNames, f.metric):
		return opt, usageError{fmt.Errorf("unknown --metric %q; available: %s", f.metric, strings.Join(metricNames, ", "))}
	case len(f.images) == 0 && f.input == "":
		return opt, usageError{errors.New("give --image IMG or --input X.npy")}
	case len(f.images) > 0 && f.input != "":
		return opt, usageError{errors.New("give --image or --input, not both")}
	case f.steps < 1:
		return opt, usageError{fmt.Errorf("--steps %d: a curve needs at least 1 step", f.steps)}
	case f.batch < 1:
		return opt, usageError{fmt.Errorf("--batch %d: it must be at least 1", f.batch)}
	}
	for _, s := range f.percentiles {
		p, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return opt, usageError{fmt.Errorf("--percentiles: %q is not a number", s)}
		}
		opt.Percentiles = append(opt.Percentiles, p)
	}
	return opt, nil
}

// printMetric computes one metric for one set of maps and prints it.
func printMetric(w io.Writer, ev *metrics.Evaluator, metric, name, score string, x *tensors.Tensor, maps [][]float32, classes []int, labels []string) error {
	switch metric {
	case "deletion", "insertion":
		run, better := ev.Deletion, "lower"
		if metric == "insertion" {
			run, better = ev.Insertion, "higher"
		}
		c, err := run(x, maps, classes)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s, %s maps: area under the class %s over %d points (%s is more faithful)\n", metric, name, score, len(c.Fractions), better)
		for n, a := range c.AUC {
			fmt.Fprintf(w, "image %d: %s, AUC %.4f\n", n, className(classes[n], labels), a)
		}
		fmt.Fprintf(w, "mean AUC %.4f\n", c.MeanAUC)
	case "drop":
		c, err := ev.Confidence(x, maps, classes)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "drop, %s maps: class %s on the image and on the image times its map\n", name, score)
		for n := range c.Drop {
			fmt.Fprintf(w, "image %d: %s, %.4f -> %.4f, drop %.2f%%\n", n, className(classes[n], labels), c.Original[n], c.Masked[n], c.Drop[n])
		}
		fmt.Fprintf(w, "average drop %.2f%% (lower is more faithful), increase in confidence %.2f%% (higher is more faithful)\n", c.AverageDrop, c.IncreaseInConfidence)
	case "road":
		r, err := ev.ROAD(x, maps, classes)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "road, %s maps: mean class %s with p%% of pixels removed and imputed\n", name, score)
		fmt.Fprintln(w, "percent\tMoRF\tLeRF")
		for i, p := range r.Percentiles {
			fmt.Fprintf(w, "%g\t%.4f\t%.4f\n", p, r.MeanMoRF[i], r.MeanLeRF[i])
		}
		fmt.Fprintf(w, "gap LeRF - MoRF %.4f (higher is more faithful)\n", r.Gap)
	}
	return nil
}

// layerFlags are --layer and --grid, and how the maps at the layers are
// smoothed (--eigen-smooth, --aug-smooth), as cam, eval and report take them.
type layerFlags struct {
	names                  listFlag
	grid                   string
	eigenSmooth, augSmooth bool
}

func (l *layerFlags) register(fs *flag.FlagSet, several string) {
	fs.BoolVar(&l.eigenSmooth, "eigen-smooth", false, "a CAM-family method's map becomes the first principal component of its weighted activations (pytorch-grad-cam's eigen_smooth)")
	fs.BoolVar(&l.augSmooth, "aug-smooth", false, "average the maps over horizontal flips and brightness ×0.9, ×1, ×1.1 of each image, mirrored back (pytorch-grad-cam's aug_smooth; 6× the cost)")
	fs.Var(&l.names, "layer", "layer name(s), comma-separated ("+several+"): a node output or a PyTorch module path such as layer4 or features[-1] (see `convlens layers`; default: the last layer with spatial axes)")
	fs.StringVar(&l.grid, "grid", "", "how the layer's activation reads as a map when its shape does not say: nchw, nhwc, or tokens:HxW+S for a transformer's tokens after S leading ones (default: from the shape)")
}

// newCAM configures a CAM for the command line, with progress on stderr
// for the methods that run many forward passes. Without layers the CAM is
// computed at the last layer with spatial axes, which stderr names, as it
// names the node a module path stands for.
func newCAM(r *models.Runner, layers layerFlags, m gradcam.Method, stderr io.Writer) (*gradcam.CAM, error) {
	cam, err := gradcam.New(r, layers.names...).Method(m).Grid(layers.grid).EigenSmooth(layers.eigenSmooth).AugSmooth(layers.augSmooth).Progress(func(p gradcam.Progress) {
		fmt.Fprintf(stderr, "\r%s at %s: %d/%d passes", p.Method, p.Layer, p.Done, p.Total)
		if p.Done == p.Total {
			fmt.Fprintln(stderr)
		}
	}).Done()
	if err != nil {
		return nil, err
	}
	if len(layers.names) == 0 && len(cam.Layers()) > 0 {
		noteDefaultLayer(stderr, cam.Layers()[0])
	}
	for i, name := range cam.Layers() {
		if i < len(layers.names) && layers.names[i] != name {
			fmt.Fprintf(stderr, "convlens: --layer %s is the output of its last node, %s\n", layers.names[i], name)
		}
	}
	return cam, nil
}

// noteDefaultLayer says on stderr which layer a command chose when no
// --layer was given.
func noteDefaultLayer(stderr io.Writer, layer string) {
	fmt.Fprintf(stderr, "convlens: no --layer given; using the last layer with spatial axes, %s\n", layer)
}

// explainCLI explains x, first announcing on stderr the cost of methods
// that run the model many times (Score-CAM, occlusion, RISE, Integrated
// Gradients...).
func explainCLI(cam *gradcam.CAM, x *tensors.Tensor, t gradcam.Target, stderr io.Writer) (*gradcam.Result, error) {
	if passes := cam.Passes(x.Shape().Dimensions[0]); passes > 0 {
		fmt.Fprintf(stderr, "%s: %d forward passes of one image, %d per call of the model\n",
			cam.Method().Name(), passes, cam.PointsPerCall())
	}
	return cam.Explain(x, t)
}

// progressPrinter draws the metrics' progress on one line of stderr.
func progressPrinter(stderr io.Writer) func(metrics.Progress) {
	return func(p metrics.Progress) {
		fmt.Fprintf(stderr, "\r%s: %d/%d perturbed images", p.Metric, p.Done, p.Total)
		if p.Done == p.Total {
			fmt.Fprintln(stderr)
		}
	}
}
