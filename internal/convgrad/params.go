package convgrad

import (
	"reflect"

	"github.com/gomlx/gomlx/core/graph"
)

// params are the parameters of a ConvGeneral node that the input gradient needs.
type params struct {
	axes                                     graph.ConvolveAxesConfig
	strides, kernelDilations, inputDilations []int
	paddings                                 [][2]int
	groups, batchGroups                      int
}

// readParams reads a ConvGeneral node's parameters from GoMLX's unexported
// nodeInputsConvGeneral. ok is false when the layout is not the one expected, and
// the caller then keeps GoMLX's own gradient.
func readParams(node *graph.Node) (p params, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	n := reflect.ValueOf(node).Elem().FieldByName("inputs")
	if n.Kind() != reflect.Interface || n.IsNil() {
		return p, false
	}
	s := n.Elem()
	if s.Kind() == reflect.Pointer {
		s = s.Elem()
	}
	if s.Kind() != reflect.Struct || s.Type().Name() != "nodeInputsConvGeneral" {
		return p, false
	}
	ax := s.FieldByName("axes")
	p.axes = graph.ConvolveAxesConfig{
		InputBatch:           int(ax.FieldByName("InputBatch").Int()),
		InputChannels:        int(ax.FieldByName("InputChannels").Int()),
		InputSpatial:         ints(ax.FieldByName("InputSpatial")),
		KernelInputChannels:  int(ax.FieldByName("KernelInputChannels").Int()),
		KernelOutputChannels: int(ax.FieldByName("KernelOutputChannels").Int()),
		KernelSpatial:        ints(ax.FieldByName("KernelSpatial")),
		OutputBatch:          int(ax.FieldByName("OutputBatch").Int()),
		OutputChannels:       int(ax.FieldByName("OutputChannels").Int()),
		OutputSpatial:        ints(ax.FieldByName("OutputSpatial")),
	}
	p.strides = ints(s.FieldByName("strides"))
	p.inputDilations = ints(s.FieldByName("inputDilations"))
	p.kernelDilations = ints(s.FieldByName("kernelDilations"))
	pads := s.FieldByName("paddings")
	for i := range pads.Len() {
		p.paddings = append(p.paddings, [2]int{int(pads.Index(i).Index(0).Int()), int(pads.Index(i).Index(1).Int())})
	}
	p.groups = int(s.FieldByName("channelGroupCount").Int())
	p.batchGroups = int(s.FieldByName("batchGroupCount").Int())
	return p, true
}

func ints(v reflect.Value) []int {
	out := make([]int, v.Len())
	for i := range out {
		out[i] = int(v.Index(i).Int())
	}
	return out
}
