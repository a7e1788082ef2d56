// Command bench times convlens' Grad-CAM on the pure-Go backend against PyTorch
// computing the same Grad-CAM the way pytorch-grad-cam does, on the same CPU, and
// prints a Markdown table (issue 6, "Benchmarks").
//
//	go run ./bench                    # full run: five models, batch 1 and 8, memory (20-30 min)
//	go run ./bench -quick             # smoke run: ResNet-18, batch 1, 2 runs (one or two minutes)
//	go run ./bench -table=false -extras=false   # the memory section alone (3-5 min)
//	make bench                        # the full run, table also written to bench/results.md
//
// Build settings: export GOTOOLCHAIN=go1.27.3 GOEXPERIMENT=simd first (or source
// scripts/env.sh); without GOEXPERIMENT=simd the backend's matrix multiply is ~14× slower
// and the header says so.
//
// # Models
//
// torchvision ResNet-18, VGG-11, MobileNetV2, DenseNet-121 and EfficientNet-B0 with
// random weights and re-estimated BatchNorm statistics, exported to ONNX by
// scripts/reference/export_torchvision.py (--no-check, --batch = the largest batch
// size) into -dir on first use; 224×224 inputs (the exporter's seeded batch, tiled to
// the batch size).
//
// # Rows
//
// Grad-CAM at the "last" conv block that NAME.json names, at every batch size (targets
// of issue 17: convlens/PyTorch ≤ 0.33 at batch 1, ≤ 0.5 at larger batches); Grad-CAM
// at the "early" layer, batch 1 (≤ 0.5); and, with -methods, ResNet-18's Score-CAM at
// the last block (pytorch-grad-cam's ScoreCAM, 16 masked images per forward pass;
// ≤ 0.5) and Integrated Gradients (32 steps from a zero baseline, the midpoint rule;
// PyTorch runs all steps in one batch, as captum does with internal_batch_size =
// steps; no ratio target), batch 1. Every row's peak RSS must be ≤ PyTorch's. The
// report counts the rows that miss a target; missed speed targets do not fail the run.
//
// # The two sides
//
// convlens: models.LoadONNX, models.NewRunner on backend.New("go") (the pure-Go
// backend with the fast convolution unless CONVLENS_FASTCONV=0, which this command
// passes on), gradcam.New(runner, layer).Done(), then cam.Explain(x, gradcam.Top(1)):
// top-1 class, normalised maps at input size, copied back to Go slices.
//
// PyTorch: scripts/reference/torch_gradcam.py on Debian's /usr/bin/python3 (torch 1.13): the
// torchvision model with the weights read from the same ONNX file (same function; its
// logits are checked against the exporter's), and Grad-CAM as pytorch-grad-cam 1.5
// computes it: a forward hook that keeps the activation and registers a hook for its
// gradient, zero_grad, backward of the top-1 logits (parameters requiring grad, as
// there), weights = spatial mean of the gradient, ReLU of the weighted sum, min-max,
// cv2.resize, min-max again. The normalised maps of both sides are compared (max |Δ|).
//
// # Method
//
// For each model and batch size the bench starts two persistent workers, a convlens
// child process (this binary re-executed) and a Python process, each loading the model
// once and then taking commands on stdin, so that neither start-up nor model loading is
// timed. Each side runs one untimed warm-up call (convlens compiles its graph there).
// Then -runs rounds, each timing one call on each side back to back, the order
// alternating between rounds; times are measured inside the workers around the call
// only. Reported: the median time of each side, and the median over rounds of the
// per-round ratio convlens/PyTorch, which cancels most of the drift of a shared
// machine's load. Both sides use -threads threads (GOMAXPROCS; torch.set_num_threads).
// Peak memory is each worker's peak resident set (VmHWM in /proc/PID/status, read by
// this process after the timed runs): model, inputs and everything a call allocated.
//
// Below the table, on ResNet-18, each in a fresh convlens worker:
//
//   - top-5 classes in one call against top-1 (alternated, median ratio; target ≤ 1.3);
//   - peak RSS at batch 8 (from the table, or measured; target ≤ 1.5 GB = 1.5e9 bytes);
//   - -leak consecutive Grad-CAM calls at batch 1: RSS after the 10th and after the
//     last (target: within 5%), and the live Go heap at both points (after a forced
//     GC, once the RSS is read), which tells a leak from garbage not yet collected;
//   - the GFLOP/s of a forward pass (convolution and matrix-product FLOPs counted from
//     the ONNX weight shapes and the layers' output shapes, 2·Kh·Kw·Cin/groups·Cout·H·W
//     per Conv), against a 1024×1024×1024 float32 DotGeneral on the same backend.
//
// # Memory
//
// Last, the peak RSS of the methods that run the model many times per image (issue 13;
// memory.go lists the cases): each case is one call in a fresh convlens worker, whose
// VmHWM is read after it; ResNet-18 Integrated Gradients, SmoothGrad and Score-CAM at
// batch 1 and every method on testdata/tinycnn at batch 64 must stay ≤ 1.0 GB, the
// many-point methods on tinycnn at batch 192 must complete. A missed target fails the
// bench (and TestSmoke, whose quick mode keeps two cases). No PyTorch side.
//
// # Flags
//
//	-models    comma-separated models (default all five)
//	-batches   comma-separated batch sizes (default 1,8)
//	-runs      timed rounds: N, or N with per-model exceptions, e.g. 7,vgg11=5 (default)
//	-leak      consecutive calls of the memory-growth check (default 1000; 0 skips it)
//	-extras    run the ResNet-18 measurements below the table (default true)
//	-dir       export cache (default .cache/bench under the module root, git-ignored)
//	-out       also write the report to this file
//	-threads   threads for each side (default: the number of CPUs)
//	-python    the Python with torch, torchvision, onnx and cv2 (default /usr/bin/python3)
//	-omp-wait  OMP_WAIT_POLICY of the PyTorch worker (default PASSIVE; "" keeps the
//	           environment's). With GOMP's default, spinning, policy, PyTorch's two
//	           OpenMP threads slow down up to 10× when other processes load the CPUs
//	           (measured: ResNet-18 Grad-CAM 0.28 s passive, 1.3-3.2 s spinning, at load 7
//	           on 2 cores); passive keeps the comparison about compute, not scheduling.
//	-table     run the table against PyTorch (default true)
//	-methods   add the Score-CAM and Integrated Gradients rows (default true; off with -quick)
//	-memory    run the memory section (default true)
//	-mem-cap   bytes: kill a memory-section worker whose RSS passes this (default 6e9)
//	-points    gradcam.Builder.PointsPerCall of the memory section (default 0: the
//	           library's default)
//	-quick     smoke run: -models resnet18 -batches 1 -runs 2 -leak 20, unless given,
//	           and two memory cases (ResNet-18 and tinycnn Integrated Gradients)
//	-v         echo the workers' stderr
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/convlens/convlens/internal/repo"

	"github.com/convlens/convlens/internal/npy"
)

