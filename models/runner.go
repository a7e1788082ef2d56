package models

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/convlens/convlens/internal/check"

	"github.com/convlens/convlens/internal/catch"
	"github.com/convlens/convlens/internal/fastconv"
	"github.com/convlens/convlens/internal/parallel"
	// The gradient of grouped (depthwise) convolutions as one convolution, for
	// every graph a Runner differentiates.
	_ "github.com/convlens/convlens/internal/convgrad"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Runner executes a model's forward pass on a backend. It compiles one
// executable per set of requested layers and reuses it; GoMLX then caches
// one compilation per input shape. A Runner is safe for concurrent use.
//
// A Runner also keeps memory in check over long sessions: the Go heap from
// creeping up over many calls (see [Runner.SetHeapSlack]), and the copies of
// the weights that compiled graphs hold from piling up over many layers or
// methods (see [Runner.SetMaxGraphs]).
type Runner struct {
	backend compute.Backend
	model   Model
	err     error        // Why the runner cannot run (a nil backend or model), from NewRunner.
	slack   atomic.Int64 // Heap slack in bytes; negative: none.

	mu        sync.Mutex
	execs     map[string]*Executable
	recent    []*Executable // Executables used since they were last evicted, least recent first.
	maxGraphs int
}

// DefaultHeapSlack is a Runner's heap slack, in bytes, unless [Runner.SetHeapSlack] changes it.
const DefaultHeapSlack = 1 << 20

// DefaultGraphMemory is how much memory, about, a Runner lets its compiled
// graphs hold in copies of the weights, unless [Runner.SetMaxGraphs] says
// otherwise.
const DefaultGraphMemory = 1 << 30

// NewRunner returns a Runner for m on backend b.
//
// A nil b or m (or a nil pointer inside either interface), or a model
// without a weight store, gives a runner that runs nothing: [Runner.Err]
// says what is wrong, and [Runner.Run] and [Runner.Exec] return that error.
// This keeps NewRunner usable in one expression, as in
// gradcam.New(models.NewRunner(b, m)), with the error surfacing at the
// first call that would run.
func NewRunner(b compute.Backend, m Model) *Runner {
	r := &Runner{backend: b, model: m, execs: map[string]*Executable{}}
	r.SetHeapSlack(DefaultHeapSlack)
	switch {
	case check.IsNil(b):
		r.err = errors.New("models.NewRunner: backend b is nil: pass one from backend.New")
	case check.IsNil(m):
		r.err = errors.New("models.NewRunner: model m is nil: load one with models.LoadONNX or embedded.Open, or build one with models.NewNative")
	case check.IsNil(m.Store()):
		r.err = fmt.Errorf("models.NewRunner: model %s has a nil weight store: give models.NewNative a *model.Store (model.NewStore())", m.Name())
	default:
		shareWeights(b, m)
		r.SetMaxGraphs(defaultMaxGraphs(b, m))
	}
	return r
}

// shareWeights moves the model's large weights (fastconv.SharedMinBytes and
// more) into buffers of b, on a backend whose buffers are host memory: the
// storage moves, nothing is copied. The pure-Go backend with convlens' fast
// convolution then feeds those buffers to every graph as they are, instead of
// embedding copies: VGG-11's 478 MB of fully connected weights exist once,
// not once in the model and again in each graph (see internal/fastconv).
// A weight already on another backend stays there; graphs on b then hold
// their own copy of it, as before.
func shareWeights(b compute.Backend, m Model) {
	if !b.HasSharedBuffers() {
		return
	}
	moved := false
	for v := range m.Store().IterVariables() {
		if v.Shape().ByteSize() < fastconv.SharedMinBytes || !v.HasValue() {
			continue
		}
		t, err := v.Value()
		if err != nil || t.IsShared() {
			continue
		}
		// Each move leaves the old storage, hundreds of MB, as garbage, and
		// loading the model left the file's bytes: collecting before each
		// move lets the new buffer take the freed memory instead of growing
		// the process past it.
		runtime.GC()
		moved = t.ToDevice(b, 0) == nil || moved // an optimisation: on failure the weight stays local
	}
	if moved {
		runtime.GC()
	}
}

