package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/onnx-gomlx/onnx"
	"google.golang.org/protobuf/encoding/protowire"
)

// Parsing an ONNX file copies every weight into the parsed model, and loading
// the weights into the model's store copies them again: for VGG-11 (531 MB of
// weights) that was 531 MB held for nothing for as long as the model lived.
// Before parsing, the large weights of convolutions, matrix products and
// batch normalisations are turned into ONNX external data that points back
// into the file's own bytes, so the parser keeps only their place and the
// store loading reads them from there; afterwards those bytes are let go.

// selfLocation is the external-data location of weights kept in the model's own bytes.
const selfLocation = "convlens:self"

// minExternalBytes is the size from which a weight is read as external data.
const minExternalBytes = 64 << 10

// weightOps are the ops whose initializers are only ever read into the store:
// never evaluated while the graph is built, so their bytes can go once loaded.
var weightOps = map[string]bool{"Conv": true, "Gemm": true, "MatMul": true, "BatchNormalization": true}

// externalizeWeights returns contents with the raw data of the initializers
// of at least minExternalBytes that only weightOps read replaced by external
// data at selfLocation, whose offsets are those of the bytes in contents.
func externalizeWeights(contents []byte, nodes []*protos.NodeProto) ([]byte, error) {
	onlyWeights := map[string]bool{}
	for _, n := range nodes {
		for _, in := range n.GetInput() {
			if seen, ok := onlyWeights[in]; !ok || seen {
				onlyWeights[in] = weightOps[n.GetOpType()]
			}
		}
	}
	return rewriteField(contents, 0, 7, func(graph []byte, graphAt int) ([]byte, error) { // ModelProto.graph
		return rewriteField(graph, graphAt, 5, func(tensor []byte, tensorAt int) ([]byte, error) { // GraphProto.initializer
			return externalizeTensor(tensor, tensorAt, onlyWeights)
		})
	})
}

// rewriteField returns msg, which starts at offset at in the original bytes,
// with each length-delimited field num replaced by rewrite's result for its
// contents (given with their own offset).
func rewriteField(msg []byte, at int, num protowire.Number, rewrite func(v []byte, at int) ([]byte, error)) ([]byte, error) {
	var out []byte
	for pos := 0; pos < len(msg); {
		n0, typ, n := protowire.ConsumeTag(msg[pos:])
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		if n0 != num || typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(n0, typ, msg[pos+n:])
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			out = append(out, msg[pos:pos+n+m]...)
			pos += n + m
			continue
		}
		v, m := protowire.ConsumeBytes(msg[pos+n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		valueAt := at + pos + n + (m - len(v)) // After the tag and the length.
		nv, err := rewrite(v, valueAt)
		if err != nil {
			return nil, err
		}
		out = protowire.AppendTag(out, num, protowire.BytesType)
		out = protowire.AppendBytes(out, nv)
		pos += n + m
	}
	return out, nil
}

// externalizeTensor rewrites one TensorProto, at offset at, if it qualifies.
func externalizeTensor(tensor []byte, at int, onlyWeights map[string]bool) ([]byte, error) {
	var name string
	var kept []byte // The fields other than raw_data.
	rawAt, rawLen := -1, 0
	for pos := 0; pos < len(tensor); {
		n0, typ, n := protowire.ConsumeTag(tensor[pos:])
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(n0, typ, tensor[pos+n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		field := tensor[pos : pos+n+m]
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(tensor[pos+n:])
			switch n0 {
			case 8: // TensorProto.name
				name = string(v)
			case 9: // TensorProto.raw_data
				rawAt, rawLen = pos+n+(m-len(v)), len(v)
				field = nil
			case 13: // TensorProto.external_data: already external, leave it.
				return tensor, nil
			}
		}
		kept = append(kept, field...)
		pos += n + m
	}
	if rawAt < 0 || rawLen < minExternalBytes || !onlyWeights[name] {
		return tensor, nil
	}
	for _, kv := range [][2]string{{"location", selfLocation}, {"offset", strconv.Itoa(at + rawAt)}, {"length", strconv.Itoa(rawLen)}} {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, kv[0])
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, kv[1])
		kept = protowire.AppendTag(kept, 13, protowire.BytesType) // TensorProto.external_data
		kept = protowire.AppendBytes(kept, entry)
	}
	kept = protowire.AppendTag(kept, 14, protowire.VarintType) // TensorProto.data_location
	return protowire.AppendVarint(kept, 1), nil                // EXTERNAL
}

// selfReader is the onnx.ExternalDataReader of a model: it reads the weights
// kept at selfLocation from the model's bytes until release, and the external
// data of models exported with it from files beside the model, in dir.
type selfReader struct {
	dir  string
	mu   sync.Mutex
	data []byte
}

// ReadInto implements onnx.ExternalDataReader.
func (r *selfReader) ReadInto(info onnx.ExternalDataInfo, out []byte) error {
	if info.Location != selfLocation {
		return r.readFile(info, out)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		return errors.New("the ONNX weights were read already and let go; this model needs them again while building a graph, which convlens does not support")
	}
	if info.Offset < 0 || info.Offset+int64(len(out)) > int64(len(r.data)) {
		return fmt.Errorf("external data at %d+%d is outside the model's %d bytes", info.Offset, len(out), len(r.data))
	}
	copy(out, r.data[info.Offset:])
	return nil
}

// readFile reads external data from its file, which must lie in r.dir:
// opened through os.Root, so neither ".." nor a symbolic link leaves it.
func (r *selfReader) readFile(info onnx.ExternalDataInfo, out []byte) error {
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return fmt.Errorf("opening the model's folder for its external data: %w", err)
	}
	defer root.Close()
	path := filepath.Join(r.dir, info.Location)
	f, err := root.Open(info.Location)
	if err != nil {
		return fmt.Errorf("reading the model's external data (it must be inside the model's folder %s): %w", r.dir, err)
	}
	defer f.Close()
	if _, err := f.ReadAt(out, info.Offset); err != nil {
		return fmt.Errorf("reading %d bytes at %d of %s: %w", len(out), info.Offset, path, err)
	}
	return nil
}

// Close implements onnx.ExternalDataReader; the bytes stay until release.
func (r *selfReader) Close() error { return nil }

// release lets the model's bytes go.
func (r *selfReader) release() {
	r.mu.Lock()
	r.data = nil
	r.mu.Unlock()
}
