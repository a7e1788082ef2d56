package main

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/convlens/convlens/display"
	"github.com/convlens/convlens/featuremaps"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/internal/atomicfile"
	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/tensors"
)

// listFlag collects a flag given several times or as a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// classFlag is --class: class indices, one or several, comma-separated.
// It records being given, so that an empty value is refused rather than
// taken for no --class.
type classFlag struct {
	given   bool
	classes listFlag
}

func (c *classFlag) String() string { return c.classes.String() }
func (c *classFlag) Set(v string) error {
	c.given = true
	return c.classes.Set(v)
}

// indices returns the classes given, none without --class; an empty value
// or one that is not an index from 0 is a usage error.
func (c *classFlag) indices() ([]int, error) {
	if c.given && len(c.classes) == 0 {
		return nil, usageError{errors.New("--class is empty: give a class index from 0, or leave --class out to explain the predicted class")}
	}
	out := make([]int, len(c.classes))
	for i, s := range c.classes {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("--class %q is not a class index", s)}
		}
		if n < 0 {
			return nil, usageError{fmt.Errorf("--class %d: class indices start at 0", n)}
		}
		out[i] = n
	}
	return out, nil
}

// one returns the target of a --class that takes a single class: that
// class, or without --class each image's predicted one.
func (c *classFlag) one() (gradcam.Target, error) {
	classes, err := c.indices()
	switch {
	case err != nil:
		return gradcam.Target{}, err
	case len(classes) > 1:
		return gradcam.Target{}, usageError{fmt.Errorf("--class %s: give one class index", c)}
	case len(classes) == 1:
		return gradcam.Class(classes[0]), nil
	}
	return gradcam.Top(1), nil
}

type camFlags struct {
	model, input, method, outNPY, outPNG string
	images                               listFlag
	classes                              classFlag
	layers                               layerFlags
	size                                 sizeFlag
	top                                  int
	raw                                  bool
	// Targets beyond a class: an output (regression), the similarity to an
	// image's embedding, a segmentation's class over a region, and the
	// evidence against any of them.
	output, segment   int
	similarTo, region string
	counterfactual    bool
}

func runCAM(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cam", stderr)
	var f camFlags
	fs.StringVar(&f.model, "model", "", "model: an .onnx file or a built-in model name")
	fs.Var(&f.images, "image", "PNG or JPEG image; repeat or separate with commas for a batch")
	fs.StringVar(&f.input, "input", "", "preprocessed float32 batch in a .npy file, in the model's layout (e.g. [N,C,H,W]), fed as is")
	f.layers.register(fs, "several layers are averaged")
	fs.Var(&f.size, "size", sizeUsage)
	fs.StringVar(&f.method, "method", "gradcam", "method: "+strings.Join(gradcam.MethodNames(), ", ")+`, or "all" for one panel comparing every method (needs --out-png)`)
	fs.Var(&f.classes, "class", "class index to explain: one for all images, or one per image (comma-separated)")
	fs.IntVar(&f.top, "top", 0, "explain each image's K best classes, best first")
	fs.IntVar(&f.output, "output", -1, "explain output I itself rather than a class: a regression's value (0 for one output)")
	fs.StringVar(&f.similarTo, "similar-to", "", "explain the cosine similarity of each image's output to this image's (an embedding model)")
	fs.IntVar(&f.segment, "segment", -1, "explain a segmentation model's class C, its output summed over where the model predicts C (or over --region)")
	fs.StringVar(&f.region, "region", "", "with --segment: a PNG mask, resized to the model's input; its bright pixels (luma ≥ 128) are the region")
	fs.BoolVar(&f.counterfactual, "counterfactual", false, "explain the evidence against the target instead of for it (the regions that lower its score)")
	fs.BoolVar(&f.raw, "raw", false, "with --out-npy: write the ReLU'd maps at layer resolution, before normalisation and resizing")
	fs.StringVar(&f.outNPY, "out-npy", "", "write the maps as float32 .npy: [N,H,W], or [N,K,H,W] with --top")
	fs.StringVar(&f.outPNG, "out-png", "", "write the heatmap over the image (jet, 50% blend) as PNG")
	if err := parse(fs, args); err != nil {
		return err
	}
	target, err := f.check()
	if err != nil {
		return err
	}
	m, err := openClassifier(f.model)
	if err != nil {
		return err
	}
	x, pictures, err := f.batch(m)
	if err != nil {
		return err
	}
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	r := models.NewRunner(b, m)
	if target, err = f.modelTarget(r, target); err != nil {
		return err
	}
	if f.method == "all" {
		return compareAll(r, f, x, pictures, target, stdout, stderr)
	}
	cam, err := newCAM(r, f.layers, gradcam.Methods[f.method], stderr)
	if err != nil {
		return err
	}
	res, err := explainCLI(cam, x, target, stderr)
	if err != nil {
		return f.inImage(err)
	}
	lines, err := predictions(res, m.Labels(), f.scoreName())
	if err != nil {
		return err
	}
	out := stageOutputs()
	defer out.Discard()
	if f.outNPY != "" {
		if err := stageNPY(out, f.outNPY, res, f.raw, f.top > 0); err != nil {
			return err
		}
	}
	if f.outPNG != "" {
		png, err := overlays(res, pictures, m.Labels())
		if err != nil {
			return err
		}
		if err := stagePNG(out, f.outPNG, png); err != nil {
			return err
		}
	}
	if err := out.Commit(); err != nil {
		return err
	}
	if err := noteBlankMaps(stderr, res, m.Labels(), f.imageName, gradcam.Methods[f.method].Name()); err != nil {
		return err
	}
	fmt.Fprint(stdout, lines)
	return nil
}

