package models

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/onnx-gomlx/onnx"
	"google.golang.org/protobuf/proto"
)

// float32Bytes encodes n little-endian float32 values i*0.5.
func float32Bytes(n int) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(i)*0.5))
	}
	return b
}

// Large weights of convolutions become external data that points at their
// bytes in the original file; small ones and those another op reads stay.
func TestExternalizeWeights(t *testing.T) {
	big := float32Bytes(20000) // 80 KB, over minExternalBytes.
	tensor := func(name string, raw []byte) *protos.TensorProto {
		return &protos.TensorProto{Name: name, DataType: int32(protos.TensorProto_FLOAT), Dims: []int64{int64(len(raw) / 4)}, RawData: raw}
	}
	m := &protos.ModelProto{Graph: &protos.GraphProto{
		Node: []*protos.NodeProto{
			{OpType: "Conv", Input: []string{"x", "conv.w", "conv.b"}, Output: []string{"y"}},
			{OpType: "Add", Input: []string{"y", "shared"}, Output: []string{"z"}},
			{OpType: "Conv", Input: []string{"z", "shared"}, Output: []string{"out"}},
		},
		Initializer: []*protos.TensorProto{tensor("conv.w", big), tensor("conv.b", float32Bytes(16)), tensor("shared", big)},
	}}
	contents, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := externalizeWeights(contents, m.Graph.Node)
	if err != nil {
		t.Fatal(err)
	}
	var got protos.ModelProto
	if err := proto.Unmarshal(out, &got); err != nil {
		t.Fatalf("rewritten model does not decode: %v", err)
	}
	if n := len(got.Graph.Node); n != 3 {
		t.Fatalf("%d nodes after rewriting, want 3", n)
	}
	w, b, shared := got.Graph.Initializer[0], got.Graph.Initializer[1], got.Graph.Initializer[2]
	if w.RawData != nil || w.GetDataLocation() != protos.TensorProto_EXTERNAL || len(w.ExternalData) != 3 {
		t.Fatalf("conv.w not made external: raw %d bytes, location %v, %d entries", len(w.RawData), w.GetDataLocation(), len(w.ExternalData))
	}
	info := map[string]string{}
	for _, e := range w.ExternalData {
		info[e.Key] = e.Value
	}
	offset, _ := strconv.Atoi(info["offset"])
	length, _ := strconv.Atoi(info["length"])
	if info["location"] != selfLocation || length != len(big) || !bytes.Equal(contents[offset:offset+length], big) {
		t.Errorf("conv.w external data %v does not point at its bytes", info)
	}
	if !bytes.Equal(b.RawData, float32Bytes(16)) || len(b.ExternalData) != 0 {
		t.Error("the small bias was made external")
	}
	if !bytes.Equal(shared.RawData, big) || len(shared.ExternalData) != 0 {
		t.Error("a weight that an Add also reads was made external")
	}
	if len(out) >= len(contents)-len(big)/2 { // conv.w's bytes are gone, a few bytes of external data came.
		t.Errorf("rewritten model is %d bytes of %d", len(out), len(contents))
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), append([]byte("head"), big...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &selfReader{dir: dir, data: contents}
	buf := make([]byte, length)
	if err := r.ReadInto(onnx.ExternalDataInfo{Location: selfLocation, Offset: int64(offset), Length: int64(length)}, buf); err != nil || !bytes.Equal(buf, big) {
		t.Errorf("reading conv.w back: %v", err)
	}
	clear(buf)
	if err := r.ReadInto(onnx.ExternalDataInfo{Location: "weights.bin", Offset: 4}, buf); err != nil || !bytes.Equal(buf, big) {
		t.Errorf("reading external data from a file beside the model: %v", err)
	}
	for _, bad := range []string{"missing.bin", "../weights.bin"} {
		if err := r.ReadInto(onnx.ExternalDataInfo{Location: bad}, buf); err == nil {
			t.Errorf("reading external data from %q did not fail", bad)
		}
	}
	r.release()
	if err := r.ReadInto(onnx.ExternalDataInfo{Location: selfLocation, Offset: int64(offset)}, buf); err == nil {
		t.Error("reading after release did not fail")
	}
}
