package fastconv

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
)

// benchLayer is a 3x3 convolution layer, padding 1, batch 1.
type benchLayer struct {
	size, inChannels, outChannels, stride int
}

func (l benchLayer) String() string {
	s := fmt.Sprintf("%dx%d_%d-%d", l.size, l.size, l.inChannels, l.outChannels)
	if l.stride > 1 {
		s += fmt.Sprintf("_stride%d", l.stride)
	}
	return s
}

// config returns the layer's convolution in the given layout: "NCHW" (kernel OIHW) or
// "NHWC" (kernel HWIO).
func (l benchLayer) config(layout string) convConfig {
	c := convConfig{
		dtype:         dtypes.Float32,
		strides:       []int{l.stride, l.stride},
		paddings:      [][2]int{{1, 1}, {1, 1}},
		channelGroups: 1, batchGroups: 1,
	}
	if layout == "NCHW" {
		c.inputDims = []int{1, l.inChannels, l.size, l.size}
		c.kernelDims = []int{l.outChannels, l.inChannels, 3, 3}
		c.axes = nchw
	} else {
		c.inputDims = []int{1, l.size, l.size, l.inChannels}
		c.kernelDims = []int{3, 3, l.inChannels, l.outChannels}
		c.axes = compute.ConvolveAxesConfig{
			InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
			KernelSpatial: []int{0, 1}, KernelInputChannels: 2, KernelOutputChannels: 3,
			OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2},
		}
	}
	return c
}

// flops is the number of floating point operations of the layer's forward pass.
func (l benchLayer) flops() float64 {
	out := (l.size + l.stride - 1) / l.stride
	return 2 * float64(out*out) * float64(l.outChannels*l.inChannels*9)
}

// benchmarkExec runs fn on inputs b.N times and reports flops per run as GFLOP/s.
func benchmarkExec(b *testing.B, backend compute.Backend, fn func([]*graph.Node) []*graph.Node, flops float64, inputs ...array) {
	exec, err := graph.NewExec(backend, fn)
	if err != nil {
		b.Fatal(err)
	}
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in.tensor()
	}
	execute := func() {
		outputs, err := exec.Exec(args...)
		if err != nil {
			b.Fatal(err)
		}
		for _, out := range outputs {
			out.FinalizeAll()
		}
	}
	execute() // Compiles, and moves the inputs to the backend.
	b.ResetTimer()
	for range b.N {
		execute()
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkConv compares the Go backend's ConvGeneral ("direct") with the lowering onto
// DotGeneral ("fast") on ResNet-style 3x3 layers, forward, and backward (gradients with
// respect to the input and the kernel, twice the forward FLOPs).
func BenchmarkConv(b *testing.B) {
	direct, fast, _ := backends(b)
	rng := rand.New(rand.NewPCG(5, 6))
	forwardLayers := []benchLayer{{56, 64, 64, 1}, {28, 128, 128, 1}, {14, 256, 256, 1}, {7, 512, 512, 1}}
	backwardLayers := []benchLayer{{56, 64, 64, 1}, {56, 64, 128, 2}}
	for _, layout := range []string{"NCHW", "NHWC"} {
		for _, pass := range []string{"forward", "backward"} {
			layers := forwardLayers
			if pass == "backward" {
				layers = backwardLayers
			}
			for _, l := range layers {
				c := l.config(layout)
				inputs := []array{randomArray(rng, c.dtype, c.inputDims), randomArray(rng, c.dtype, c.kernelDims)}
				fn := func(nodes []*graph.Node) []*graph.Node { return []*graph.Node{c.conv(nodes[0], nodes[1])} }
				flops := l.flops()
				if pass == "backward" {
					inputs = append(inputs, randomArray(rng, c.dtype, c.outputDims()))
					fn, flops = c.gradients, 2*flops
				}
				for _, backend := range []struct {
					name    string
					backend compute.Backend
				}{{"direct", direct}, {"fast", fast}} {
					b.Run(fmt.Sprintf("%s/%s/%s/%s", pass, layout, l, backend.name), func(b *testing.B) {
						benchmarkExec(b, backend.backend, fn, flops, inputs...)
					})
				}
			}
		}
	}
}

// BenchmarkMatMul measures the Go backend's float32 DotGeneral on 1024x1024 matrices: the
// ceiling for the lowered convolutions.
func BenchmarkMatMul(b *testing.B) {
	direct, _, _ := backends(b)
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 1024
	lhs, rhs := randomArray(rng, dtypes.Float32, []int{n, n}), randomArray(rng, dtypes.Float32, []int{n, n})
	matMul := func(nodes []*graph.Node) []*graph.Node {
		return []*graph.Node{graph.MatMul(nodes[0], nodes[1])}
	}
	benchmarkExec(b, direct, matMul, 2*n*n*n, lhs, rhs)
}