// imageName names image n of the batch: its file, or the --input file and index.
func (f *camFlags) imageName(n int) string {
	if n < len(f.images) {
		return f.images[n]
	}
	return fmt.Sprintf("%s image %d", f.input, n)
}

// blankNote says why a map is blank and what to try; method is the
// method's name, layered whether it was computed at layers.
func blankNote(method string, layered bool) string {
	switch {
	case !layered:
		return "the map is blank: every value is negative, so the ReLU leaves nothing; try another --method, or the signed map (gradcam's Builder.ReLU(false))"
	case method == gradcam.GradCAM.Name():
		return "the map is blank: every position's weighted sum of channels is negative, so the ReLU leaves nothing; " +
			"try another --layer (a deeper one), --method hirescam or layercam, or the signed map (gradcam's Builder.ReLU(false))"
	}
	return "the map is blank: every value is negative at this layer, so the ReLU leaves nothing; " +
		"try another --layer (a deeper one), --method hirescam or layercam, or the signed map (gradcam's Builder.ReLU(false))"
}

// noteBlankMaps writes one line on stderr per blank map (see
// [gradcam.Result.Blank]), naming the image and the class.
func noteBlankMaps(stderr io.Writer, res *gradcam.Result, labels []string, name func(n int) string, method string) error {
	for n := range res.N {
		for k := range res.K {
			blank, err := res.Blank(n, k)
			if err != nil {
				return err
			}
			if !blank {
				continue
			}
			c, err := res.Class(n, k)
			if err != nil {
				return err
			}
			target := "the score"
			if c >= 0 {
				target = className(c, labels)
			}
			fmt.Fprintf(stderr, "note: %s, %s with %s: %s\n", name(n), target, method, blankNote(method, len(res.Layers) > 0))
		}
	}
	return nil
}

