package models

import (
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"

	"github.com/gomlx/compute-onnx/support/protos"
)

// onnx-gomlx trusts what a file declares: a tensor's dims before its bytes,
// a graph input's type, the nodes' order. A file nobody inspected can
// declare a 9 TB weight in 80 bytes, an input of 100000×100000, a cycle, or
// an untyped output, and the parser then allocates without bound, recurses
// until the stack overflows, or dereferences nil. validateGraph checks all
// of that first, against the bytes actually present.

// maxInputSide is the largest image side a model input may declare.
const maxInputSide = 1 << 15

// validateGraph refuses a graph onnx-gomlx would mishandle, saying why.
// External data files are looked for in dir.
func validateGraph(g *protos.GraphProto, dir string) error {
	if g == nil {
		return fmt.Errorf("the file has no graph")
	}
	known := map[string]bool{"": true}
	for _, t := range g.GetInitializer() {
		if err := validateTensor(t, dir); err != nil {
			return fmt.Errorf("weight %q: %w", t.GetName(), err)
		}
		known[t.GetName()] = true
	}
	for _, in := range g.GetInput() {
		if err := validateValueInfo(in); err != nil {
			return fmt.Errorf("graph input %q: %w", in.GetName(), err)
		}
		known[in.GetName()] = true
	}
	// ONNX requires nodes in topological order (the checker enforces it):
	// an input produced only later means a cycle or a broken file.
	produced := map[string]int{}
	for i, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			produced[o] = i
		}
	}
	for i, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			if known[in] {
				continue
			}
			if j, ok := produced[in]; ok && j >= i {
				return fmt.Errorf("node %q reads %q, which node %q computes from it or after it: the graph has a cycle or is not in topological order", nodeLabel(n), in, nodeLabel(g.Node[j]))
			}
			if _, ok := produced[in]; !ok {
				return fmt.Errorf("node %q reads %q, which no node, graph input or weight provides", nodeLabel(n), in)
			}
		}
		for _, a := range n.GetAttribute() {
			if t := a.GetT(); t != nil {
				if err := validateTensor(t, dir); err != nil {
					return fmt.Errorf("node %q, attribute %q: %w", nodeLabel(n), a.GetName(), err)
				}
			}
			for _, t := range a.GetTensors() {
				if err := validateTensor(t, dir); err != nil {
					return fmt.Errorf("node %q, attribute %q: %w", nodeLabel(n), a.GetName(), err)
				}
			}
		}
		for _, o := range n.GetOutput() {
			known[o] = true
		}
	}
	if len(g.GetOutput()) == 0 {
		return fmt.Errorf("the graph has no outputs")
	}
	for _, o := range g.GetOutput() {
		if err := validateValueInfo(o); err != nil {
			return fmt.Errorf("graph output %q: %w", o.GetName(), err)
		}
		if !known[o.GetName()] {
			return fmt.Errorf("graph output %q is computed by no node", o.GetName())
		}
	}
	return nil
}

// validateValueInfo requires a tensor type whose dimensions are dynamic or
// within maxInputSide.
func validateValueInfo(v *protos.ValueInfoProto) error {
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return fmt.Errorf("has no tensor type; re-export the model so that every input and output is typed")
	}
	for i, d := range tt.GetShape().GetDim() {
		if _, isValue := d.GetValue().(*protos.TensorShapeProto_Dimension_DimValue); !isValue {
			continue
		}
		if v := d.GetDimValue(); v < 0 || v > maxInputSide {
			return fmt.Errorf("dimension %d is %d, outside 0..%d", i, v, maxInputSide)
		}
	}
	return nil
}

// elemBytes is the size of one element of each fixed-size ONNX type.
var elemBytes = map[protos.TensorProto_DataType]int64{
	protos.TensorProto_FLOAT: 4, protos.TensorProto_UINT8: 1, protos.TensorProto_INT8: 1,
	protos.TensorProto_UINT16: 2, protos.TensorProto_INT16: 2, protos.TensorProto_INT32: 4,
	protos.TensorProto_INT64: 8, protos.TensorProto_BOOL: 1, protos.TensorProto_FLOAT16: 2,
	protos.TensorProto_DOUBLE: 8, protos.TensorProto_UINT32: 4, protos.TensorProto_UINT64: 8,
	protos.TensorProto_COMPLEX64: 8, protos.TensorProto_COMPLEX128: 16, protos.TensorProto_BFLOAT16: 2,
}

