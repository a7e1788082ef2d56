package embedded

import (
	"bytes"
	"encoding/binary"
	"image"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/convlens/convlens/datasets/mnistdata"
	"github.com/convlens/convlens/internal/npy"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// The MNIST layers, in graph order, with their shapes for a batch of one.
var wantMNISTLayers = []struct {
	name string
	dims []int
}{
	{"conv1", []int{1, 28, 28, 16}},
	{"relu1", []int{1, 28, 28, 16}},
	{"pool1", []int{1, 14, 14, 16}},
	{"conv2", []int{1, 14, 14, 32}},
	{"relu2", []int{1, 14, 14, 32}},
	{"pool2", []int{1, 7, 7, 32}},
	{"conv3", []int{1, 7, 7, 64}},
	{"relu3", []int{1, 7, 7, 64}},
	{"logits", []int{1, 10}},
}

func TestMNISTLoadsAndListsLayers(t *testing.T) {
	m, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "mnist" || !slices.Equal(m.Labels(), []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}) {
		t.Errorf("name %q labels %v", m.Name(), m.Labels())
	}
	if in := m.Input(); in.Layout != models.NHWC || in.Channels != 1 || in.Height != 28 || in.Width != 28 || len(in.Normalization.Mean) != 0 || len(in.Normalization.Std) != 0 {
		t.Errorf("input %+v", in)
	}
	layers, err := m.Check()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(wantMNISTLayers) {
		t.Fatalf("got %d layers: %v", len(layers), layers)
	}
	for i, want := range wantMNISTLayers {
		if layers[i].Name != want.name || !slices.Equal(layers[i].Shape.Dimensions, want.dims) {
			t.Errorf("layer %d: got %s %v, want %s %v", i, layers[i].Name, layers[i].Shape.Dimensions, want.name, want.dims)
		}
	}
	for _, name := range []string{"conv1", "relu2", "pool2", "relu3"} {
		if _, err := models.SpatialLayer(m, name); err != nil {
			t.Errorf("models.SpatialLayer(%s): %v", name, err)
		}
	}
	if _, err := models.SpatialLayer(m, "logits"); err == nil {
		t.Error("logits accepted as a spatial layer")
	}
	// The embedded weights fit the size budget.
	total := 0
	entries, _ := fs.ReadDir(mnistWeights, "weights/mnist")
	for _, e := range entries {
		info, _ := e.Info()
		total += int(info.Size())
	}
	if total == 0 || total > 2<<20 {
		t.Errorf("embedded weights take %d bytes", total)
	}
}

// TestMNISTHeldOutAccuracy classifies the 2,000 digits held out from
// training; the labels come from the MNIST files, so this checks the
// embedded weights independently of the training code.
func TestMNISTHeldOutAccuracy(t *testing.T) {
	r, held := mnistHeldOut(t)
	pixels := held.Float32()
	const batch, plane = 500, 28 * 28
	correct := 0
	perClass := [10][2]int{}
	for lo := 0; lo < held.Len(); lo += batch {
		hi := min(lo+batch, held.Len())
		x := tensors.FromFlatDataAndDimensions(pixels[lo*plane:hi*plane], hi-lo, 28, 28, 1)
		logits, acts, err := r.Run(x, "relu2")
		if err != nil {
			t.Fatal(err)
		}
		if got := acts[0].Shape().Dimensions; !slices.Equal(got, []int{hi - lo, 14, 14, 32}) {
			t.Fatalf("relu2 activation shaped %v", got)
		}
		flat := tensors.MustCopyFlatData[float32](logits)
		for i := range hi - lo {
			row := flat[i*10 : (i+1)*10]
			best := 0
			for c, v := range row {
				if v > row[best] {
					best = c
				}
			}
			label := held.Labels[lo+i]
			perClass[label][1]++
			if best == int(label) {
				correct++
				perClass[label][0]++
			}
		}
	}
	acc := float64(correct) / float64(held.Len())
	t.Logf("held-out accuracy %.2f%% (%d/%d); per class (correct/total) %v", 100*acc, correct, held.Len(), perClass)
	if held.Len() != 2000 || acc < 0.985 {
		t.Errorf("held-out accuracy %.2f%% (%d/%d), want >= 98.5%%", 100*acc, correct, held.Len())
	}
}

// TestMNISTFromImages feeds held-out digits as images through models.Input.Tensor,
// the path the command line takes, with batches of two sizes.
func TestMNISTFromImages(t *testing.T) {
	r, held := mnistHeldOut(t)
	pixels := held.Float32()
	for _, n := range []int{3, 1} {
		imgs := make([]image.Image, n)
		for i := range n {
			g := image.NewGray(image.Rect(0, 0, 28, 28))
			copy(g.Pix, held.Image(i))
			imgs[i] = g
		}
		x, err := r.Model().Input().Tensor(imgs...)
		if err != nil {
			t.Fatal(err)
		}
		flat := tensors.MustCopyFlatData[float32](x)
		for i, v := range flat {
			if math.Abs(float64(v-pixels[i])) > 1e-6 {
				t.Fatalf("Input.Tensor pixel %d is %v, the dataset's %v", i, v, pixels[i])
			}
		}
		logits, acts, err := r.Run(x, "relu3", "conv1")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(logits.Shape().Dimensions, []int{n, 10}) || !slices.Equal(acts[0].Shape().Dimensions, []int{n, 7, 7, 64}) ||
			!slices.Equal(acts[1].Shape().Dimensions, []int{n, 28, 28, 16}) {
			t.Errorf("shapes %v %v %v", logits.Shape(), acts[0].Shape(), acts[1].Shape())
		}
		// Same logits as from the dataset's own scaling.
		direct, _, err := r.Run(tensors.FromFlatDataAndDimensions(pixels[:n*28*28], n, 28, 28, 1))
		if err != nil {
			t.Fatal(err)
		}
		got, want := tensors.MustCopyFlatData[float32](logits), tensors.MustCopyFlatData[float32](direct)
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-4 {
				t.Fatalf("logit %d from the image is %v, from the dataset %v", i, got[i], want[i])
			}
		}
	}
}