// check validates the flags that need no model and returns the target.
func (f *camFlags) check() (gradcam.Target, error) {
	switch {
	case len(f.images) == 0 && f.input == "":
		return gradcam.Target{}, usageError{errors.New("give --image IMG or --input X.npy")}
	case len(f.images) > 0 && f.input != "":
		return gradcam.Target{}, usageError{errors.New("give --image or --input, not both")}
	case f.method == "all" && f.outPNG == "":
		return gradcam.Target{}, usageError{errors.New("--method all draws one comparison panel: give --out-png")}
	case f.method == "all" && f.layers.eigenSmooth:
		return gradcam.Target{}, usageError{errors.New("--eigen-smooth applies to the CAM-family methods only; give one --method, not all")}
	case f.method == "all" && f.outNPY != "":
		return gradcam.Target{}, usageError{errors.New("--method all writes only the --out-png panel; run one method at a time for --out-npy")}
	case f.method != "all" && gradcam.Methods[f.method] == nil:
		return gradcam.Target{}, usageError{fmt.Errorf("unknown --method %q; available: %s, or all", f.method, strings.Join(gradcam.MethodNames(), ", "))}
	case f.classes.given && f.top > 0:
		return gradcam.Target{}, usageError{errors.New("give --class or --top, not both")}
	case f.top < 0:
		return gradcam.Target{}, usageError{fmt.Errorf("--top %d: K must be at least 1", f.top)}
	case f.raw && f.outNPY == "":
		return gradcam.Target{}, usageError{errors.New("--raw changes what --out-npy writes; give --out-npy too")}
	case f.raw && len(f.layers.names) > 1:
		return gradcam.Target{}, usageError{errors.New("--raw writes one layer's maps at its own resolution; give one --layer")}
	case f.outNPY != "" && f.outPNG != "" && atomicfile.Same(f.outNPY, f.outPNG):
		return gradcam.Target{}, usageError{fmt.Errorf("--out-npy %s and --out-png %s are the same file; give each output its own path", f.outNPY, f.outPNG)}
	case f.output < -1 || f.segment < -1:
		return gradcam.Target{}, usageError{errors.New("--output and --segment take an index from 0")}
	case f.region != "" && f.segment < 0:
		return gradcam.Target{}, usageError{errors.New("--region is the region of a --segment class: give --segment C too")}
	}
	var given []string
	for name, on := range map[string]bool{"--class": f.classes.given, "--top": f.top > 0, "--output": f.output >= 0,
		"--similar-to": f.similarTo != "", "--segment": f.segment >= 0} {
		if on {
			given = append(given, name)
		}
	}
	if len(given) > 1 {
		slices.Sort(given)
		return gradcam.Target{}, usageError{fmt.Errorf("give one target: %s, not several", strings.Join(given, " or "))}
	}
	classes, err := f.classes.indices()
	if err != nil {
		return gradcam.Target{}, err
	}
	t := gradcam.Top(max(f.top, 1))
	switch {
	case len(classes) > 0:
		t = gradcam.Class(classes...)
	case f.output >= 0:
		t = gradcam.Output(f.output)
	}
	return f.against(t), nil
}

// against is t, or the evidence against it with --counterfactual.
func (f *camFlags) against(t gradcam.Target) gradcam.Target {
	if f.counterfactual {
		return gradcam.Counterfactual(t)
	}
	return t
}

// modelTarget returns the target of --similar-to and --segment, which need
// the model, or t for the others.
func (f *camFlags) modelTarget(r *models.Runner, t gradcam.Target) (gradcam.Target, error) {
	m := r.Model()
	switch {
	case f.similarTo != "":
		img, err := models.LoadImage(f.similarTo)
		if err != nil {
			return t, err
		}
		x, err := m.Input().Tensor(img)
		if err != nil {
			return t, fmt.Errorf("%s: %w", f.similarTo, err)
		}
		out, _, err := r.Run(x)
		if err != nil {
			return t, fmt.Errorf("%s: %w", f.similarTo, err)
		}
		defer out.FinalizeAll()
		if out.Shape().Rank() != 2 {
			return t, fmt.Errorf("--similar-to: the model's output is shaped %v, not an embedding [N,D]", out.Shape().Dimensions)
		}
		return f.against(gradcam.Similarity(tensors.MustCopyFlatData[float32](out))), nil
	case f.segment >= 0:
		var region heatmap.Map
		if f.region != "" {
			var err error
			if region, err = loadRegion(f.region, m.Input()); err != nil {
				return t, err
			}
		}
		return f.against(gradcam.Segment(f.segment, region)), nil
	}
	return t, nil
}