// errNilRunner is what the methods of a nil *Runner return.
var errNilRunner = errors.New("models: the runner is nil: make one with models.NewRunner")

// Err reports why the runner cannot run, or nil if it can: the runner is
// nil, or [NewRunner] was given a nil backend or model.
func (r *Runner) Err() error {
	if r == nil {
		return errNilRunner
	}
	return r.err
}

// defaultMaxGraphs is the number of graphs whose weight copies fit in
// DefaultGraphMemory, and at least 2; 0 (no limit) on backends that pass the
// weights to every graph instead of copying them in.
func defaultMaxGraphs(b compute.Backend, m Model) int {
	if !b.Capabilities().PreferConstantsForVariables {
		return 0
	}
	var weights int64
	for v := range m.Store().IterVariables() {
		weights += v.Shape().ByteSize()
	}
	if weights == 0 {
		return 0
	}
	// Each graph holds the weights as constants, and its matrix products keep
	// packed copies of them, forward and, for gradients, backward (all but the
	// largest, which shareWeights holds once: counted here all the same).
	return max(2, int(DefaultGraphMemory/(3*weights)))
}

// SetMaxGraphs sets how many executables (one per set of layers, method,
// target kind...) keep their compiled graphs; the least recently used beyond
// that are freed, and compiled again if used again. n ≤ 0 removes the limit.
//
// Why: the pure-Go backend embeds the weights in each compiled graph as
// constants and keeps packed copies for its matrix products, so every graph
// costs up to three times the model's weights (measured on ResNet-18, whose
// weights are 47 MB: +110–165 MB of heap per layer explained). Explaining
// layer after layer grew the process by 1.6 GB over 12 layers; with 3 graphs
// kept, its heap stayed under 600 MB. The default keeps graphs worth about
// [DefaultGraphMemory], and at least two: 7 for ResNet-18, 2 for VGG-11.
func (r *Runner) SetMaxGraphs(n int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.maxGraphs = n
	victims := r.evictable()
	r.mu.Unlock()
	evict(victims)
}

// evictable removes and returns the least recently used executables beyond
// the limit. r.mu must be held.
func (r *Runner) evictable() []*Executable {
	if r.maxGraphs <= 0 || len(r.recent) <= r.maxGraphs {
		return nil
	}
	n := len(r.recent) - r.maxGraphs
	victims := slices.Clone(r.recent[:n])
	r.recent = slices.Delete(r.recent, 0, n)
	return victims
}

// used marks e as the most recently used executable and frees the graphs of
// those beyond the limit.
func (r *Runner) used(e *Executable) {
	r.mu.Lock()
	if i := slices.Index(r.recent, e); i >= 0 {
		r.recent = slices.Delete(r.recent, i, i+1)
	}
	r.recent = append(r.recent, e)
	victims := r.evictable()
	r.mu.Unlock()
	evict(victims)
}

func evict(victims []*Executable) {
	for _, e := range victims {
		e.free()
	}
}

// SetHeapSlack sets how many bytes the Go heap may grow past its live size
// (as measured by the last garbage collection) before the runner collects
// garbage itself after an execution. A negative slack leaves collection to
// the Go runtime alone.
//
// Why: each call leaves a few MB of garbage (the pure-Go backend allocates
// bookkeeping per matrix product), and the Go runtime only collects once the
// heap has doubled since the last collection. The backend's buffer pools
// count as live, so over 1,000 ResNet-18 Grad-CAM calls the process grew from
// 290 MB to 560 MB and stayed there. Collecting once the heap has grown by
// 1 MiB (after every ResNet-18 call; every few calls of a small model) cost
// no time measurable on 2 cores and kept the process within 2% of its size
// after the 10th call in three runs out of three (4 MiB: within 3%; 2% of
// the live heap: up to 6%, drifting over the first 100 calls).
func (r *Runner) SetHeapSlack(bytes int64) {
	if r == nil {
		return
	}
	r.slack.Store(bytes)
}

