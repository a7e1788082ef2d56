package mnistdata

import (
	"bytes"
	"compress/gzip"
	"slices"
	"strings"
	"testing"
)

// TestReadIDXTiny round-trips a small array with known values, plain and gzipped.
func TestReadIDXTiny(t *testing.T) {
	raw := []byte{
		0, 0, 0x08, 3, // uint8, 3 dimensions
		0, 0, 0, 2, // 2
		0, 0, 0, 3, // x 3
		0, 0, 0, 1, // x 1
		1, 2, 3, 250, 0, 255,
	}
	gz := new(bytes.Buffer)
	zw := gzip.NewWriter(gz)
	zw.Write(raw)
	zw.Close()
	for name, in := range map[string][]byte{"plain": raw, "gzip": gz.Bytes()} {
		a, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(a.Dims, []int{2, 3, 1}) || !slices.Equal(a.Data, []uint8{1, 2, 3, 250, 0, 255}) {
			t.Errorf("%s: got dims %v data %v", name, a.Dims, a.Data)
		}
	}
	var out bytes.Buffer
	if err := WriteIDX(&out, &IDX{Dims: []int{2, 3, 1}, Data: []uint8{1, 2, 3, 250, 0, 255}}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), raw) {
		t.Errorf("WriteIDX wrote % x, want % x", out.Bytes(), raw)
	}
}

func TestReadIDXErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "magic"},
		{"bad magic", []byte{1, 0, 8, 1, 0, 0, 0, 0}, "bad magic"},
		{"float type", []byte{0, 0, 0x0d, 1, 0, 0, 0, 0}, "not supported"},
		{"short dims", []byte{0, 0, 8, 2, 0, 0, 0, 1}, "dimension 2 of 2"},
		{"short data", []byte{0, 0, 8, 1, 0, 0, 0, 3, 7, 7}, "need 3 data bytes, got 2"},
		{"trailing", []byte{0, 0, 8, 1, 0, 0, 0, 1, 7, 7}, "trailing"},
		{"huge", []byte{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "more than"},
	} {
		_, err := ReadIDX(bytes.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadReal(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != Size || len(d.Pixels) != Size*Rows*Cols {
		t.Fatalf("got %d labels and %d pixels", d.Len(), len(d.Pixels))
	}
	h := d.Histogram()
	sum := 0
	for c, n := range h {
		// Every class is present in realistic proportion (MNIST: 9% to 11% each).
		if n < 800 || n > 1200 {
			t.Errorf("class %d has %d digits", c, n)
		}
		sum += n
	}
	if sum != Size {
		t.Errorf("histogram %v sums to %d", h, sum)
	}
	// Real digits: dark background, some ink, and not all images the same.
	img := d.Image(0)
	if img[0] != 0 || slices.Max(img) < 200 {
		t.Errorf("image 0 does not look like a digit: corner %d, max %d", img[0], slices.Max(img))
	}
	if bytes.Equal(d.Image(0), d.Image(1)) {
		t.Error("images 0 and 1 are identical")
	}
}

func TestSplit(t *testing.T) {
	train, held, err := Split()
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != TrainSize || held.Len() != HeldOutSize {
		t.Fatalf("split %d/%d", train.Len(), held.Len())
	}
	all, _ := Load()
	if got, want := addHist(train.Histogram(), held.Histogram()), all.Histogram(); got != want {
		t.Errorf("train+held-out histogram %v, all %v", got, want)
	}
	perm := Permutation(Size, SplitSeed)
	sorted := slices.Clone(perm)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("Permutation is not a permutation at %d", i)
		}
	}
	if !slices.Equal(perm, Permutation(Size, SplitSeed)) {
		t.Error("Permutation is not deterministic")
	}
	// Pinned so that the split never changes silently (it decides which digits
	// the embedded model may have seen).
	if got := perm[:5]; !slices.Equal(got, pinnedPermPrefix) {
		t.Errorf("Permutation(Size, SplitSeed)[:5] = %v, want %v", got, pinnedPermPrefix)
	}
}

var pinnedPermPrefix = []int{8336, 4280, 8940, 2041, 5090}

func addHist(a, b [Classes]int) [Classes]int {
	for i := range a {
		a[i] += b[i]
	}
	return a
}