// loadRegion reads a PNG mask as a region at the model's input size: 1
// where the resized mask's luma is at least 128, else 0.
func loadRegion(path string, in models.Input) (heatmap.Map, error) {
	img, err := models.LoadImage(path)
	if err != nil {
		return heatmap.Map{}, err
	}
	b := img.Bounds()
	luma := heatmap.Map{Width: b.Dx(), Height: b.Dy(), Values: make([]float32, b.Dx()*b.Dy())}
	for y := range b.Dy() {
		for x := range b.Dx() {
			g := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray)
			luma.Values[y*b.Dx()+x] = float32(g.Y)
		}
	}
	r, err := luma.Resize(in.Width, in.Height)
	if err != nil {
		return heatmap.Map{}, fmt.Errorf("%s: %w", path, err)
	}
	inside := 0
	for i, v := range r.Values {
		r.Values[i] = 0
		if v >= 128 {
			r.Values[i], inside = 1, inside+1
		}
	}
	if inside == 0 {
		return heatmap.Map{}, fmt.Errorf("%s: the region is empty (no pixel with luma ≥ 128 at the model's %d×%d): draw it white on black", path, in.Width, in.Height)
	}
	return r, nil
}

// batch reads the input batch and, for the overlay, the pictures it shows.
func (f *camFlags) batch(m models.Model) (*tensors.Tensor, []image.Image, error) {
	if f.input != "" {
		data, shape, err := npy.ReadFloat32(f.input)
		if err != nil {
			return nil, nil, err
		}
		if len(shape) == 4 {
			h, w := m.Input().Layout.SpatialAxes()
			if err := fitSize(m, f.size, []image.Point{{shape[w], shape[h]}}); err != nil {
				return nil, nil, err
			}
		}
		in := m.Input()
		x := tensors.FromFlatDataAndDimensions(data, shape...)
		if err := models.CheckBatch(m, x.Shape()); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.input, err)
		}
		pictures := make([]image.Image, shape[0])
		for n := range pictures {
			if pictures[n], err = in.Image(data, n); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", f.input, err)
			}
		}
		return x, pictures, nil
	}
	pictures := make([]image.Image, len(f.images))
	for i, path := range f.images {
		img, err := models.LoadImage(path)
		if err != nil {
			return nil, nil, err
		}
		pictures[i] = img
	}
	if err := fitSize(m, f.size, imageSizes(pictures)); err != nil {
		return nil, nil, err
	}
	x, err := m.Input().Tensor(pictures...)
	return x, pictures, err
}

// inImage names the file an image came from in an error that a library
// gives about one image of the batch, by its index.
func (f *camFlags) inImage(err error) error {
	var camErr *gradcam.NonFiniteError
	var featErr *featuremaps.NonFiniteError
	var n int
	switch {
	case errors.As(err, &camErr):
		n = camErr.Image
	case errors.As(err, &featErr):
		n = featErr.Image
	default:
		return err
	}
	name := f.input
	if name == "" && n < len(f.images) {
		name = f.images[n]
	}
	return fmt.Errorf("%s: %w", name, err)
}

// stageNPY stages the normalised maps, or with raw the ReLU'd layer-resolution ones.
func stageNPY(out *atomicfile.Set, path string, res *gradcam.Result, raw, keepK bool) error {
	values, h, w := res.Normalized, res.Height, res.Width
	if raw {
		l := res.Raw[0]
		values, h, w = make([]float32, len(l.Values)), l.Height, l.Width
		for i, v := range l.Values {
			values[i] = max(v, 0)
		}
	}
	shape := []int{res.N, h, w}
	if keepK {
		shape = []int{res.N, res.K, h, w}
	}
	return out.Write(path, func(dst io.Writer) error { return npy.Encode(dst, values, shape...) })
}

// overlays draws each image's first map over its picture; a batch becomes one row per image.
func overlays(res *gradcam.Result, pictures []image.Image, labels []string) (image.Image, error) {
	rows := make([]display.Row, len(pictures))
	for n, pic := range pictures {
		c, heat, score, err := explained(res, n, 0)
		if err != nil {
			return nil, err
		}
		rows[n] = display.Row{Image: pic, Map: heat, Caption: fmt.Sprintf("image %d: %s, score %.3f", n, className(c, labels), score)}
	}
	if len(rows) == 1 {
		return display.Overlay(rows[0].Image, rows[0].Map).Colormap(display.Jet).Alpha(0.5).Image()
	}
	return display.Rows(rows...).Colormap(display.Jet).Alpha(0.5).Image()
}

