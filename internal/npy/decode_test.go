package npy_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/npy"
)

// npyFile assembles a .npy file of format version major.0 from its header
// text and data, with none of the checks a writer makes.
func npyFile(major byte, header string, data []byte) []byte {
	b := []byte("\x93NUMPY")
	b = append(b, major, 0)
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(header)))
	}
	return append(append(b, header...), data...)
}

func f4Header(shape string) string {
	return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n"
}

func values(n int) []byte {
	b := make([]byte, 0, 4*n)
	for i := range n {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(i)+0.5))
	}
	return b
}

// hostile are files that once panicked or allocated gigabytes, and others
// like them; each must be an error naming what is wrong.
var hostile = []struct {
	name string
	file []byte
	want string
}{
	{"negative dimension", npyFile(1, f4Header("(-1, 4)"), nil), "dimension -1 is negative"},
	{"negative dimensions with a positive product", npyFile(1, f4Header("(-2, -3)"), values(6)), "dimension -2 is negative"},
	{"product overflows to 0", npyFile(1, f4Header("(4294967296, 4294967296)"), nil), "multiply past what memory can address"},
	{"product overflows beside a 0", npyFile(1, f4Header("(0, 4611686018427387904, 8)"), nil), "multiply past what memory can address"},
	{"dimension beyond int64", npyFile(1, f4Header("(99999999999999999999,)"), nil), "dimension 99999999999999999999 is out of range"},
	{"v2 header length 0xFFFFFFFF", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff{}\n"), "the header is 4294967295 bytes long, the file has 3 after its length"},
	{"v1 header longer than the file", npyFile(1, f4Header("(2,)"), nil)[:30], "the header is 58 bytes long, the file has 20 after its length"},
	{"header longer than NumPy loads", npyFile(2, f4Header("(2,)")+strings.Repeat(" ", 10000), values(2)), "more than the 10000 NumPy loads"},
	{"unknown version", []byte("\x93NUMPY\x04\x00\x10\x00{}"), "format version 4.0"},
	{"file ends in the header length", []byte("\x93NUMPY\x02\x00\x10\x00"), "ends inside its header length"},
	{"truncated magic", []byte("\x93NUM"), "no NumPy magic"},
	{"empty", nil, "no NumPy magic"},
	{"short data", npyFile(1, f4Header("(2, 3)"), values(5)), "needs 6 values (4 bytes each), the file has 20 bytes"},
	{"a number is not a tuple", npyFile(1, f4Header("(3)"), values(3)), "(3) is not a tuple; a 1-D shape is (3,)"},
	{"shape of booleans", npyFile(1, f4Header("(True, 3)"), values(3)), "want an integer dimension"},
	{"leading zero", npyFile(1, f4Header("(010,)"), values(10)), "want an integer dimension"},
	{"fortran_order not a bool", npyFile(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", values(2)), "want True or False"},
	{"missing key", npyFile(1, "{'descr': '<f4', 'fortran_order': False}", values(1)), `no "shape" key`},
	{"extra key", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", values(1)), `unexpected key "x"`},
	{"text after the dict", npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", values(1)), "text after the closing brace"},
	{"unterminated string", npyFile(1, "{'descr': '<f4}", nil), "unterminated string"},
	{"not a dict", npyFile(1, "['<f4']", nil), "not a dict"},
}

func TestDecodeRefusesHostileFiles(t *testing.T) {
	for _, c := range hostile {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := npy.Decode(bytes.NewReader(c.file))
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: allocated %d bytes", c.name, n)
		}
	}
}

// numpy.save writes a trailing ", }"; a header without it, as other writers
// make, keeps every dimension.
func TestDecodeHeaderWithoutTrailingComma(t *testing.T) {
	file := npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", values(6))
	data, shape, err := npy.Decode(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{2, 3}) || len(data) != 6 || data[5] != 5.5 {
		t.Errorf("shape %v data %v, want [2 3] and 0.5..5.5", shape, data)
	}
}

// Every file NumPy reads, Decode reads as the same array, and the hostile
// files NumPy refuses too. Deliberate differences are left out: Decode
// refuses data past the array's end, a negative dimension that NumPy's
// reshape infers as 0, dtypes other than <f4 and Fortran order.
func TestDecodeReadsWhatNumPyReads(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"no trailing comma":   npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", values(6)),
		"double quotes":       npyFile(1, `{"descr": "<f4", "fortran_order": False, "shape": (2, 3)}`, values(6)),
		"odd spacing":         npyFile(1, "{ 'shape' :( 2 ,3 , ) ,'fortran_order':False,\n'descr':'<f4' , }   \n", values(6)),
		"python 2 longs":      npyFile(1, f4Header("(2L, 3L)"), values(6)),
		"signed":              npyFile(1, f4Header("(+2, 3)"), values(6)),
		"repeated key":        npyFile(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'descr': '<f4'}", values(2)),
		"version 2":           npyFile(2, f4Header("(1, 2, 2)"), values(4)),
		"version 3":           npyFile(3, f4Header("(4,)"), values(4)),
		"scalar":              npyFile(1, f4Header("()"), values(1)),
		"zero with large dim": npyFile(1, f4Header("(0, 461168601842738790, 2)"), nil),
	}
	for _, c := range hostile {
		if !strings.Contains(c.name, "negative dimension") { // NumPy's reshape reads (-1, 4) as (0, 4).
			files["hostile: "+c.name] = c.file
		}
	}
	for name, file := range files {
		if err := os.WriteFile(filepath.Join(dir, name+".npy"), file, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// NumPy writes its own files in each format version, then loads every file.
	script := "import glob, json\n"
	for _, shape := range []string{"()", "(0,)", "(5,)", "(2, 3)", "(1, 3, 4, 4)", "(0, 3)"} {
		for _, version := range []string{"(1, 0)", "(2, 0)", "(3, 0)"} {
			path := filepath.Join(dir, fmt.Sprintf("numpy %s %s.npy", shape, version))
			script += fmt.Sprintf("with open(%q, 'wb') as f: np.lib.format.write_array(f, (np.arange(np.prod(%s), dtype=np.float32) / 4).reshape(%s), version=%s)\n", path, shape, shape, version)
		}
	}
	script += fmt.Sprintf(`for path in sorted(glob.glob(%q)):
    try:
        a = np.load(path)
        print(json.dumps({'path': path, 'shape': list(a.shape), 'data': a.tobytes().hex()}))
    except Exception as e:
        print(json.dumps({'path': path, 'error': str(e)[:200]}))
`, filepath.Join(dir, "*.npy"))
	lines := strings.Split(numpy(t, script), "\n")
	if len(lines) != len(files)+18 {
		t.Fatalf("NumPy gave %d verdicts for %d files", len(lines), len(files)+18)
	}
	for _, line := range lines {
		var v struct {
			Path, Data, Error string
			Shape             []int
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("NumPy's verdict %q: %v", line, err)
		}
		data, shape, err := npy.ReadFloat32(v.Path)
		name := filepath.Base(v.Path)
		switch {
		case v.Error != "" && err == nil:
			t.Errorf("%s: NumPy refuses it (%s), Decode reads shape %v", name, v.Error, shape)
		case v.Error == "" && err != nil:
			t.Errorf("%s: NumPy reads shape %v, Decode fails: %v", name, v.Shape, err)
		case v.Error == "":
			var raw []byte
			for _, x := range data {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
			}
			if !slices.Equal(shape, v.Shape) || fmt.Sprintf("%x", raw) != v.Data {
				t.Errorf("%s: NumPy reads shape %v data %s, Decode shape %v data %x", name, v.Shape, v.Data, shape, raw)
			}
		}
	}
}

// FuzzDecode: any bytes decode to an array whose shape accounts for every
// value and that encodes back to itself, or give an error; never a panic.
func FuzzDecode(f *testing.F) {
	for _, shape := range [][]int{{}, {0}, {3}, {2, 3}, {1, 3, 2, 2}} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		var buf bytes.Buffer
		if err := npy.Encode(&buf, make([]float32, n), shape...); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(npyFile(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", values(6)))
	f.Add(npyFile(3, f4Header("(2L, 3)"), values(6)))
	for _, c := range hostile {
		f.Add(c.file)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		data, shape, err := npy.Decode(bytes.NewReader(file))
		if err != nil {
			return
		}
		n := 1
		for _, d := range shape {
			if d < 0 {
				t.Fatalf("shape %v accepted", shape)
			}
			n *= d
		}
		if n != len(data) {
			t.Fatalf("shape %v with %d values", shape, len(data))
		}
		var buf bytes.Buffer
		if err := npy.Encode(&buf, data, shape...); err != nil {
			t.Fatalf("re-encoding shape %v: %v", shape, err)
		}
		again, shape2, err := npy.Decode(&buf)
		if err != nil || !slices.Equal(shape, shape2) || !slices.EqualFunc(data, again, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
			t.Fatalf("shape %v decodes, re-encodes and decodes to shape %v, err %v", shape, shape2, err)
		}
	})
}
