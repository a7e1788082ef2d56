package fastconv

import (
	"runtime"
	"sync"
	"weak"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
)

// Wrap returns a backend that behaves exactly like b, except that the functions it builds
// lower ConvGeneral onto b's own Pad, Slice, Concatenate, Reshape, Transpose and DotGeneral
// ops whenever the convolution is covered (see the package documentation), and call b's
// ConvGeneral otherwise.
//
// The returned backend shares b's buffers, devices and lifetime: finalising one finalises
// the other.
func Wrap(b compute.Backend) compute.Backend {
	return &backend{Backend: b, tinyMACs: tinyConvMACs, sharedMinBytes: SharedMinBytes,
		shared: &sharedBuffers{entries: map[sharedKey]weak.Pointer[sharedBuffer]{}}}
}

// CallsAtOnce is how many calls of a graph to run side by side for n
// independent items (images of a batch, points of a method) on b: one per core
// on a backend that Wrap returned, because the pure-Go backend runs its ops
// other than the matrix product on one core, and two calls keep both cores
// busy; one on any other backend, which spreads each op over the cores itself.
// Measured on 2 cores, Grad-CAM at the last block at batch 8, one call against
// two halves side by side: ResNet-18 0.33 -> 0.25 s, MobileNetV2 0.38 -> 0.25
// s, DenseNet-121 0.81 -> 0.61 s, EfficientNet-B0 0.60 -> 0.37 s, peak RSS
// lower too; four quarters were slower than two halves.
func CallsAtOnce(b compute.Backend, n int) int {
	if _, ok := b.(*backend); !ok {
		return 1
	}
	return max(1, min(n, runtime.GOMAXPROCS(0)))
}

// backend decorates a compute.Backend so that its builders are decorated.
type backend struct {
	compute.Backend
	// tinyMACs: single-channel convolutions of fewer multiply-adds go to the wrapped
	// backend (see tinyConv).
	tinyMACs int
	// sharedMinBytes: float constants of main functions this large are held once, in
	// shared (shared.go).
	sharedMinBytes int
	shared         *sharedBuffers
}

// Builder implements compute.Backend.
func (b *backend) Builder(name string) compute.Builder {
	return &builder{Builder: b.Backend.Builder(name), backend: b}
}

// Buffers and executables are wrapped too: GoMLX tells backends apart by the
// instance a buffer reports, so a tensor computed here must report the
// decorated backend, or feeding it to the next computation fails.

// buffer is a wrapped backend's buffer that reports the decorated backend.
type buffer struct {
	compute.Buffer
	backend *backend
	shared  *sharedBuffer // Set if graphs may feed it as a constant (shared.go).
	// released: the owner has finalized a shared buffer, which graphs may still feed.
	released bool
}

func (b *buffer) Backend() compute.Backend { return b.backend }

// Finalize implements compute.Buffer: a buffer that graphs feed as a constant is
// freed once they are freed too.
func (b *buffer) Finalize() error {
	if b.shared == nil {
		return b.Buffer.Finalize()
	}
	if b.released {
		return nil
	}
	b.released = true
	return b.backend.shared.release(b.shared)
}

func (b *buffer) CopyToDevice(d compute.DeviceNum) (compute.Buffer, error) {
	inner, err := b.Buffer.CopyToDevice(d)
	return b.backend.wrapBuffer(inner), err
}

func (b *backend) wrapBuffer(inner compute.Buffer) compute.Buffer {
	if inner == nil {
		return nil
	}
	return &buffer{Buffer: inner, backend: b}
}

func unwrapBuffer(x compute.Buffer) compute.Buffer {
	if w, ok := x.(*buffer); ok {
		return w.Buffer
	}
	return x
}

func (b *backend) BufferFromFlatData(d compute.DeviceNum, flat any, shape shapes.Shape) (compute.Buffer, error) {
	inner, err := b.Backend.BufferFromFlatData(d, flat, shape)
	return b.wrapBuffer(inner), err
}

func (b *backend) NewSharedBuffer(d compute.DeviceNum, shape shapes.Shape) (compute.Buffer, any, error) {
	inner, flat, err := b.Backend.NewSharedBuffer(d, shape)
	if err != nil || inner == nil {
		return b.wrapBuffer(inner), flat, err
	}
	return &buffer{Buffer: inner, backend: b, shared: b.shared.register(inner, flat, b.sharedMinBytes)}, flat, nil
}