// explained returns the class, map and score of image n's target k.
func explained(res *gradcam.Result, n, k int) (class int, heat heatmap.Map, score float32, err error) {
	if class, err = res.Class(n, k); err != nil {
		return 0, heatmap.Map{}, 0, err
	}
	if heat, err = res.Map(n, k); err != nil {
		return 0, heatmap.Map{}, 0, err
	}
	if score, err = res.Score(n, k); err != nil {
		return 0, heatmap.Map{}, 0, err
	}
	return class, heat, score, nil
}

func className(c int, labels []string) string {
	if c >= 0 && c < len(labels) {
		return fmt.Sprintf("class %d (%s)", c, labels[c])
	}
	return fmt.Sprintf("class %d", c)
}

// scoreName names the score of an --output or --similar-to target, which
// is no class; "" for the others.
func (f *camFlags) scoreName() string {
	what := ""
	switch {
	case f.output >= 0:
		what = fmt.Sprintf("output %d", f.output)
	case f.similarTo != "":
		what = "cosine similarity to " + f.similarTo
	default:
		return ""
	}
	if f.counterfactual {
		return "minus the " + what
	}
	return what
}

// predictions says, a line per image, its predicted class, its logit and
// probability, and the classes explained when they differ (or, for a
// target that is no class, the score called scoreName). It runs before the
// outputs are committed, so that its error leaves them unwritten.
func predictions(res *gradcam.Result, labels []string, scoreName string) (string, error) {
	var b strings.Builder
	for n := range res.N {
		if scoreName != "" {
			score, err := res.Score(n, 0)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "image %d: %s %.4f\n", n, scoreName, score)
			continue
		}
		c, logit, err := res.Predicted(n)
		if err != nil {
			return "", err
		}
		p, err := res.Probabilities(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "image %d: predicted %s, logit %.4f, probability %.4f", n, className(c, labels), logit, p[c])
		var targets []string
		differs := res.K > 1
		for k := range res.K {
			ck, _, score, err := explained(res, n, k)
			if err != nil {
				return "", err
			}
			differs = differs || ck != c || score != logit // a counterfactual's score is −logit
			targets = append(targets, fmt.Sprintf("%s (score %.4f)", className(ck, labels), score))
		}
		if differs {
			fmt.Fprintf(&b, "; explained %s", strings.Join(targets, ", "))
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// compareAll runs every method on the batch and draws one panel: for each
// image, one row per method (the image, the map, the overlay), captioned
// with the method and the class explained (the first target).
func compareAll(r *models.Runner, f camFlags, x *tensors.Tensor, pictures []image.Image, target gradcam.Target, stdout, stderr io.Writer) error {
	layers := f.layers
	if len(layers.names) == 0 { // One default for every method, named once.
		l, err := models.LastSpatialLayer(r.Model())
		if err != nil {
			return err
		}
		layers.names = listFlag{l.Name}
		noteDefaultLayer(stderr, l.Name)
	}
	names := gradcam.MethodNames()
	results := make([]*gradcam.Result, len(names))
	for i, name := range names {
		cam, err := newCAM(r, layers, gradcam.Methods[name], stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if results[i], err = explainCLI(cam, x, target, stderr); err != nil {
			return f.inImage(fmt.Errorf("%s: %w", name, err))
		}
	}
	labels := r.Model().Labels()
	lines, err := predictions(results[0], labels, f.scoreName())
	if err != nil {
		return err
	}
	var rows []display.Row
	for n, pic := range pictures {
		for i, name := range names {
			c, heat, _, err := explained(results[i], n, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rows = append(rows, display.Row{Image: pic, Map: heat,
				Caption: fmt.Sprintf("image %d, %s: %s", n, name, className(c, labels))})
		}
	}
	png, err := display.Rows(rows...).Colormap(display.Jet).Alpha(0.5).Image()
	if err != nil {
		return err
	}
	out := stageOutputs()
	defer out.Discard()
	if err := stagePNG(out, f.outPNG, png); err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	fmt.Fprint(stdout, lines)
	return nil
}