// allModels are the torchvision models export_torchvision.py and torch_gradcam.py know.
var allModels = []string{"resnet18", "vgg11", "mobilenet_v2", "densenet121", "efficientnet_b0"}

// Issue 17's targets, ratios convlens/PyTorch: Grad-CAM at the last block at batch 1
// and at larger batches, at the early layer (batch 1), and Score-CAM (batch 1).
const (
	lastTarget      = 0.33
	lastBatchTarget = 0.5
	earlyTarget     = 0.5
	scoreCAMTarget  = 0.5
	forwardTarget   = 0.75 // ResNet-18 forward GFLOP/s, fraction of the matmul peak
	igSteps         = 32   // convlens' default
)

// job is what one row of the table measures: a method at a layer of one model,
// one batch size.
type job struct {
	model, layer string // layer: export_torchvision.py's key, "last" or "early"
	method       string // "gradcam", "scorecam" or "integratedgradients"
	batch, runs  int
	target       float64 // ratio convlens/PyTorch; 0: none
}

// commands are the two workers' commands for one timed call of the job.
func (j job) commands() (goCmd, pyCmd string) {
	switch j.method {
	case "gradcam":
		return fmt.Sprintf("gradcam %d 1", j.batch), "gradcam"
	case "integratedgradients":
		return fmt.Sprintf("explain %s %d 1", j.method, j.batch), fmt.Sprintf("ig %d", igSteps)
	default:
		return fmt.Sprintf("explain %s %d 1", j.method, j.batch), j.method
	}
}

func (j job) String() string {
	names := map[string]string{"gradcam": "Grad-CAM", "scorecam": "Score-CAM", "integratedgradients": fmt.Sprintf("Integrated Gradients (%d steps)", igSteps)}
	if j.method == "integratedgradients" {
		return names[j.method]
	}
	return names[j.method] + ", " + j.layer
}

