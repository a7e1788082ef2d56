// Command coverage measures which torchvision models, exported at which ONNX
// opsets, convlens loads and explains as PyTorch does, and prints a Markdown table.
//
//	go run ./coverage                                  # every family at opsets 7, 9, 13, 17
//	go run ./coverage -families resnet18,vit_b_16 -opsets 13,17
//	make coverage                                      # the full run, also written to coverage/results.md
//
// Build settings: source scripts/env.sh first (GOTOOLCHAIN, GOEXPERIMENT=simd).
//
// # Exports
//
// scripts/reference/coverage_export.py builds each torchvision 0.14 model with
// random weights and re-estimated BatchNorm statistics, exports it with torch
// 1.13 at each opset (dynamic batch axis), and writes a PyTorch Grad-CAM
// reference for two images (a cat and a seeded random image) at the family's
// usual target layer: the module path, and the ONNX node output torch gave the
// last node inside that module. Exports are kept in -dir and reused; one
// exporter process runs per family, for the opsets missing there. Where torch
// itself cannot export a model at an opset, the row says so.
//
// # Rows
//
// For each family and opset, on the pure-Go backend unless -backend says
// otherwise: models.LoadONNX; the layer list (as `convlens layers` prints
// it); Grad-CAM (gradcam.New(runner, layer).Done(), then Explain of the
// two-image batch for the reference's classes, PyTorch's top-1) at the
// reference's module path, as a PyTorch user names it (it must resolve to the
// node output torch gave the module's last op), and again with no layer given (the default,
// models.LastSpatialLayer). Errors are the largest over the two images of
// max|convlens − PyTorch| / max|PyTorch|, for the logits, the raw signed map
// at layer resolution and the normalised map at input size. A row passes
// within 1e-4 raw and 1e-3 normalised, the tolerances of the torchvision tests
// of cmd/convlens. A failure in one row is reported in it and the run goes on;
// each row's model and runner are released before the next one.
//
// # Flags
//
//	-families  comma-separated families (default all 23, see allFamilies)
//	-opsets    comma-separated ONNX opsets (default 7,9,13,17)
//	-dir       export cache (default .cache/coverage under the module root, git-ignored);
//	           an opset whose JSON is there is not exported again: delete it to re-export
//	-out       also write the report to this file
//	-python    the Python with torch, torchvision, onnx and cv2 (default /usr/bin/python3)
//	-backend   GoMLX backend configuration (default go)
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/convlens/convlens/internal/repo"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/backend"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
)

// allFamilies are the families scripts/reference/coverage_export.py knows (its TARGETS).
var allFamilies = []string{
	"alexnet", "vgg16", "vgg16_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
	"densenet121", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
	"efficientnet_v2_s", "shufflenet_v2_x1_0", "inception_v3", "googlenet", "squeezenet1_1",
	"mnasnet1_0", "regnet_y_400mf", "regnet_x_400mf", "convnext_tiny", "vit_b_16", "swin_t",
}

// Tolerances of a passing row: relative to the reference's largest magnitude.
const (
	rawTol  = 1e-4
	normTol = 1e-3
)

type config struct {
	families []string
	opsets   []int
	dir      string
	out      string
	python   string
	backend  string
	root     string // module root
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "coverage:", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "coverage:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("coverage", flag.ContinueOnError)
	families := fs.String("families", strings.Join(allFamilies, ","), "comma-separated torchvision families")
	opsets := fs.String("opsets", "7,9,13,17", "comma-separated ONNX opsets")
	fs.StringVar(&cfg.dir, "dir", "", "export cache (default .cache/coverage under the module root)")
	fs.StringVar(&cfg.out, "out", "", "also write the report to this file")
	fs.StringVar(&cfg.python, "python", "/usr/bin/python3", "Python with torch, torchvision, onnx and cv2")
	fs.StringVar(&cfg.backend, "backend", "go", "GoMLX backend configuration")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, f := range strings.Split(*families, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(allFamilies, f) {
			return cfg, fmt.Errorf("unknown family %q; known: %s", f, strings.Join(allFamilies, ", "))
		}
		cfg.families = append(cfg.families, f)
	}
	for _, s := range strings.Split(*opsets, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 7 || k > 17 {
			return cfg, fmt.Errorf("bad opset %q: torch 1.13 exports opsets 7 to 17", s)
		}
		cfg.opsets = append(cfg.opsets, k)
	}
	if len(cfg.families) == 0 || len(cfg.opsets) == 0 {
		return cfg, errors.New("no families or no opsets")
	}
	return cfg, nil
}