// executable unwraps the buffers it is given and wraps those it returns. Between the
// caller's inputs it feeds the large constants that its main function takes as
// parameters (shared.go).
type executable struct {
	compute.Executable
	backend *backend
	// sharedAt are the indices of the parameters that shared feeds, in increasing order.
	sharedAt []int
	shared   []*sharedBuffer
	once     sync.Once
}

// Inputs implements compute.Executable: the caller's parameters only.
func (e *executable) Inputs() ([]string, []shapes.Shape) {
	names, inputShapes := e.Executable.Inputs()
	if len(e.sharedAt) == 0 || len(names) != len(inputShapes) {
		return names, inputShapes
	}
	var n []string
	var s []shapes.Shape
	next := 0
	for i := range names {
		if next < len(e.sharedAt) && e.sharedAt[next] == i {
			next++
			continue
		}
		n, s = append(n, names[i]), append(s, inputShapes[i])
	}
	return n, s
}

// Finalize implements compute.Executable, letting go of its shared constants.
func (e *executable) Finalize() {
	e.Executable.Finalize()
	e.once.Do(func() { _ = e.backend.shared.release(e.shared...) }) // Finalize reports no errors
}

func (e *executable) Execute(inputs []compute.Buffer, donate []bool, d compute.DeviceNum) ([]compute.Buffer, error) {
	in := make([]compute.Buffer, 0, len(inputs)+len(e.shared))
	var give []bool
	if donate != nil {
		give = make([]bool, 0, cap(in))
	}
	next := 0
	for i, x := range inputs {
		for next < len(e.sharedAt) && e.sharedAt[next] == len(in) {
			in = append(in, e.shared[next].buf)
			if give != nil {
				give = append(give, false)
			}
			next++
		}
		in = append(in, unwrapBuffer(x))
		if give != nil && i < len(donate) {
			give = append(give, donate[i])
		}
	}
	for ; next < len(e.shared); next++ {
		in = append(in, e.shared[next].buf)
		if give != nil {
			give = append(give, false)
		}
	}
	outs, err := e.Executable.Execute(in, give, d)
	for i, x := range outs {
		outs[i] = e.backend.wrapBuffer(x)
	}
	return outs, err
}

// foldedGarbage is the size of the folded values from which Compile collects
// garbage.
const foldedGarbage = 16 << 20

// builder decorates a compute.Builder so that its functions are decorated.
type builder struct {
	compute.Builder
	backend  *backend
	main     *function
	foldings []*folding // released at Compile
}

// folding puts a folding layer over fn and keeps it until Compile.
func (b *builder) folding(fn compute.Function) *folding {
	f := &folding{Function: fn, consts: map[compute.Value]constant{}}
	b.foldings = append(b.foldings, f)
	return f
}

func (b *builder) Compile() (compute.Executable, error) {
	folded := 0
	for _, f := range b.foldings {
		folded += f.folded
		f.release()
	}
	b.foldings = nil
	if folded >= foldedGarbage {
		// The folded values are garbage now that the backend holds its copies:
		// collected here, before the first execution allocates, they do not
		// add to the process's peak (ResNet-18's early-layer Grad-CAM folds
		// 77 MB for its 47 MB of weights).
		defer runtime.GC()
	}
	var inputs []sharedInput
	if b.main != nil {
		shared := b.main.Function.(*folding).shared
		inputs, shared.inputs = shared.inputs, nil // their values are read only here
	}
	e, err := b.Builder.Compile()
	if err != nil {
		return nil, err
	}
	x := &executable{Executable: e, backend: b.backend}
	if len(inputs) > 0 {
		if x.shared, err = b.backend.shared.acquire(b.backend.Backend, inputs); err != nil {
			e.Finalize()
			return nil, err
		}
		for _, in := range inputs {
			x.sharedAt = append(x.sharedAt, in.index)
		}
	}
	return x, nil
}