// embeddedFiles copies the embedded weight files into a map that tests can corrupt.
func embeddedFiles(t *testing.T) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	for _, v := range mnistVariables {
		raw, err := mnistWeights.ReadFile("weights/mnist/" + v.file())
		if err != nil {
			t.Fatal(err)
		}
		out[v.file()] = &fstest.MapFile{Data: raw}
	}
	return out
}

func TestMNISTCorruptWeights(t *testing.T) {
	if _, err := LoadMNIST(embeddedFiles(t)); err != nil {
		t.Fatalf("intact copy: %v", err)
	}
	const file = "conv2.weights.npy"
	for _, tc := range []struct {
		name    string
		corrupt func(fstest.MapFS)
		want    []string
	}{
		{"truncated", func(f fstest.MapFS) { f[file].Data = f[file].Data[:len(f[file].Data)-7] }, []string{file, "needs 4608 values (4 bytes each), the file has 18425 bytes"}},
		{"trailing", func(f fstest.MapFS) { f[file].Data = append(slices.Clone(f[file].Data), 0) }, []string{file, "the file has 18433"}},
		{"not npy", func(f fstest.MapFS) { f[file].Data = []byte("PK\x03\x04 a zip file") }, []string{file, "not a readable .npy array"}},
		{"empty", func(f fstest.MapFS) { f[file].Data = nil }, []string{file, "not a readable .npy array"}},
		{"header cut", func(f fstest.MapFS) { f[file].Data = f[file].Data[:40] }, []string{file, "not a readable .npy array"}},
		{"float64", func(f fstest.MapFS) { f[file].Data = bytes.Replace(f[file].Data, []byte("'<f4'"), []byte("'<f8'"), 1) }, []string{file, "dtype is <f8"}},
		{"fortran", func(f fstest.MapFS) {
			f[file].Data = bytes.Replace(f[file].Data, []byte("False"), []byte("True "), 1)
		}, []string{file, "Fortran-ordered"}},
		{"garbled header", func(f fstest.MapFS) {
			f[file].Data = bytes.Replace(f[file].Data, []byte("'shape'"), []byte("'shope'"), 1)
		}, []string{file, "not a readable .npy array"}},
		{"wrong shape", func(f fstest.MapFS) {
			var buf bytes.Buffer
			npy.Encode(&buf, make([]float32, 3*3*32*16), 3, 3, 32, 16)
			f[file].Data = buf.Bytes()
		}, []string{file, "shape [3 3 32 16], the network needs [3 3 16 32]"}},
		{"NaN", func(f fstest.MapFS) {
			d := slices.Clone(f[file].Data)
			binary.LittleEndian.PutUint32(d[len(d)-4:], math.Float32bits(float32(math.NaN())))
			f[file].Data = d
		}, []string{file, "element 4607 is NaN"}},
		{"missing", func(f fstest.MapFS) { delete(f, file) }, []string{"/conv2/weights", "not exist"}},
		{"unexpected", func(f fstest.MapFS) { f["conv9.weights.npy"] = f[file] }, []string{"unexpected file conv9.weights.npy"}},
	} {
		files := embeddedFiles(t)
		tc.corrupt(files)
		_, err := LoadMNIST(files)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

// TestMNISTSaveRoundTrip writes the embedded model's weights and checks that
// they come back byte for byte (the encoding is deterministic).
func TestMNISTSaveRoundTrip(t *testing.T) {
	m, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := SaveMNISTWeights(m.Store(), dir); err != nil {
		t.Fatal(err)
	}
	for _, v := range mnistVariables {
		got, err := os.ReadFile(dir + "/" + v.file())
		if err != nil {
			t.Fatal(err)
		}
		want, _ := mnistWeights.ReadFile("weights/mnist/" + v.file())
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs after a save", v.file())
		}
	}
	if _, err := LoadMNIST(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := SaveMNISTWeights(model.NewStore(), dir); err == nil || !strings.Contains(err.Error(), "no variable /conv1/weights") {
		t.Errorf("saving an empty store: %v", err)
	}
}

// mnistHeldOut returns a runner of the embedded MNIST model and the held-out
// digits.
func mnistHeldOut(t *testing.T) (*models.Runner, *mnistdata.Digits) {
	t.Helper()
	m, err := MNIST()
	if err != nil {
		t.Fatal(err)
	}
	held, err := mnistdata.HeldOut()
	if err != nil {
		t.Fatal(err)
	}
	return modeltest.Runner(t, m), held
}