// setup fills in the module root and the export directory.
func (cfg *config) setup() error {
	if cfg.root == "" {
		root, err := repo.Root()
		if err != nil {
			return err
		}
		cfg.root = root
	}
	if cfg.dir == "" {
		cfg.dir = filepath.Join(cfg.root, ".cache", "coverage")
	}
	return os.MkdirAll(cfg.dir, 0o755)
}

func run(cfg config, stdout, logw io.Writer) error {
	start := time.Now()
	if err := cfg.setup(); err != nil {
		return err
	}
	b, err := backend.New(cfg.backend)
	if err != nil {
		return fmt.Errorf("backend %q: %w", cfg.backend, err)
	}
	defer b.Finalize()
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "%s coverage: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}

	var rows []*row
	for _, family := range cfg.families {
		exportErrs := exportMissing(cfg, family, cfg.opsets, logf)
		for _, opset := range cfg.opsets {
			r := &row{family: family, opset: opset, exportErr: exportErrs[opset]}
			if r.exportErr == nil {
				cover(cfg, b, r)
			}
			logf("%s opset %d: %s", family, opset, r.summary())
			rows = append(rows, r)
		}
	}

	var rep strings.Builder
	writeHeader(&rep, cfg, b, rows, time.Since(start))
	writeTable(&rep, rows)
	writeErrors(&rep, rows)
	fmt.Fprint(stdout, rep.String())
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(rep.String()), 0o644); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
		logf("wrote %s", cfg.out)
	}
	return nil
}

func stem(dir, family string, opset int) string {
	return filepath.Join(dir, fmt.Sprintf("%s-opset%d", family, opset))
}

