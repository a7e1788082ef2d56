package testutil

import (
	"encoding/binary"
	"math"

	"github.com/gomlx/compute-onnx/support/protos"
)

// SmallONNX is a valid ONNX classifier of two classes: Conv (weight w
// [2,3,3,3]) → Relu → GlobalAveragePool → Flatten, on an [N,3,H,W] input;
// H or W of 0 leaves that axis dynamic (the model then takes any size).
func SmallONNX(height, width int) *protos.ModelProto {
	raw := make([]byte, 2*3*3*3*4)
	for i := range 2 * 3 * 3 * 3 {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(i%7)/7-0.4))
	}
	side := func(n int, name string) any {
		if n == 0 {
			return name
		}
		return n
	}
	dims := func(d ...any) *protos.TypeProto {
		var shape []*protos.TensorShapeProto_Dimension
		for _, v := range d {
			switch v := v.(type) {
			case int:
				shape = append(shape, &protos.TensorShapeProto_Dimension{Value: &protos.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}})
			case string:
				shape = append(shape, &protos.TensorShapeProto_Dimension{Value: &protos.TensorShapeProto_Dimension_DimParam{DimParam: v}})
			}
		}
		return &protos.TypeProto{Value: &protos.TypeProto_TensorType{TensorType: &protos.TypeProto_Tensor{
			ElemType: int32(protos.TensorProto_FLOAT), Shape: &protos.TensorShapeProto{Dim: shape}}}}
	}
	return &protos.ModelProto{
		IrVersion:   8,
		OpsetImport: []*protos.OperatorSetIdProto{{Version: 13}},
		Graph: &protos.GraphProto{
			Name:        "small",
			Input:       []*protos.ValueInfoProto{{Name: "x", Type: dims("N", 3, side(height, "H"), side(width, "W"))}},
			Initializer: []*protos.TensorProto{{Name: "w", Dims: []int64{2, 3, 3, 3}, DataType: int32(protos.TensorProto_FLOAT), RawData: raw}},
			Node: []*protos.NodeProto{
				{OpType: "Conv", Name: "/conv/Conv", Input: []string{"x", "w"}, Output: []string{"c"}},
				{OpType: "Relu", Name: "/relu/Relu", Input: []string{"c"}, Output: []string{"r"}},
				{OpType: "GlobalAveragePool", Input: []string{"r"}, Output: []string{"g"}},
				{OpType: "Flatten", Input: []string{"g"}, Output: []string{"logits"}},
			},
			Output: []*protos.ValueInfoProto{{Name: "logits", Type: dims("N", 2)}},
		},
	}
}
