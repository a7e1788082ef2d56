package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/backend"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"google.golang.org/protobuf/proto"
)

// childEnv carries a childConfig (JSON) to the re-executed bench binary: when it is
// set, the binary (or the test binary, see TestMain) is the convlens worker.
const childEnv = "CONVLENS_BENCH_CHILD"

// fastConvEnv is backend.New's switch: "0" turns the fast convolution off.
const fastConvEnv = "CONVLENS_FASTCONV"

// childConfig is what a convlens worker loads.
type childConfig struct {
	ONNX  string `json:"onnx"`  // model file
	Layer string `json:"layer"` // ONNX node output explained
	Input string `json:"input"` // float32 .npy [N,3,224,224], tiled to the batch sizes asked
}

// runChild is the convlens side of the benchmark: one process per model (and
// batch size, for the table), commanded on stdin, one reply line per command
// on stdout ("ok ..." or "err ..."), so that its peak RSS is its own and its
// start-up is not timed. Commands:
//
//	gradcam B K   one timed Grad-CAM, top-K classes, batch B -> "ok SECONDS"
//	explain M B K [P]  one timed call of method M (gradcam.MethodByName, its
//	              default settings) on batch B, top-K classes, P points per
//	              call of the model if given (Builder.PointsPerCall)
//	                                                         -> "ok SECONDS"
//	save PATH     the last call's top-1 maps [B,H,W] as .npy -> "ok C1,C2,..."
//	forward B     one timed forward pass (logits only)       -> "ok SECONDS"
//	matmul N      one timed N×N×N float32 matrix product     -> "ok SECONDS"
//	flops         conv + matmul FLOPs of one image's forward -> "ok FLOPS"
//	mem           after a forced GC: live Go heap, heap from the OS -> "ok LIVE SYS"
//	quit
func runChild(spec string) error {
	var cfg childConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		return fmt.Errorf("bad %s: %w", childEnv, err)
	}
	t0 := time.Now()
	m, err := models.LoadONNX(cfg.ONNX)
	if err != nil {
		return err
	}
	b, err := backend.New("go")
	if err != nil {
		return err
	}
	runner := models.NewRunner(b, m)
	defer runner.Close()
	cam, err := gradcam.New(runner, cfg.Layer).Done()
	if err != nil {
		return err
	}
	data, dims, err := npy.ReadFloat32(cfg.Input)
	if err != nil {
		return err
	}
	inputs := map[int]*tensors.Tensor{}
	input := func(b int) *tensors.Tensor {
		if x, ok := inputs[b]; ok {
			return x
		}
		per := len(data) / dims[0]
		flat := make([]float32, b*per)
		for i := range b {
			copy(flat[i*per:(i+1)*per], data[(i%dims[0])*per:])
		}
		x := tensors.FromFlatDataAndDimensions(flat, append([]int{b}, dims[1:]...)...)
		inputs[b] = x
		return x
	}
	fast := "on"
	if os.Getenv(fastConvEnv) == "0" {
		fast = "off"
	}
	fmt.Printf("ready model %s backend %s fastconv %s GOMAXPROCS %d %s load %.1fs\n",
		m.Name(), b.Name(), fast, runtime.GOMAXPROCS(0), runtime.Version(), time.Since(t0).Seconds())

	var last *gradcam.Result
	matmuls := map[int]*matMul{}
	cams := map[string]*gradcam.CAM{} // by method and points per call, for explain
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		reply, err := func() (string, error) {
			arg := func(i int) (int, error) {
				if i >= len(f) {
					return 0, fmt.Errorf("%s: missing argument %d", f[0], i)
				}
				return strconv.Atoi(f[i])
			}
			switch f[0] {
			case "gradcam":
				b, err := arg(1)
				if err != nil {
					return "", err
				}
				k, err := arg(2)
				if err != nil {
					return "", err
				}
				x := input(b)
				start := time.Now()
				res, err := cam.Explain(x, gradcam.Top(k))
				d := time.Since(start)
				if err != nil {
					return "", err
				}
				last = res
				return fmt.Sprintf("%.6f", d.Seconds()), nil
			case "explain":
				if len(f) < 2 {
					return "", errors.New("explain METHOD B K [POINTS]")
				}
				b, err := arg(2)
				if err != nil {
					return "", err
				}
				k, err := arg(3)
				if err != nil {
					return "", err
				}
				points := 0
				if len(f) > 4 {
					if points, err = arg(4); err != nil {
						return "", err
					}
				}
				key := f[1] + " " + strconv.Itoa(points)
				c, ok := cams[key]
				if !ok {
					if c, err = methodCAM(runner, cfg.Layer, f[1], points); err != nil {
						return "", err
					}
					cams[key] = c
				}
				x := input(b)
				start := time.Now()
				res, err := c.Explain(x, gradcam.Top(k))
				d := time.Since(start)
				if err != nil {
					return "", err
				}
				last = res
				return fmt.Sprintf("%.6f", d.Seconds()), nil
			case "save":
				if last == nil || len(f) < 2 {
					return "", errors.New("save PATH, after a gradcam")
				}
				size := last.Height * last.Width
				maps := make([]float32, 0, last.N*size)
				classes := make([]string, last.N)
				for n := range last.N {
					maps = append(maps, last.Normalized[n*last.K*size:(n*last.K+1)*size]...)
					classes[n] = strconv.Itoa(last.Classes[n*last.K])
				}
				if err := npy.WriteFloat32(f[1], maps, last.N, last.Height, last.Width); err != nil {
					return "", err
				}
				return strings.Join(classes, ","), nil
			case "forward":
				b, err := arg(1)
				if err != nil {
					return "", err
				}
				x := input(b)
				start := time.Now()
				logits, _, err := runner.Run(x)
				d := time.Since(start)
				if err != nil {
					return "", err
				}
				logits.FinalizeAll()
				return fmt.Sprintf("%.6f", d.Seconds()), nil
			case "matmul":
				n, err := arg(1)
				if err != nil {
					return "", err
				}
				return timeMatMul(b, matmuls, n)
			case "flops":
				fl, err := forwardFLOPs(cfg.ONNX, m)
				if err != nil {
					return "", err
				}
				return strconv.FormatInt(fl, 10), nil
			case "mem":
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return fmt.Sprintf("%d %d", ms.HeapAlloc, ms.HeapSys), nil
			case "quit":
				return "", errQuit
			}
			return "", fmt.Errorf("unknown command %q", f[0])
		}()
		if errors.Is(err, errQuit) {
			return nil
		}
		if err != nil {
			fmt.Printf("err %s\n", oneLine(err.Error()))
			continue
		}
		fmt.Printf("ok %s\n", reply)
	}
	return in.Err()
}

