package npy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/internal/testutil"
)

func numpy(t *testing.T, script string) string {
	return testutil.Python(t, "import numpy as np\n"+script)
}
func TestWriteIsReadByNumPy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.npy")
	data := make([]float32, 2*3*4)
	for i := range data {
		data[i] = float32(i) / 2
	}
	if err := npy.WriteFloat32(path, data, 2, 3, 4); err != nil {
		t.Fatal(err)
	}
	got := numpy(t, "a = np.load('"+path+"'); print(a.dtype, a.shape, a[1,2,3], a[0,1,0])")
	if want := "float32 (2, 3, 4) 11.5 2.0"; got != want {
		t.Errorf("numpy reads %q, want %q", got, want)
	}
}

// Encode writes what numpy.save writes, byte for byte, for any rank, an
// empty array included (shape [0 3] once came back as [0]).
func TestEncodeIsNumPySave(t *testing.T) {
	dir := t.TempDir()
	for _, shape := range [][]int{{}, {5}, {0, 3}, {2, 3, 4}, {1, 1, 2, 1, 3}} {
		n := 1
		dims := make([]string, len(shape))
		for i, d := range shape {
			n *= d
			dims[i] = strconv.Itoa(d)
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(i) / 2
		}
		path := filepath.Join(dir, "np.npy")
		numpy(t, fmt.Sprintf("np.save(%q, (np.arange(%d, dtype=np.float32) / 2).reshape((%s)))", path, n, strings.Join(append(dims, ""), ",")))
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := npy.Encode(&got, data, shape...); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("shape %v: Encode wrote\n%q\nnumpy.save\n%q", shape, got.Bytes(), want)
		}
	}
}

func TestReadNumPyArrayAndRejectWrongDType(t *testing.T) {
	dir := t.TempDir()
	f32, f64 := filepath.Join(dir, "f32.npy"), filepath.Join(dir, "f64.npy")
	numpy(t, "a = np.arange(6, dtype=np.float32).reshape(1, 2, 3); np.save('"+f32+"', a); np.save('"+f64+"', a.astype(np.float64))")
	data, shape, err := npy.ReadFloat32(f32)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 3 || shape[0] != 1 || shape[1] != 2 || shape[2] != 3 || data[5] != 5 {
		t.Errorf("read shape %v data %v", shape, data)
	}
	if _, _, err := npy.ReadFloat32(f64); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("float64 file: err = %v, want a dtype error", err)
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.npy")
	if err := npy.WriteFloat32(path, []float32{1, 2, 3}, 2, 2); err == nil {
		t.Fatal("shape mismatch accepted")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left files behind: %v", entries)
	}
}

// A garbled header is an error, not a crash (npyio panics on some).
func TestDecodeGarbledHeader(t *testing.T) {
	var buf bytes.Buffer
	if err := npy.Encode(&buf, []float32{1, 2}, 2); err != nil {
		t.Fatal(err)
	}
	garbled := bytes.Replace(buf.Bytes(), []byte("'shape'"), []byte("'shope'"), 1)
	if _, _, err := npy.Decode(bytes.NewReader(garbled)); err == nil || !strings.Contains(err.Error(), "not a readable .npy array") {
		t.Errorf("garbled header: err = %v", err)
	}
}