// Executable is a graph compiled by a [Runner], returned by [Runner.Exec].
type Executable struct {
	runner *Runner
	fn     func(scope *model.Scope, inputs []*graph.Node) []*graph.Node

	mu   sync.RWMutex // Held for reading while executing, for writing while freeing.
	exec *model.Exec  // nil once freed by the runner: the next Exec compiles it again.
}

// Exec runs the graph on args (tensors or Go values, as [model.Exec.Exec]
// takes them) and returns its outputs, which the caller owns.
func (e *Executable) Exec(args ...any) ([]*tensors.Tensor, error) {
	if e == nil || e.runner == nil {
		return nil, errors.New("models: the executable is nil: get one from Runner.Exec, and check its error")
	}
	outs, err := e.run(args)
	e.runner.used(e)
	e.runner.settleHeap()
	return outs, err
}

func (e *Executable) run(args []any) ([]*tensors.Tensor, error) {
	for {
		e.mu.RLock()
		if e.exec != nil {
			defer e.mu.RUnlock()
			return e.exec.Exec(args...)
		}
		e.mu.RUnlock()
		e.mu.Lock()
		if e.exec == nil {
			exec, err := e.runner.newExec(e.fn)
			if err != nil {
				e.mu.Unlock()
				return nil, err
			}
			e.exec = exec
		}
		e.mu.Unlock()
	}
}

// free releases the compiled graphs, once no execution is using them.
func (e *Executable) free() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.exec != nil {
		e.exec.Finalize()
		e.exec = nil
	}
}

// settleHeap collects garbage if the heap has grown past the runner's slack.
func (r *Runner) settleHeap() {
	slack := r.slack.Load()
	if slack < 0 {
		return
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return
	}
	if live, now := s[0].Value.Uint64(), s[1].Value.Uint64(); now > live+uint64(slack) {
		runtime.GC()
	}
}

// Model returns the model the runner executes (nil for a nil runner).
func (r *Runner) Model() Model {
	if r == nil {
		return nil
	}
	return r.model
}

// Backend returns the backend the runner executes on (nil for a nil runner).
func (r *Runner) Backend() compute.Backend {
	if r == nil {
		return nil
	}
	return r.backend
}

// Run feeds a preprocessed batch x through the model and returns the logits
// and the activations of the named layers, all from the same forward pass.
// A runner that cannot run ([Runner.Err]), or a nil or freed x, is an error.
// On the pure-Go backend a batch of several images runs in parts, one per
// core, side by side (each image's outputs depend on that image alone).
func (r *Runner) Run(x *tensors.Tensor, layers ...string) (logits *tensors.Tensor, activations []*tensors.Tensor, err error) {
	if err := r.Err(); err != nil {
		return nil, nil, err
	}
	if err := x.CheckValid(); err != nil {
		return nil, nil, fmt.Errorf("models.Runner.Run: input x: %v: give a batch from Input.Tensor, and check its error", err)
	}
	for _, name := range layers {
		if _, err := FindLayer(r.model, name); err != nil {
			return nil, nil, err
		}
	}
	if err := CheckBatch(r.model, x.Shape()); err != nil {
		return nil, nil, err
	}
	n := x.Shape().Dimensions[0]
	if b := r.model.Input().Batch; b > 0 && n > b {
		return r.runParts(x, b, 1, layers)
	}
	if parts := fastconv.CallsAtOnce(r.backend, n); parts > 1 {
		return r.runParts(x, (n+parts-1)/parts, parts, layers)
	}
	return r.runOnce(x, layers)
}

// runOnce is Run in one call of the model's graph.
func (r *Runner) runOnce(x *tensors.Tensor, layers []string) (*tensors.Tensor, []*tensors.Tensor, error) {
	e, err := r.exec(strings.Join(layers, "\x00"), func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		logits, acts := r.model.Forward(scope, inputs[0], layers)
		return append([]*graph.Node{logits}, acts...)
	})
	if err != nil {
		return nil, nil, err
	}
	outs, err := e.Exec(x)
	if err != nil {
		return nil, nil, fmt.Errorf("running %s: %w", r.model.Name(), err)
	}
	return outs[0], outs[1:], nil
}