// validateTensor checks that a tensor's dims are non-negative, that their
// product does not overflow, and that the data present (inline, or the
// declared length of external data) holds exactly that many elements, so
// that nothing is allocated from the dims alone.
func validateTensor(t *protos.TensorProto, dir string) error {
	count := int64(1)
	for _, d := range t.GetDims() {
		if d < 0 {
			return fmt.Errorf("dimension %d is negative (dims %v)", d, t.GetDims())
		}
		hi, lo := bits.Mul64(uint64(count), uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return fmt.Errorf("dims %v hold more elements than fit in 64 bits", t.GetDims())
		}
		count = int64(lo)
	}
	dtype := protos.TensorProto_DataType(t.GetDataType())
	size, fixed := elemBytes[dtype]
	if !fixed {
		if dtype == protos.TensorProto_STRING && int64(len(t.GetStringData())) == count {
			return nil
		}
		return fmt.Errorf("data type %s is not supported", dtype)
	}
	if hi, lo := bits.Mul64(uint64(count), uint64(size)); hi != 0 || lo > math.MaxInt64 {
		return fmt.Errorf("dims %v of %s take more bytes than fit in 64 bits", t.GetDims(), dtype)
	}
	want := count * size
	var have int64
	switch {
	case t.GetDataLocation() == protos.TensorProto_EXTERNAL:
		length, offset, location := int64(-1), int64(0), ""
		for _, kv := range t.GetExternalData() {
			switch kv.GetKey() {
			case "length", "offset":
				v, err := strconv.ParseInt(kv.GetValue(), 10, 64)
				if err != nil || v < 0 {
					return fmt.Errorf("external data %s %q is not a byte count", kv.GetKey(), kv.GetValue())
				}
				if kv.GetKey() == "length" {
					length = v
				} else {
					offset = v
				}
			case "location":
				location = kv.GetValue()
			}
		}
		if location != selfLocation {
			// The bytes must be in the file: onnx-gomlx allocates before it reads.
			size, err := externalSize(dir, location)
			if err != nil {
				return err
			}
			if length < 0 {
				length = size - offset
			}
			if offset+length > size {
				return fmt.Errorf("external data %s holds %d bytes, fewer than offset %d + length %d", location, size, offset, length)
			}
		}
		have = length
	case len(t.GetRawData()) > 0:
		have = int64(len(t.GetRawData()))
	default:
		// Typed fields: counted in their own elements.
		var n int64
		switch dtype {
		case protos.TensorProto_FLOAT, protos.TensorProto_COMPLEX64:
			n = int64(len(t.GetFloatData()))
		case protos.TensorProto_DOUBLE, protos.TensorProto_COMPLEX128:
			n = int64(len(t.GetDoubleData()))
		case protos.TensorProto_INT64:
			n = int64(len(t.GetInt64Data()))
		case protos.TensorProto_UINT32, protos.TensorProto_UINT64:
			n = int64(len(t.GetUint64Data()))
		default:
			n = int64(len(t.GetInt32Data()))
		}
		if dtype == protos.TensorProto_COMPLEX64 || dtype == protos.TensorProto_COMPLEX128 {
			n /= 2
		}
		if n != count {
			return fmt.Errorf("dims %v need %d values, the file holds %d", t.GetDims(), count, n)
		}
		return nil
	}
	if have != want {
		return fmt.Errorf("dims %v of %s need %d bytes, the file holds %d", t.GetDims(), dtype, want, have)
	}
	return nil
}

// externalSize is the size of an external data file, which must be inside
// dir: read through os.Root, so neither ".." nor a symbolic link leaves it.
func externalSize(dir, location string) (int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("opening the model's folder for its external data: %w", err)
	}
	defer root.Close()
	info, err := root.Stat(location)
	if err != nil {
		return 0, fmt.Errorf("external data file %q (it must be inside the model's folder %s): %w", location, dir, err)
	}
	return info.Size(), nil
}