// exportMissing runs the exporter for the opsets of family that have no
// JSON in cfg.dir yet, and returns the error of each opset it could not export.
func exportMissing(cfg config, family string, opsets []int, logf func(string, ...any)) map[int]error {
	var missing []int
	var list []string
	for _, k := range opsets {
		if _, err := os.Stat(stem(cfg.dir, family, k) + ".json"); err != nil {
			missing = append(missing, k)
			list = append(list, strconv.Itoa(k))
		}
	}
	errs := map[int]error{}
	if len(missing) == 0 {
		return errs
	}
	logf("%s: exporting opsets %s to %s", family, strings.Join(list, ","), cfg.dir)
	script := filepath.Join(cfg.root, "scripts", "reference", "coverage_export.py")
	cmd := exec.Command(cfg.python, script, "--family", family, "--opset", strings.Join(list, ","), "--out", cfg.dir)
	out, err := cmd.CombinedOutput()
	for _, k := range missing {
		if _, statErr := os.Stat(stem(cfg.dir, family, k) + ".json"); statErr == nil {
			continue
		}
		if err != nil {
			errs[k] = fmt.Errorf("exporter failed: %v: %s", err, lastLines(string(out), 3))
		} else {
			errs[k] = fmt.Errorf("exporter wrote no %s", filepath.Base(stem(cfg.dir, family, k))+".json")
		}
	}
	return errs
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// reference is the part of NAME-opsetK.json this command reads.
type reference struct {
	ExportError string `json:"export_error"`
	LayerError  string `json:"layer_error"`
	ONNX        struct {
		File string `json:"file"`
	} `json:"onnx"`
	Input  file  `json:"input"`
	Logits file  `json:"logits"`
	Top1   []int `json:"top1"`
	Layer  struct {
		Module     string `json:"module"`
		ONNXOutput string `json:"onnx_output"`
		Raw        file   `json:"raw"`
		Normalised file   `json:"normalised"`
	} `json:"layer"`
	Torch string `json:"torch"`
}

type file struct {
	File  string `json:"file"`
	Shape []int  `json:"shape"`
}

// arrays are the reference's tensors.
type arrays struct {
	input, logits, raw, norm []float32
	inputShape, rawShape     []int
}

func readReference(dir, family string, opset int) (*reference, error) {
	path := stem(dir, family, opset) + ".json"
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &ref, nil
}

func (ref *reference) arrays(dir string) (*arrays, error) {
	a := &arrays{inputShape: ref.Input.Shape, rawShape: ref.Layer.Raw.Shape}
	for _, f := range []struct {
		file
		dst *[]float32
	}{{ref.Input, &a.input}, {ref.Logits, &a.logits}, {ref.Layer.Raw, &a.raw}, {ref.Layer.Normalised, &a.norm}} {
		v, shape, err := npy.ReadFloat32(filepath.Join(dir, f.File))
		if err != nil {
			return nil, err
		}
		if !slices.Equal(shape, f.Shape) {
			return nil, fmt.Errorf("%s has shape %v, its JSON says %v", f.File, shape, f.Shape)
		}
		*f.dst = v
	}
	return a, nil
}

// row is one family at one opset.
type row struct {
	family string
	opset  int

	exportErr, loadErr error
	layers             int  // number of layers convlens lists
	listed             bool // whether they include the reference's layer
	layer              string
	named, dflt        *comparison
	namedErr, dfltErr  error
	took               time.Duration
}

// comparison is one Grad-CAM run against the reference.
type comparison struct {
	layer             string
	logits, raw, norm float64
	top1Differs       int  // images whose convlens top-1 is not PyTorch's
	blank             bool // some image's map is zero everywhere
}

func (c *comparison) pass() bool { return c.raw <= rawTol && c.norm <= normTol }

// pass reports whether the row's Grad-CAM at the reference layer is within the tolerances.
func (r *row) pass() bool { return r.named != nil && r.named.pass() }

// cover fills in r: loads the export and compares convlens' Grad-CAM with the reference.
func cover(cfg config, b compute.Backend, r *row) {
	start := time.Now()
	compare(cfg, b, r)
	r.took = time.Since(start)
	// The model (VGG-16: 528 MB) and its graphs are garbage now: return them
	// to the OS before the next row loads its own.
	runtime.GC()
	debug.FreeOSMemory()
}

func compare(cfg config, b compute.Backend, r *row) {
	ref, err := readReference(cfg.dir, r.family, r.opset)
	if err != nil {
		r.exportErr = err
		return
	}
	if ref.ExportError != "" {
		r.exportErr = fmt.Errorf("torch.onnx.export: %s", ref.ExportError)
		return
	}
	r.layer = ref.Layer.ONNXOutput
	if ref.LayerError != "" {
		r.exportErr = fmt.Errorf("reference layer %s: %s", ref.Layer.Module, ref.LayerError)
		return
	}
	want, err := ref.arrays(cfg.dir)
	if err != nil {
		r.exportErr = fmt.Errorf("reading the reference: %w", err)
		return
	}
	m, err := models.LoadONNX(filepath.Join(cfg.dir, ref.ONNX.File))
	if err != nil {
		r.loadErr = err
		return
	}
	layers := m.Layers()
	r.layers = len(layers)
	r.listed = slices.ContainsFunc(layers, func(l models.Layer) bool { return l.Name == r.layer })

	runner := models.NewRunner(b, m)
	defer runner.Close()
	x := tensors.FromFlatDataAndDimensions(want.input, want.inputShape...)
	// The layer as a PyTorch user names it: the module path, which must
	// resolve to the node torch gave the module's last op.
	r.named, r.namedErr = explain(runner, x, ref.Top1, want, ref.Layer.Module)
	if r.namedErr == nil && r.named.layer != r.layer {
		r.namedErr = fmt.Errorf("module path %s resolves to %s; torch's last node in it is %s", ref.Layer.Module, r.named.layer, r.layer)
	}
	r.dflt, r.dfltErr = explain(runner, x, ref.Top1, want)
}

// explain runs Grad-CAM at layers (none: the default) for PyTorch's classes and compares.
func explain(runner *models.Runner, x *tensors.Tensor, classes []int, want *arrays, layers ...string) (*comparison, error) {
	cam, err := gradcam.New(runner, layers...).Done()
	if err != nil {
		return nil, err
	}
	res, err := cam.Explain(x, gradcam.Class(classes...))
	if err != nil {
		return nil, err
	}
	n := want.inputShape[0]
	c := &comparison{layer: cam.Layers()[0]}
	for i := range n {
		if p, _, err := res.Predicted(i); err != nil || p != classes[i] {
			c.top1Differs++
		}
	}
	c.logits = perImage(res.Logits, want.logits, n)
	if h, w := res.Raw[0].Height, res.Raw[0].Width; h != want.rawShape[1] || w != want.rawShape[2] {
		return c, fmt.Errorf("raw map %d×%d (h×w) at %s, PyTorch's %d×%d", h, w, c.layer, want.rawShape[1], want.rawShape[2])
	}
	if len(res.Normalized) != len(want.norm) {
		return c, fmt.Errorf("normalised maps of %d values, PyTorch's %d", len(res.Normalized), len(want.norm))
	}
	c.raw = perImage(res.Raw[0].Values, want.raw, n)
	c.norm = perImage(res.Normalized, want.norm, n)
	size := len(res.Normalized) / n
	for i := range n {
		c.blank = c.blank || !slices.ContainsFunc(res.Normalized[i*size:(i+1)*size], func(v float32) bool { return v != 0 })
	}
	return c, nil
}

// perImage is the largest over the n images of max|got − want| / max|want|.
func perImage(got, want []float32, n int) float64 {
	size := len(want) / n
	var worst float64
	for i := range n {
		g, w := got[i*size:(i+1)*size], want[i*size:(i+1)*size]
		var diff, scale float64
		for j := range w {
			diff = math.Max(diff, math.Abs(float64(g[j])-float64(w[j])))
			scale = math.Max(scale, math.Abs(float64(w[j])))
		}
		if scale > 0 {
			diff /= scale
		}
		worst = math.Max(worst, diff)
	}
	return worst
}

// summary is the row in a few words, for the progress log.
func (r *row) summary() string {
	switch {
	case r.exportErr != nil:
		return "export: " + short(r.exportErr, 120)
	case r.loadErr != nil:
		return "load: " + short(r.loadErr, 120)
	case r.namedErr != nil:
		return "cam: " + short(r.namedErr, 120)
	}
	return fmt.Sprintf("raw %.1e, normalised %.1e, %s (%s)", r.named.raw, r.named.norm, verdict(r.pass()), r.took.Round(time.Second/10))
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// short is an error on one line, at most n bytes, safe in a table cell.
func short(err error, n int) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}

func writeHeader(w *strings.Builder, cfg config, b compute.Backend, rows []*row, took time.Duration) {
	torch := "?"
	for _, r := range rows {
		if ref, err := readReference(cfg.dir, r.family, r.opset); err == nil && ref.Torch != "" {
			torch = ref.Torch
			break
		}
	}
	pass, exported := 0, 0
	for _, r := range rows {
		if r.pass() {
			pass++
		}
		if r.exportErr == nil {
			exported++
		}
	}
	fmt.Fprintf(w, "# convlens coverage of torchvision models and ONNX opsets\n\n")
	fmt.Fprintf(w, "%s; %d of the %d rows torch exported within tolerance (%d of %d rows torch itself cannot export); run took %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), pass, exported, len(rows)-exported, len(rows), took.Round(time.Second))
	fmt.Fprintf(w, "- Exports: torch %s, torchvision 0.14 models with random weights and re-estimated BatchNorm statistics (scripts/reference/coverage_export.py), dynamic batch axis; a batch of two images (a cat, a seeded random image).\n", torch)
	fmt.Fprintf(w, "- convlens: backend %s, %s, GOMAXPROCS %d. Grad-CAM for PyTorch's top-1 classes at the reference layer, given by its PyTorch module path (which must resolve to the node torch gave the module's last op), and at the default layer (no layer given).\n", b.Name(), runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "- Errors: largest over the images of max|convlens − PyTorch| / max|PyTorch|: logits, raw signed map (layer resolution), normalised map (input size). Within tolerance: raw ≤ %.0e and normalised ≤ %.0e. Time: convlens' loading and both Grad-CAMs, compilation included.\n\n", rawTol, normTol)
}

func writeTable(w *strings.Builder, rows []*row) {
	w.WriteString("| family | opset | export | load | layers | cam | logits err | raw rel err | norm rel err | within tol | default layer | time |\n")
	w.WriteString("|---|---:|---|---|---:|---|---:|---:|---:|---|---|---:|\n")
	for _, r := range rows {
		cells := []string{r.family, strconv.Itoa(r.opset), "ok", "–", "", "–", "", "", "", "no", "–", ""}
		switch {
		case r.exportErr != nil:
			cells[2] = "failed: " + short(r.exportErr, 100)
		case r.loadErr != nil:
			cells[3] = "failed: " + short(r.loadErr, 100)
		default:
			cells[3] = "ok"
			cells[4] = strconv.Itoa(r.layers)
			if !r.listed {
				cells[4] += " (reference layer not listed)"
			}
			cells[5] = "ok"
			if r.namedErr != nil {
				cells[5] = "failed: " + short(r.namedErr, 100)
			}
			if c := r.named; c != nil {
				cells[6] = fmt.Sprintf("%.1e", c.logits)
				if c.top1Differs > 0 {
					cells[6] += fmt.Sprintf(" (top-1 differs on %d)", c.top1Differs)
				}
				if r.namedErr == nil {
					cells[7], cells[8], cells[9] = fmt.Sprintf("%.1e", c.raw), fmt.Sprintf("%.1e", c.norm), verdict(c.pass())
				}
			}
			cells[10] = defaultCell(r)
			cells[11] = fmt.Sprintf("%.1f s", r.took.Seconds())
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// defaultCell says which layer the default chose and how its map compares.
func defaultCell(r *row) string {
	c, err := r.dflt, r.dfltErr
	if c == nil {
		return "failed: " + short(err, 100)
	}
	where := "same layer"
	if c.layer != r.layer {
		where = "`" + c.layer + "`"
	}
	if err != nil {
		return where + ": " + short(err, 100)
	}
	if c.pass() {
		return where + ", within tol"
	}
	return fmt.Sprintf("%s: raw %.1e, norm %.1e", where, c.raw, c.norm)
}

// writeErrors lists every error on one line each; torch's can run to pages of
// TorchScript graph, kept whole in the export's JSON.
func writeErrors(w *strings.Builder, rows []*row) {
	var lines []string
	for _, r := range rows {
		for _, e := range []struct {
			stage string
			err   error
		}{{"export", r.exportErr}, {"load", r.loadErr}, {"cam at " + r.layer, r.namedErr}, {"default layer", r.dfltErr}} {
			if e.err != nil {
				lines = append(lines, fmt.Sprintf("- %s opset %d, %s: %s", r.family, r.opset, e.stage, short(e.err, 600)))
			}
		}
	}
	if len(lines) > 0 {
		w.WriteString("\nErrors (600 characters at most):\n\n" + strings.Join(lines, "\n") + "\n")
	}
}