// jobs lists the table's rows: Grad-CAM at the last block at every batch size, at
// the early layer at batch 1, then ResNet-18's Score-CAM and Integrated Gradients
// at batch 1 when methods is set.
func jobs(cfg config, methods bool) []job {
	var out []job
	for _, m := range cfg.models {
		for _, b := range cfg.batches {
			t := lastBatchTarget
			if b == 1 {
				t = lastTarget
			}
			out = append(out, job{model: m, layer: "last", method: "gradcam", batch: b, runs: cfg.runs.forModel(m), target: t})
		}
	}
	for _, m := range cfg.models {
		out = append(out, job{model: m, layer: "early", method: "gradcam", batch: 1, runs: cfg.runs.forModel(m), target: earlyTarget})
	}
	if methods && slices.Contains(cfg.models, extrasModel) {
		runs := min(3, cfg.runs.forModel(extrasModel))
		out = append(out,
			job{model: extrasModel, layer: "last", method: "scorecam", batch: 1, runs: runs, target: scoreCAMTarget},
			job{model: extrasModel, layer: "last", method: "integratedgradients", batch: 1, runs: runs})
	}
	return out
}

const (
	top5Target   = 1.3
	peakTarget   = 1.5e9 // bytes
	leakTarget   = 0.05
	matmulSize   = 1024
	extrasModel  = "resnet18"
	extrasBatch  = 8 // for the peak-RSS target
	leakCheckpt  = 10
	leakProgress = 100
)

type config struct {
	models  []string
	batches []int
	runs    runsFlag
	leak    int
	extras  bool
	table   bool    // the Grad-CAM table against PyTorch
	methods bool    // its Score-CAM and Integrated Gradients rows
	memory  bool    // the peak-RSS section (memory.go)
	memCap  float64 // bytes: a memory worker past this RSS is killed
	points  int     // Builder.PointsPerCall of the memory section; 0: the default
	quick   bool
	dir     string
	out     string
	threads int
	python  string
	ompWait string
	verbose bool
	root    string // module root
}

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := runChild(spec); err != nil {
			fmt.Printf("err %s\n", oneLine(err.Error()))
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	cfg := config{runs: runsFlag{def: 7, per: map[string]int{"vgg11": 5}}}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	modelsFlag := fs.String("models", strings.Join(allModels, ","), "comma-separated models: "+strings.Join(allModels, ", "))
	batchesFlag := fs.String("batches", "1,8", "comma-separated batch sizes")
	fs.Var(&cfg.runs, "runs", "timed rounds per model and batch: N or N,model=M,... (medians of these)")
	fs.IntVar(&cfg.leak, "leak", 1000, "consecutive Grad-CAM calls of the memory-growth check on ResNet-18 (0: skip)")
	fs.BoolVar(&cfg.extras, "extras", true, "run the ResNet-18 measurements below the table")
	fs.BoolVar(&cfg.table, "table", true, "run the Grad-CAM table against PyTorch")
	fs.BoolVar(&cfg.methods, "methods", true, "add ResNet-18's Score-CAM and Integrated Gradients rows to the table (not with -quick)")
	fs.BoolVar(&cfg.memory, "memory", true, "run the peak-RSS section: Integrated Gradients, SmoothGrad, Score-CAM... on ResNet-18 and tinycnn")
	fs.Float64Var(&cfg.memCap, "mem-cap", 6e9, "bytes: kill a memory-section worker whose RSS passes this")
	fs.IntVar(&cfg.points, "points", 0, "points per call of the model in the memory section (gradcam.Builder.PointsPerCall; 0: the library's default)")
	fs.StringVar(&cfg.dir, "dir", "", "export cache (default .cache/bench under the module root)")
	fs.StringVar(&cfg.out, "out", "", "also write the report to this file")
	fs.IntVar(&cfg.threads, "threads", runtime.NumCPU(), "threads for each side")
	fs.StringVar(&cfg.python, "python", "/usr/bin/python3", "Python with torch, torchvision, onnx and cv2")
	fs.StringVar(&cfg.ompWait, "omp-wait", "PASSIVE", "OMP_WAIT_POLICY for PyTorch's OpenMP threads (\"\": leave the environment's)")
	quick := fs.Bool("quick", false, "smoke run: -models resnet18 -batches 1 -runs 2 -leak 20 (unless given), two memory cases")
	fs.BoolVar(&cfg.verbose, "v", false, "echo the workers' stderr")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.quick = *quick
	if *quick {
		cfg.methods = false
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["models"] {
			*modelsFlag = extrasModel
		}
		if !set["batches"] {
			*batchesFlag = "1"
		}
		if !set["runs"] {
			cfg.runs = runsFlag{def: 2}
		}
		if !set["leak"] {
			cfg.leak = 20
		}
	}
	for _, m := range strings.Split(*modelsFlag, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		if !slices.Contains(allModels, m) {
			return cfg, fmt.Errorf("unknown model %q; known: %s", m, strings.Join(allModels, ", "))
		}
		cfg.models = append(cfg.models, m)
	}
	for _, s := range strings.Split(*batchesFlag, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || b < 1 {
			return cfg, fmt.Errorf("bad batch size %q", s)
		}
		cfg.batches = append(cfg.batches, b)
	}
	if len(cfg.models) == 0 || len(cfg.batches) == 0 {
		return cfg, errors.New("no models or no batch sizes")
	}
	if cfg.threads < 1 {
		return cfg, errors.New("-threads must be at least 1")
	}
	if cfg.points < 0 {
		return cfg, errors.New("-points must be at least 1, or 0 for the library's default")
	}
	return cfg, nil
}