// Main implements compute.Builder.
func (b *builder) Main() compute.Function {
	if b.main == nil {
		f := b.folding(b.Builder.Main())
		f.shared = &sharedParams{minBytes: b.backend.sharedMinBytes}
		b.main = &function{Function: f, builder: b}
	}
	return b.main
}

// NewFunction implements compute.Builder.
func (b *builder) NewFunction(name string) (compute.Function, error) {
	fn, err := b.Builder.NewFunction(name)
	if err != nil {
		return nil, err
	}
	return &function{Function: b.folding(fn), builder: b}, nil
}

// function decorates a compute.Function: it overrides ConvGeneral, wraps the closures it
// creates and unwraps the functions passed to the ops that take them. Beneath it, a
// folding layer computes rearrangements of constants once (fold.go), for GoMLX's ops
// and the lowering's alike.
type function struct {
	compute.Function // a *folding
	builder          *builder
	parent           *function // Set for closures only.
	// zeros are the scalar zero constants built so far, and zeroPadded the values that Pad
	// built from them, with their operand and padding: a window sum folds such padding
	// into its own (see ReduceWindow).
	zeros      map[compute.Value]bool
	zeroPadded map[compute.Value]zeroPad
}

// Builder implements compute.Function.
func (f *function) Builder() compute.Builder {
	return f.builder
}

// Parent implements compute.Function.
func (f *function) Parent() compute.Function {
	if f.parent == nil {
		return nil
	}
	return f.parent
}

// Closure implements compute.Function.
func (f *function) Closure() (compute.Function, error) {
	closure, err := f.Function.Closure()
	if err != nil {
		return nil, err
	}
	return &function{Function: f.builder.folding(closure), builder: f.builder, parent: f}, nil
}

// Call implements compute.Function.
func (f *function) Call(fn compute.Function, inputs ...compute.Value) ([]compute.Value, error) {
	return f.Function.Call(unwrap(fn), inputs...)
}

// Sort implements compute.Function.
func (f *function) Sort(comparator compute.Function, axis int, isStable bool, inputs ...compute.Value) ([]compute.Value, error) {
	return f.Function.Sort(unwrap(comparator), axis, isStable, inputs...)
}

// While implements compute.Function.
func (f *function) While(cond, body compute.Function, initialState ...compute.Value) ([]compute.Value, error) {
	return f.Function.While(unwrap(cond), unwrap(body), initialState...)
}

// If implements compute.Function.
func (f *function) If(pred compute.Value, trueBranch, falseBranch compute.Function) ([]compute.Value, error) {
	return f.Function.If(pred, unwrap(trueBranch), unwrap(falseBranch))
}

// ConvGeneral implements compute.Function: covered convolutions are lowered onto DotGeneral,
// the others, and tiny single-channel ones, are handed to the wrapped function.
func (f *function) ConvGeneral(input, kernel compute.Value, axes compute.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (compute.Value, error) {
	if s, ok := check(f.Function, input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount); ok && tinyConv(s, axes, f.builder.backend.tinyMACs) {
		return f.Function.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
			channelGroupCount, batchGroupCount)
	}
	return convolve(f.Function, input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
}

// tinyConvMACs is the number of multiply-adds under which a single-channel convolution is
// left to the wrapped backend.
const tinyConvMACs = 1 << 16

// tinyConv reports whether a convolution has one input and one output channel and fewer
// than maxMACs multiply-adds. The lowering's half a dozen ops, each with its own buffer,
// then cost more than the backend's direct loop. GoMLX differentiates a depthwise
// convolution channel by channel, into thousands of such convolutions (convlens' models
// replace that input gradient with one grouped convolution, internal/convgrad; the
// kernel gradient and other users' graphs keep GoMLX's).
func tinyConv(s convShapes, axes compute.ConvolveAxesConfig, maxMACs int) bool {
	if s.kernel.Dim(axes.KernelOutputChannels) != 1 || s.kernel.Dim(axes.KernelInputChannels) != 1 {
		return false
	}
	return s.output.Size()*s.kernel.Size() < maxMACs
}

// unwrap returns the function that fn decorates, or fn itself if it is not decorated.
func unwrap(fn compute.Function) compute.Function {
	if w, ok := fn.(*function); ok {
		return w.Function.(*folding).Function
	}
	return fn
}