// runParts is Run in parts of size images, atOnce of them side by side, the
// outputs concatenated: a batch larger than the model's fixed batch, one
// chunk of that batch at a time, or the parts that fastconv.CallsAtOnce runs.
func (r *Runner) runParts(x *tensors.Tensor, size, atOnce int, layers []string) (*tensors.Tensor, []*tensors.Tensor, error) {
	chunks, err := SplitBatch(x, size)
	if err != nil {
		return nil, nil, err
	}
	results := make([][]*tensors.Tensor, len(chunks))
	errs := make([]error, len(chunks))
	parallel.ForN(len(chunks), atOnce, func(i int) {
		logits, acts, err := r.runOnce(chunks[i], layers)
		results[i], errs[i] = append([]*tensors.Tensor{logits}, acts...), err
	})
	outs := make([][]*tensors.Tensor, 1+len(layers))
	for i, res := range results {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		for j, t := range res {
			outs[j] = append(outs[j], t)
		}
	}
	joined := make([]*tensors.Tensor, len(outs))
	for i, parts := range outs {
		if joined[i], err = JoinBatch(parts); err != nil {
			return nil, nil, err
		}
	}
	return joined[0], joined[1:], nil
}

// SplitBatch cuts a batch (any dtype, batch on the first axis) into chunks
// of size images each, the last one possibly shorter.
func SplitBatch(x *tensors.Tensor, size int) ([]*tensors.Tensor, error) {
	if err := x.CheckValid(); err != nil {
		return nil, fmt.Errorf("models.SplitBatch: x: %v", err)
	}
	dims := x.Shape().Dimensions
	if len(dims) == 0 || size <= 0 {
		return nil, fmt.Errorf("cannot split a tensor shaped %v into batches of %d", dims, size)
	}
	var chunks []*tensors.Tensor
	err := x.ConstBytes(func(data []byte) {
		per := len(data) / max(dims[0], 1)
		for start := 0; start < dims[0]; start += size {
			end := min(start+size, dims[0])
			c := tensors.FromShape(shapes.Make(x.DType(), append([]int{end - start}, dims[1:]...)...))
			_ = c.MutableBytes(func(out []byte) { copy(out, data[start*per:end*per]) }) // A new local tensor.
			chunks = append(chunks, c)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("splitting a batch: %w", err)
	}
	return chunks, nil
}

// JoinBatch concatenates tensors of one dtype and shape but the first axis
// along that axis, undoing [SplitBatch].
func JoinBatch(parts []*tensors.Tensor) (*tensors.Tensor, error) {
	if len(parts) == 0 {
		return nil, errors.New("nothing to join")
	}
	for i, p := range parts {
		if err := p.CheckValid(); err != nil {
			return nil, fmt.Errorf("models.JoinBatch: part %d: %v", i, err)
		}
	}
	dims := slices.Clone(parts[0].Shape().Dimensions)
	if len(dims) == 0 {
		return nil, errors.New("cannot join scalars along a batch axis")
	}
	dims[0] = 0
	for _, p := range parts {
		s := p.Shape()
		if s.DType != parts[0].DType() || s.Rank() != len(dims) || !slices.Equal(s.Dimensions[1:], dims[1:]) {
			return nil, fmt.Errorf("cannot join a batch shaped %v to one shaped %v", s, parts[0].Shape())
		}
		dims[0] += s.Dimensions[0]
	}
	out := tensors.FromShape(shapes.Make(parts[0].DType(), dims...))
	var err error
	_ = out.MutableBytes(func(dst []byte) { // A new local tensor.
		off := 0
		for _, p := range parts {
			if e := p.ConstBytes(func(src []byte) { off += copy(dst[off:], src) }); e != nil {
				err = fmt.Errorf("joining a batch: %w", e)
			}
		}
	})
	return out, err
}

// Exec returns the runner's executable for key, creating it with fn on first
// use. Packages that build their own graph around [Model.Forward] (Grad-CAM,
// for one) use it to share the runner's backend, store and cache.
func (r *Runner) Exec(key string, fn func(scope *model.Scope, inputs []*graph.Node) []*graph.Node) (*Executable, error) {
	if err := r.Err(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("models.Runner.Exec: graph function fn for %q is nil", key)
	}
	return r.exec("custom\x00"+key, fn)
}

func (r *Runner) exec(key string, fn func(scope *model.Scope, inputs []*graph.Node) []*graph.Node) (*Executable, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.execs[key]; ok {
		return e, nil
	}
	exec, err := r.newExec(fn)
	if err != nil {
		return nil, err
	}
	e := &Executable{runner: r, fn: fn, exec: exec}
	r.execs[key] = e
	return e, nil
}

func (r *Runner) newExec(fn func(scope *model.Scope, inputs []*graph.Node) []*graph.Node) (*model.Exec, error) {
	e, err := model.NewExec(r.backend, r.model.Store(), fn)
	if err != nil {
		return nil, fmt.Errorf("preparing %s: %w", r.model.Name(), err)
	}
	return e, nil
}

// Close frees the compiled executables. Closing a nil runner does nothing.
func (r *Runner) Close() {
	if r == nil {
		return
	}
	r.mu.Lock()
	var all []*Executable
	for k, e := range r.execs {
		all = append(all, e)
		delete(r.execs, k)
	}
	r.recent = nil
	r.mu.Unlock()
	evict(all)
}

// CheckBatch verifies that a preprocessed batch has the shape and dtype m takes.
func CheckBatch(m Model, s shapes.Shape) error {
	if check.IsNil(m) {
		return errors.New("models.CheckBatch: model m is nil")
	}
	want := m.Input().Shape(1)
	if s.DType != dtypes.Float32 {
		return fmt.Errorf("input has dtype %s; the model takes float32", s.DType)
	}
	if s.Rank() != len(want) {
		return fmt.Errorf("input has shape %v; the model takes a batch shaped %v (%s) with any N ≥ 1", s.Dimensions, dimsWithN(want), m.Input().Layout)
	}
	if s.Dimensions[0] == 0 {
		return errors.New("empty batch: give at least one image")
	}
	if b := m.Input().Batch; b > 0 && s.Dimensions[0]%b != 0 {
		return fmt.Errorf("batch of %d images; model %s takes a multiple of %d at a time (its file fixes the batch size)", s.Dimensions[0], m.Name(), b)
	}
	for i := 1; i < len(want); i++ {
		if s.Dimensions[i] != want[i] {
			return fmt.Errorf("input has shape %v; the model takes a batch shaped %v (%s)", s.Dimensions, dimsWithN(want), m.Input().Layout)
		}
	}
	return nil
}

func dimsWithN(dims []int) string {
	parts := make([]string, len(dims))
	parts[0] = "N"
	for i, d := range dims[1:] {
		parts[i+1] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

var (
	shapeBackendOnce sync.Once
	shapeBackend     compute.Backend
	shapeBackendErr  error
)

// buildShapes builds fn's graph for an input of the given dimensions without
// running it and returns its outputs' shapes. Building is backend-independent,
// so the always-available pure-Go backend serves.
func buildShapes(store *model.Store, dims []int, fn func(scope *model.Scope, x *graph.Node) []*graph.Node) (out []shapes.Shape, err error) {
	shapeBackendOnce.Do(func() { shapeBackend, shapeBackendErr = gobackend.New("") })
	if shapeBackendErr != nil {
		return nil, shapeBackendErr
	}
	g := graph.NewGraph(shapeBackend, "shapes")
	defer g.Finalize()
	err = catch.Do(func() {
		x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, dims...))
		for _, n := range fn(store.RootScope(), x) {
			out = append(out, n.Shape())
		}
	})
	return out, err
}
