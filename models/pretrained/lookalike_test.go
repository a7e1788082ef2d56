package pretrained_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/modeltest"
	"github.com/convlens/convlens/models/pretrained"
	"github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/gomlx/core/tensors"
	"google.golang.org/protobuf/proto"
)

// The look-alikes of testdata/zoo (scripts/reference/gen_lookalikes.py) have
// the traits of the zoo files the catalogue lists, at a few kilobytes: the
// opset-7 MXNet exports, and the opset-12 files the zoo made from them with
// ONNX's version converter, made here the same way: each is served as the zoo serves its file, downloaded and
// loaded through the catalogue's own spec with only its address and
// checksum changed, and checked against the NumPy reference of the script.
var lookalikes = []struct {
	name string // catalogue name; the file is testdata/zoo/NAME-lookalike.onnx
	// folder of the zoo's .tar.gz that holds NAME.onnx ("" for a bare .onnx)
	// and the file's name in it.
	folder, file string
}{
	// The folder and file names inside the zoo's archives, as downloaders
	// that unpack them name their members (vgg16/vgg16.onnx,
	// resnet50v1/resnet50v1.onnx, resnet50v1/test_data_set_0/input_0.pb).
	{name: "vgg16-7", folder: "vgg16", file: "vgg16.onnx"},
	{name: "resnet50-v1-7", folder: "resnet50v1", file: "resnet50v1.onnx"},
	{name: "resnet18-v2-7"},
	{name: "vgg16-12"},
	{name: "resnet50-v1-12"},
}

const lookalikeClasses = 1000

func TestPretrainedLookalikesLoadAndExplain(t *testing.T) {
	input, inShape := testutil.ReadNPY(t, testutil.Testdata("zoo", "input.npy"))
	if !slices.Equal(inShape, []int{2, 3, 224, 224}) {
		t.Fatalf("input.npy shaped %v", inShape)
	}
	imageSize := 3 * 224 * 224
	image := func(i int) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(slices.Clone(input[i*imageSize:(i+1)*imageSize]), 1, 3, 224, 224)
	}
	for _, c := range lookalikes {
		t.Run(c.name, func(t *testing.T) {
			stem := testutil.Testdata("zoo", c.name+"-lookalike")
			onnx, err := os.ReadFile(stem + ".onnx")
			if err != nil {
				t.Fatal(err)
			}
			wantLogits, shape := testutil.ReadNPY(t, stem+".logits.npy")
			if !slices.Equal(shape, []int{2, lookalikeClasses}) {
				t.Fatalf("reference logits shaped %v", shape)
			}
			wantRaw, rawShape := testutil.ReadNPY(t, stem+".gradcam_raw.npy")
			layer, err := os.ReadFile(stem + ".layer.txt")
			if err != nil {
				t.Fatal(err)
			}

			spec, ok := pretrained.Lookup(c.name)
			if !ok {
				t.Fatalf("%s is not in the catalogue", c.name)
			}
			body := onnx
			if c.folder != "" {
				body = zooArchive(t, c.folder, c.file, onnx, image(0), wantLogits[:lookalikeClasses])
			}
			if spec.Archive != (c.folder != "") {
				t.Fatalf("the catalogue has Archive=%v for %s", spec.Archive, spec.URL)
			}
			srv, hits := server(t, body, http.StatusOK, false)
			// The catalogue's spec, served from here: its name, archive flag,
			// normalisation and labels are the real ones.
			spec.URL, spec.Mirrors = srv.URL+"/"+path.Base(spec.URL), nil
			spec.SHA256, spec.Size = sha(body), int64(len(body))
			m, err := pretrained.Downloader{CacheDir: t.TempDir()}.LoadSpec(spec)
			if err != nil {
				t.Fatal(err)
			}
			if hits.Load() != 1 {
				t.Errorf("%d requests, want 1", hits.Load())
			}
			if in := m.Input(); in.Layout != models.NCHW || in.Channels != 3 || in.Height != 224 || in.Width != 224 {
				t.Errorf("input %+v, want NCHW 3x224x224", in)
			}
			if labels := m.Labels(); len(labels) != lookalikeClasses || labels[281] != "tabby" {
				t.Errorf("%d labels", len(labels))
			}
			r := modeltest.Runner(t, m)

			// Logits against the NumPy reference, one image at a time as the file's batch allows.
			for i := range 2 {
				logits, _, err := r.Run(image(i))
				if err != nil {
					t.Fatalf("image %d: %v", i, err)
				}
				if got := logits.Shape().Dimensions; !slices.Equal(got, []int{1, lookalikeClasses}) {
					t.Fatalf("image %d: logits shaped %v", i, got)
				}
				want := wantLogits[i*lookalikeClasses : (i+1)*lookalikeClasses]
				e := testutil.RelErr(tensors.MustCopyFlatData[float32](logits), want)
				t.Logf("image %d: logits differ from the reference by %.3g relative", i, e)
				if e > 1e-4 {
					t.Errorf("image %d: logits differ from the reference by %.3g relative", i, e)
				}
			}

			// Grad-CAM at the default layer, each image alone, against the reference's raw maps.
			cam, err := gradcam.New(r).Done()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := cam.Layers(), strings.TrimSpace(string(layer)); len(got) != 1 || got[0] != want {
				t.Fatalf("default layer %q, the reference's %q", got, want)
			}
			alone := make([]*gradcam.Result, 2)
			for i := range 2 {
				res, err := cam.Explain(image(i), gradcam.Top(1))
				if err != nil {
					t.Fatalf("image %d: %v", i, err)
				}
				alone[i] = res
				if want := argmax(wantLogits[i*lookalikeClasses : (i+1)*lookalikeClasses]); res.Classes[0] != want {
					t.Errorf("image %d: explained class %d, the reference's top class %d", i, res.Classes[0], want)
				}
				raw := res.Raw[0]
				if raw.Height != rawShape[1] || raw.Width != rawShape[2] {
					t.Fatalf("image %d: raw map %dx%d, the reference's %dx%d", i, raw.Height, raw.Width, rawShape[1], rawShape[2])
				}
				want := wantRaw[i*raw.Height*raw.Width : (i+1)*raw.Height*raw.Width]
				e := testutil.RelErr(raw.Values, want)
				t.Logf("image %d: raw Grad-CAM differs from the reference by %.3g relative", i, e)
				if e > 1e-4 {
					t.Errorf("image %d: raw Grad-CAM differs from the reference by %.3g relative", i, e)
				}
			}

			// A batch of two gives each image the map it has alone.
			t.Run("batch of 2", func(t *testing.T) {
				both, err := cam.Explain(tensors.FromFlatDataAndDimensions(slices.Clone(input), 2, 3, 224, 224), gradcam.Top(1))
				if err != nil {
					t.Fatal(err)
				}
				for i := range 2 {
					if both.Classes[i] != alone[i].Classes[0] {
						t.Errorf("image %d: class %d in the batch, %d alone", i, both.Classes[i], alone[i].Classes[0])
					}
					if d := testutil.MaxAbsDiff(rawOf(both, i), rawOf(alone[i], 0)); d > 1e-5*maxAbs(rawOf(alone[i], 0)) {
						t.Errorf("image %d: raw map in the batch differs from alone by %.3g", i, d)
					}
					if d := testutil.MaxAbsDiff(normOf(both, i), normOf(alone[i], 0)); d > 1e-5 {
						t.Errorf("image %d: map in the batch differs from alone by %.3g", i, d)
					}
				}
				// The two images' maps differ, so a mixed-up batch cannot pass.
				if d := testutil.MaxAbsDiff(normOf(both, 0), normOf(both, 1)); d < 0.1 {
					t.Errorf("the two images' maps differ by only %.3g", d)
				}
			})
		})
	}
}