// runsFlag is N, or N,model=M,...
type runsFlag struct {
	def int
	per map[string]int
}

func (r *runsFlag) String() string {
	if r == nil {
		return ""
	}
	parts := []string{strconv.Itoa(r.def)}
	for _, m := range slices.Sorted(mapKeys(r.per)) {
		parts = append(parts, fmt.Sprintf("%s=%d", m, r.per[m]))
	}
	return strings.Join(parts, ",")
}

func (r *runsFlag) Set(s string) error {
	*r = runsFlag{per: map[string]int{}}
	for _, p := range strings.Split(s, ",") {
		name, num, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found {
			num, name = name, ""
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 {
			return fmt.Errorf("bad run count %q", p)
		}
		if name == "" {
			r.def = n
		} else {
			r.per[name] = n
		}
	}
	if r.def == 0 {
		return errors.New("give a default run count, e.g. 7 or 7,vgg11=5")
	}
	return nil
}

func (r runsFlag) forModel(m string) int {
	if n, ok := r.per[m]; ok {
		return n
	}
	return r.def
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// row is one line of the table.
type row struct {
	job
	goT, pyT, ratios []float64
	goFirst, pyFirst float64
	goPeak, pyPeak   int64
	maxDiff          float64
	classDiffer      int
	goInfo, pyInfo   string
	err              error
}

func run(cfg config, stdout, logw io.Writer) error {
	start := time.Now()
	if cfg.root == "" {
		root, err := repo.Root()
		if err != nil {
			return err
		}
		cfg.root = root
	}
	if cfg.dir == "" {
		cfg.dir = filepath.Join(cfg.root, ".cache", "bench")
	}
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	echo := io.Writer(nil)
	if cfg.verbose {
		echo = logw
	}

	versions, err := pythonVersions(cfg.python)
	if err != nil {
		return err
	}
	var need []string
	if cfg.table {
		need = slices.Clone(cfg.models)
	}
	if (cfg.extras || cfg.memory) && !slices.Contains(need, extrasModel) {
		need = append(need, extrasModel)
	}
	if err := ensureExports(cfg, need, logf); err != nil {
		return err
	}
	layers := map[[2]string]string{}
	for _, m := range need {
		for _, key := range []string{"last", "early"} {
			if layers[[2]string{m, key}], err = layerNode(cfg.dir, m, key); err != nil {
				return err
			}
		}
	}
	loadStart := loadAvg()

	var rows []*row
	if cfg.table {
		for _, j := range jobs(cfg, cfg.methods) {
			r := measure(cfg, j, layers[[2]string{j.model, j.layer}], echo, logf)
			rows = append(rows, r)
			if r.err != nil {
				logf("%s: %v", r.name(), r.err)
			}
		}
	}
	var extras []string
	if cfg.extras {
		extras = measureExtras(cfg, layers[[2]string{extrasModel, "last"}], rows, echo, logf)
	}
	var mem []memRow
	if cfg.memory {
		mem = measureMemory(cfg, cfg.quick, echo, logf)
	}

	var rep strings.Builder
	writeHeader(&rep, cfg, versions, rows, loadStart, time.Since(start))
	if cfg.table {
		writeTable(&rep, rows)
		fmt.Fprintf(&rep, "\n%d of %d rows miss a target (ratio or peak RSS).\n", missed(rows), len(rows))
	}
	if len(extras) > 0 {
		rep.WriteString("\nResNet-18, separate measurements (fresh convlens workers):\n\n")
		for _, e := range extras {
			rep.WriteString("- " + e + "\n")
		}
	}
	if cfg.memory {
		writeMemory(&rep, cfg, mem)
	}
	fmt.Fprint(stdout, rep.String())
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(rep.String()), 0o644); err != nil {
			return err
		}
		logf("wrote %s", cfg.out)
	}
	for _, r := range rows {
		if r.err != nil {
			return fmt.Errorf("%d of the measurements failed (see the table)", countErrs(rows))
		}
	}
	for _, r := range mem {
		if !r.ok() {
			return errors.New("a memory target was missed (see the peak-RSS table)")
		}
	}
	return nil
}

func countErrs(rows []*row) int {
	n := 0
	for _, r := range rows {
		if r.err != nil {
			n++
		}
	}
	return n
}