var errQuit = errors.New("quit")

// methodCAM builds the CAM of the named method at layer (which input
// attributions ignore), with points per call of the model if points > 0,
// and no limit on the passes: memory is what is measured, and RISE at
// batch 64 is over the default limit.
func methodCAM(r *models.Runner, layer, name string, points int) (*gradcam.CAM, error) {
	m, err := gradcam.MethodByName(name)
	if err != nil {
		return nil, err
	}
	b := gradcam.New(r, layer).Method(m).MaxPasses(0)
	if points > 0 {
		b = b.PointsPerCall(points)
	}
	return b.Done()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// matMul is a compiled n×n by n×n float32 product and its operands.
type matMul struct {
	exec *graph.Exec
	a, b *tensors.Tensor
}

// timeMatMul times one float32 n×n by n×n DotGeneral on backend. The graph
// and operands are made on first use, so call it once before timing.
func timeMatMul(backend compute.Backend, cache map[int]*matMul, n int) (string, error) {
	mm, ok := cache[n]
	if !ok {
		e, err := graph.NewExec(backend, func(nodes []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.MatMul(nodes[0], nodes[1])}
		})
		if err != nil {
			return "", err
		}
		mm = &matMul{exec: e, a: pseudoRandom(n, 1), b: pseudoRandom(n, 2)}
		cache[n] = mm
	}
	start := time.Now()
	outs, err := mm.exec.Exec(mm.a, mm.b)
	d := time.Since(start)
	if err != nil {
		return "", err
	}
	for _, o := range outs {
		o.FinalizeAll()
	}
	return fmt.Sprintf("%.6f", d.Seconds()), nil
}

// pseudoRandom returns an n×n float32 matrix of values in [-0.5, 0.5).
func pseudoRandom(n int, seed uint32) *tensors.Tensor {
	t := tensors.FromShape(shapes.Make(dtypes.Float32, n, n))
	tensors.MustMutableFlatData(t, func(flat []float32) {
		s := seed
		for i := range flat {
			s = s*1664525 + 1013904223
			flat[i] = float32(s>>8)/float32(1<<24) - 0.5
		}
	})
	return t
}

// forwardFLOPs counts the floating-point operations of the convolutions and
// matrix products of one image's forward pass: 2·Cout·H·W·(Cin/groups)·Kh·Kw
// per Conv (output size H×W), 2·in·out per Gemm/MatMul. Weight shapes come
// from the ONNX initialisers, output shapes from the converted graph.
func forwardFLOPs(path string, m *models.ONNX) (int64, error) {
	contents, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pb protos.ModelProto
	if err := proto.Unmarshal(contents, &pb); err != nil {
		return 0, err
	}
	g := pb.GetGraph()
	weights := map[string][]int64{}
	for _, t := range g.GetInitializer() {
		weights[t.GetName()] = t.GetDims()
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Identity" && len(n.GetInput()) == 1 && len(n.GetOutput()) == 1 {
			if d, ok := weights[n.GetInput()[0]]; ok {
				weights[n.GetOutput()[0]] = d
			}
		}
	}
	outElems := map[string]int64{}
	for _, l := range m.Layers() {
		e := int64(1)
		for _, d := range l.Shape.Dimensions {
			e *= int64(d)
		}
		outElems[l.Name] = e // batch of one
	}
	var total int64
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if op != "Conv" && op != "Gemm" && op != "MatMul" {
			continue
		}
		if len(n.GetInput()) < 2 || len(n.GetOutput()) == 0 {
			continue
		}
		w, ok := weights[n.GetInput()[1]]
		out, ok2 := outElems[n.GetOutput()[0]]
		if !ok || !ok2 || len(w) < 2 {
			return 0, fmt.Errorf("%s node %q: weight or output shape unknown", op, n.GetName())
		}
		// Multiply-adds per output element: the weight's size over the output channels.
		var perOut int64
		switch op {
		case "Conv":
			perOut = 1
			for _, d := range w[1:] {
				perOut *= d
			}
		default: // Gemm (transB picks the axis) and MatMul [in,out].
			perOut = w[0]
			for _, a := range n.GetAttribute() {
				if a.GetName() == "transB" && a.GetI() == 1 {
					perOut = w[1]
				}
			}
		}
		total += 2 * out * perOut
	}
	return total, nil
}