// zooArchive packs model as the zoo's .tar.gz archives are laid out: one
// folder holding the model and test_data_set_0..2, each with input_0.pb and
// output_0.pb (TensorProtos); the test data comes first so that the reader
// has to skip it.
func zooArchive(t *testing.T, folder, file string, model []byte, input *tensors.Tensor, logits []float32) []byte {
	t.Helper()
	in := tensorProto(t, "data", tensors.MustCopyFlatData[float32](input), input.Shape().Dimensions)
	out := tensorProto(t, "", logits, []int{1, len(logits)})
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte) {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}
		if data == nil {
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add(folder+"/", nil)
	for i := range 3 {
		dir := fmt.Sprintf("%s/test_data_set_%d/", folder, i)
		add(dir, nil)
		add(dir+"input_0.pb", in)
		add(dir+"output_0.pb", out)
	}
	add(folder+"/"+file, model)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tensorProto(t *testing.T, name string, values []float32, dims []int) []byte {
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	d := make([]int64, len(dims))
	for i, v := range dims {
		d[i] = int64(v)
	}
	b, err := proto.Marshal(&protos.TensorProto{Name: name, DataType: int32(protos.TensorProto_FLOAT), Dims: d, RawData: raw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// rawOf and normOf are image n's raw and normalised maps (one target an image).
func rawOf(r *gradcam.Result, n int) []float32 {
	size := r.Raw[0].Height * r.Raw[0].Width
	return r.Raw[0].Values[n*size : (n+1)*size]
}

func normOf(r *gradcam.Result, n int) []float32 {
	size := r.Height * r.Width
	return r.Normalized[n*size : (n+1)*size]
}