func pythonVersions(python string) (string, error) {
	out, err := exec.Command(python, "-c",
		"import torch, torchvision, onnx, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'opencv', cv2.__version__)").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s lacks torch, torchvision, onnx or cv2 (Debian: apt-get install python3-torch python3-torchvision python3-onnx python3-opencv): %v: %s",
			python, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// ensureExports exports the models whose files are missing from cfg.dir.
func ensureExports(cfg config, names []string, logf func(string, ...any)) error {
	var missing []string
	for _, m := range names {
		for _, suffix := range []string{".onnx", ".json", ".input.npy", ".logits.npy"} {
			if _, err := os.Stat(filepath.Join(cfg.dir, m+suffix)); err != nil {
				missing = append(missing, m)
				break
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	batch := slices.Max(cfg.batches)
	logf("exporting %s to %s (once; VGG-11 is 531 MB)", strings.Join(missing, ","), cfg.dir)
	script := filepath.Join(cfg.root, "scripts", "reference", "export_torchvision.py")
	cmd := exec.Command(cfg.python, script, "--out", cfg.dir, "--models", strings.Join(missing, ","),
		"--batch", strconv.Itoa(batch), "--no-check")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("export failed: %v\n%s", err, out)
	}
	return nil
}

// layerNode is the ONNX node output that NAME.json gives the layer key.
func layerNode(dir, model, key string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, model+".json"))
	if err != nil {
		return "", err
	}
	var info struct {
		Layers map[string]struct {
			ONNXOutput string `json:"onnx_output"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return "", fmt.Errorf("%s.json: %w", model, err)
	}
	l := info.Layers[key].ONNXOutput
	if l == "" {
		return "", fmt.Errorf("%s.json names no %s layer", model, key)
	}
	return l, nil
}

func startGo(cfg config, model, layer string, echo io.Writer) (*worker, error) {
	return startGoFiles(cfg, model, filepath.Join(cfg.dir, model+".onnx"), layer, filepath.Join(cfg.dir, model+".input.npy"), echo)
}

// startGoFiles starts a convlens worker on the given model file, layer and input.
func startGoFiles(cfg config, model, onnx, layer, input string, echo io.Writer) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, _ := json.Marshal(childConfig{ONNX: onnx, Layer: layer, Input: input})
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec), fmt.Sprintf("GOMAXPROCS=%d", cfg.threads))
	return startWorker("convlens "+model, cmd, echo)
}

func startPython(cfg config, model, layerKey string, batch int, echo io.Writer) (*worker, error) {
	cmd := exec.Command(cfg.python, filepath.Join(cfg.root, "scripts", "reference", "torch_gradcam.py"),
		"--onnx", filepath.Join(cfg.dir, model+".onnx"), "--model", model, "--layer", layerKey,
		"--input", filepath.Join(cfg.dir, model+".input.npy"), "--batch", strconv.Itoa(batch),
		"--threads", strconv.Itoa(cfg.threads), "--check-logits", filepath.Join(cfg.dir, model+".logits.npy"))
	t := strconv.Itoa(cfg.threads)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS="+t, "MKL_NUM_THREADS="+t)
	if cfg.ompWait != "" {
		cmd.Env = append(cmd.Env, "OMP_WAIT_POLICY="+cfg.ompWait)
	}
	return startWorker("pytorch "+model, cmd, echo)
}

// startBoth starts the two workers of a session concurrently (loading is not timed).
func startBoth(cfg config, j job, layer string, echo io.Writer) (g, p *worker, err error) {
	var wg sync.WaitGroup
	var gErr, pErr error
	wg.Add(2)
	go func() { defer wg.Done(); g, gErr = startGo(cfg, j.model, layer, echo) }()
	go func() { defer wg.Done(); p, pErr = startPython(cfg, j.model, j.layer, j.batch, echo) }()
	wg.Wait()
	if err = errors.Join(gErr, pErr); err != nil {
		g.close()
		p.close()
		return nil, nil, err
	}
	return g, p, nil
}

// measure times one job, alternating the two sides.
func measure(cfg config, j job, layer string, echo io.Writer, logf func(string, ...any)) *row {
	r := &row{job: j}
	name, batch := r.name(), j.batch
	logf("%s: starting workers", name)
	g, p, err := startBoth(cfg, j, layer, echo)
	if err != nil {
		r.err = err
		return r
	}
	defer g.close()
	defer p.close()
	r.goInfo, r.pyInfo = g.info, p.info
	goCmd, pyCmd := j.commands()
	goCall := func() (float64, error) { return g.seconds("%s", goCmd) }
	pyCall := func() (float64, error) { return p.seconds("%s", pyCmd) }
	if r.goFirst, r.err = goCall(); r.err != nil {
		return r
	}
	if r.pyFirst, r.err = pyCall(); r.err != nil {
		return r
	}
	logf("%s: warm-up (first call) convlens %.3fs, PyTorch %.3fs; %d rounds", name, r.goFirst, r.pyFirst, r.runs)
	for i := range r.runs {
		var tg, tp float64
		if i%2 == 0 {
			if tg, r.err = goCall(); r.err == nil {
				tp, r.err = pyCall()
			}
		} else {
			if tp, r.err = pyCall(); r.err == nil {
				tg, r.err = goCall()
			}
		}
		if r.err != nil {
			return r
		}
		r.goT, r.pyT, r.ratios = append(r.goT, tg), append(r.pyT, tp), append(r.ratios, tg/tp)
		logf("%s: round %d/%d convlens %.3fs PyTorch %.3fs ratio %.2f", name, i+1, r.runs, tg, tp, tg/tp)
	}
	// Peak RSS now, before anything else runs in the workers.
	if r.goPeak, r.err = g.status("VmHWM"); r.err != nil {
		return r
	}
	if r.pyPeak, r.err = p.status("VmHWM"); r.err != nil {
		return r
	}
	if j.method != "integratedgradients" { // the PyTorch side keeps no IG maps
		r.maxDiff, r.classDiffer, r.err = compareMaps(cfg.dir, g, p, j.model, batch)
	} else {
		r.maxDiff = math.NaN()
	}
	return r
}

func (r *row) name() string { return fmt.Sprintf("%s %s batch %d", r.model, r.job, r.batch) }

// compareMaps saves the last maps of both sides and returns their largest
// absolute difference over images whose top-1 classes agree, and how many differ.
func compareMaps(dir string, g, p *worker, model string, batch int) (float64, int, error) {
	gPath := filepath.Join(dir, fmt.Sprintf("maps-%s-b%d-convlens.npy", model, batch))
	pPath := filepath.Join(dir, fmt.Sprintf("maps-%s-b%d-pytorch.npy", model, batch))
	gCls, err := g.call("save %s", gPath)
	if err != nil {
		return 0, 0, err
	}
	pCls, err := p.call("save %s", pPath)
	if err != nil {
		return 0, 0, err
	}
	gm, gs, err := npy.ReadFloat32(gPath)
	if err != nil {
		return 0, 0, err
	}
	pm, ps, err := npy.ReadFloat32(pPath)
	if err != nil {
		return 0, 0, err
	}
	if !slices.Equal(gs, ps) {
		return 0, 0, fmt.Errorf("map shapes differ: convlens %v, PyTorch %v", gs, ps)
	}
	gc, pc := strings.Split(gCls, ","), strings.Split(pCls, ",")
	size := len(gm) / gs[0]
	maxDiff, differ := 0.0, 0
	for n := range gs[0] {
		if n >= len(gc) || n >= len(pc) || gc[n] != pc[n] {
			differ++
			continue
		}
		for i := n * size; i < (n+1)*size; i++ {
			maxDiff = math.Max(maxDiff, math.Abs(float64(gm[i]-pm[i])))
		}
	}
	os.Remove(gPath)
	os.Remove(pPath)
	return maxDiff, differ, nil
}

// measureExtras runs the ResNet-18 measurements printed below the table.
func measureExtras(cfg config, layer string, rows []*row, echo io.Writer, logf func(string, ...any)) []string {
	var out []string
	runs := max(cfg.runs.forModel(extrasModel), 1)
	fail := func(what string, err error) {
		logf("%s: %v", what, err)
		out = append(out, fmt.Sprintf("%s: failed: %s", what, oneLine(err.Error())))
	}

	// (a) top-5 against top-1, and (d) forward GFLOP/s against the matmul peak.
	if err := func() error {
		logf("extras: top-5 vs top-1, forward GFLOP/s, matmul peak")
		g, err := startGo(cfg, extrasModel, layer, echo)
		if err != nil {
			return err
		}
		defer g.close()
		for _, k := range []int{1, 5} { // warm-up: compiles both graphs
			if _, err := g.seconds("gradcam 1 %d", k); err != nil {
				return err
			}
		}
		var t1, t5, ratios []float64
		for i := range runs {
			a, err := g.seconds("gradcam 1 %d", 1+4*(i%2))
			if err != nil {
				return err
			}
			b, err := g.seconds("gradcam 1 %d", 5-4*(i%2))
			if err != nil {
				return err
			}
			if i%2 == 1 {
				a, b = b, a
			}
			t1, t5, ratios = append(t1, a), append(t5, b), append(ratios, b/a)
		}
		r := median(ratios)
		out = append(out, fmt.Sprintf("Top-5 classes in one call vs one class, batch 1: %s vs %s, ratio %.2f (target ≤ %.1f: %s; median of %d alternated pairs)",
			fmtSec(median(t5)), fmtSec(median(t1)), r, top5Target, verdict(r <= top5Target), runs))

		s, err := g.call("flops")
		if err != nil {
			return err
		}
		flops, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		if _, err := g.seconds("matmul %d", matmulSize); err != nil { // warm-up
			return err
		}
		var mm []float64
		for range runs {
			t, err := g.seconds("matmul %d", matmulSize)
			if err != nil {
				return err
			}
			mm = append(mm, t)
		}
		peak := 2 * math.Pow(matmulSize, 3) / median(mm) / 1e9
		var parts []string
		for _, b := range cfg.batches {
			if _, err := g.seconds("forward %d", b); err != nil { // warm-up
				return err
			}
			var ft []float64
			for range runs {
				t, err := g.seconds("forward %d", b)
				if err != nil {
					return err
				}
				ft = append(ft, t)
			}
			gf := flops * float64(b) / median(ft) / 1e9
			parts = append(parts, fmt.Sprintf("batch %d: %s per forward, %.1f GFLOP/s = %.0f%% of peak (target ≥ %.0f%%: %s)",
				b, fmtSec(median(ft)), gf, 100*gf/peak, 100*forwardTarget, verdict(gf/peak >= forwardTarget)))
		}
		out = append(out, fmt.Sprintf("Forward pass, %.2f GFLOP per image (conv + matmul): %s; matmul peak (%d³ float32 DotGeneral, same backend) %.1f GFLOP/s",
			flops/1e9, strings.Join(parts, "; "), matmulSize, peak))
		return nil
	}(); err != nil {
		fail("Top-5 / GFLOP/s", err)
	}

	// (b) peak RSS at batch 8.
	var peak int64
	for _, r := range rows {
		if r.model == extrasModel && r.method == "gradcam" && r.layer == "last" && r.batch == extrasBatch && r.err == nil {
			peak = r.goPeak
		}
	}
	if peak == 0 {
		if err := func() error {
			logf("extras: peak RSS at batch %d", extrasBatch)
			g, err := startGo(cfg, extrasModel, layer, echo)
			if err != nil {
				return err
			}
			defer g.close()
			for range 2 {
				if _, err := g.seconds("gradcam %d 1", extrasBatch); err != nil {
					return err
				}
			}
			peak, err = g.status("VmHWM")
			return err
		}(); err != nil {
			fail("Peak RSS", err)
		}
	}
	if peak > 0 {
		out = append(out, fmt.Sprintf("Peak RSS, batch %d Grad-CAM (model loading included): %s (target ≤ %s: %s)",
			extrasBatch, fmtBytes(peak), fmtBytes(peakTarget), verdict(float64(peak) <= peakTarget)))
	}

	// (c) memory growth over consecutive calls.
	if cfg.leak > 0 {
		if err := func() error {
			logf("extras: %d consecutive Grad-CAM calls", cfg.leak)
			g, err := startGo(cfg, extrasModel, layer, echo)
			if err != nil {
				return err
			}
			defer g.close()
			checkpt := min(leakCheckpt, cfg.leak)
			var rss10, rssN int64
			var heap10, heapN string
			var times []float64
			for i := 1; i <= cfg.leak; i++ {
				t, err := g.seconds("gradcam 1 1")
				if err != nil {
					return err
				}
				times = append(times, t)
				if i == checkpt || i == cfg.leak {
					rss, err := g.status("VmRSS")
					if err != nil {
						return err
					}
					heap, err := g.call("mem")
					if err != nil {
						return err
					}
					if i == checkpt {
						rss10, heap10 = rss, heap
					}
					rssN, heapN = rss, heap
				}
				if i%leakProgress == 0 {
					logf("extras: call %d/%d, %s", i, cfg.leak, fmtSec(t))
				}
			}
			growth := float64(rssN-rss10) / float64(rss10)
			out = append(out, fmt.Sprintf("%d consecutive Grad-CAM calls, batch 1: RSS after call %d %s, after call %d %s, %+.1f%% (target within ±%.0f%%: %s); live Go heap (forced GC, after reading the RSS) %s → %s; median call %s",
				cfg.leak, checkpt, fmtBytes(rss10), cfg.leak, fmtBytes(rssN), 100*growth, 100*leakTarget,
				verdict(math.Abs(growth) <= leakTarget), liveHeap(heap10), liveHeap(heapN), fmtSec(median(times))))
			return nil
		}(); err != nil {
			fail("Consecutive calls", err)
		}
	}
	return out
}

func liveHeap(mem string) string {
	f := strings.Fields(mem)
	if len(f) == 0 {
		return "?"
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return "?"
	}
	return fmtBytes(n)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtSec(s float64) string {
	switch {
	case math.IsNaN(s):
		return "–"
	case s < 1:
		return fmt.Sprintf("%.3f s", s)
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

// fmtBytes prints bytes in MB (10⁶ bytes).
func fmtBytes(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

func writeHeader(w *strings.Builder, cfg config, versions string, rows []*row, loadStart string, took time.Duration) {
	goInfo, pyInfo := "", ""
	for _, r := range rows {
		if r.goInfo != "" && goInfo == "" {
			goInfo = r.goInfo
		}
		if r.pyInfo != "" && pyInfo == "" {
			pyInfo = r.pyInfo
		}
	}
	fast := "on"
	if os.Getenv(fastConvEnv) == "0" {
		fast = "off (" + fastConvEnv + "=0)"
	}
	simd := "GOEXPERIMENT=simd"
	if !strings.Contains(buildSetting("GOEXPERIMENT"), "simd") {
		simd = "WITHOUT GOEXPERIMENT=simd (matrix multiply ~14× slower: export GOEXPERIMENT=simd)"
	}
	fmt.Fprintf(w, "Grad-CAM at the last conv block and at an early layer, Score-CAM and Integrated Gradients, top-1 class, normalised 224×224 maps; %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "- Machine: %s, %d CPUs, %s RAM; load average %s at the start, %s at the end (other processes share it); run took %s.\n",
		cpuModel(), runtime.NumCPU(), memTotal(), loadStart, loadAvg(), took.Round(time.Second))
	fmt.Fprintf(w, "- convlens: pure-Go backend (backend.New(\"go\")), fast convolution %s, %s %s, GOMAXPROCS %d.\n",
		fast, runtime.Version(), simd, cfg.threads)
	omp := "OMP_WAIT_POLICY=" + cfg.ompWait
	if cfg.ompWait == "" {
		omp = "OMP_WAIT_POLICY=" + os.Getenv("OMP_WAIT_POLICY") + " (from the environment)"
	}
	fmt.Fprintf(w, "- PyTorch: %s, %d threads, %s, pytorch-grad-cam's method (scripts/reference/torch_gradcam.py), weights from the same ONNX files.\n", versions, cfg.threads, omp)
	fmt.Fprintf(w, "- Times: median of the rounds (one call of each side per round, order alternating, after one warm-up call each); ratio: median of the per-round ratios convlens/PyTorch. Peak RSS: VmHWM of each side's worker process (model loading included). Δ map: max |convlens − PyTorch| of the normalised maps.\n")
	if goInfo != "" || pyInfo != "" {
		fmt.Fprintf(w, "- Workers: convlens %q; PyTorch %q.\n", goInfo, pyInfo)
	}
	w.WriteString("\n")
}

func writeTable(w *strings.Builder, rows []*row) {
	w.WriteString("| model | method, layer | batch | rounds | convlens | PyTorch | convlens / PyTorch | target | convlens img/s | PyTorch img/s | peak RSS convlens | peak RSS PyTorch | RSS ≤ PyTorch | max Δ map |\n")
	w.WriteString("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|\n")
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | %s | %d | %d | failed: %s | | | | | | | | | |\n", r.model, r.job, r.batch, len(r.ratios), strings.ReplaceAll(oneLine(firstN(r.err.Error(), 200)), "|", "/"))
			continue
		}
		g, p, ratio := median(r.goT), median(r.pyT), median(r.ratios)
		target := "none"
		if r.target > 0 {
			target = fmt.Sprintf("≤ %.2g: %s", r.target, verdict(ratio <= r.target))
		}
		diff := "–"
		if !math.IsNaN(r.maxDiff) {
			diff = fmt.Sprintf("%.1e", r.maxDiff)
		}
		if r.classDiffer > 0 {
			diff += fmt.Sprintf(" (%d/%d images: top-1 differs)", r.classDiffer, r.batch)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %.2f | %s | %.3g | %.3g | %s | %s | %s | %s |\n",
			r.model, r.job, r.batch, r.runs, fmtSec(g), fmtSec(p), ratio, target,
			float64(r.batch)/g, float64(r.batch)/p, fmtBytes(r.goPeak), fmtBytes(r.pyPeak), verdict(r.goPeak <= r.pyPeak), diff)
	}
}

// missed counts the rows whose ratio or peak-RSS target was missed.
func missed(rows []*row) int {
	n := 0
	for _, r := range rows {
		if r.err == nil && (r.target > 0 && median(r.ratios) > r.target || r.goPeak > r.pyPeak) {
			n++
		}
	}
	return n
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func buildSetting(key string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == key {
				return s.Value
			}
		}
	}
	return ""
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	kb, err := procStatusFile("/proc/meminfo", "MemTotal")
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.0f GB", float64(kb)/1e9)
}

func procStatusFile(path, field string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
