package models_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
)

// pngHeaderOnly is a valid PNG signature and IHDR declaring a w×h 8-bit RGB
// image, followed by an IDAT holding two rows and no IEND: a few hundred
// bytes whose header asks a decoder for w·h·4 bytes.
func pngHeaderOnly(w, h int) []byte {
	var b bytes.Buffer
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2 // 8 bits a sample, truecolour.
	chunk("IHDR", ihdr)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 2*(1+3*w)))
	zw.Flush()
	chunk("IDAT", z.Bytes())
	return b.Bytes()
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A header-only PNG declaring 60000×60000 pixels is refused from its header,
// before the decoder allocates its 14.4 GB.
func TestLoadImageRefusesDecompressionBomb(t *testing.T) {
	path := writeTemp(t, "bomb.png", pngHeaderOnly(60000, 60000))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := models.LoadImage(path)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "60000×60000 pixels (3600.0 megapixels), over the limit of 100.0 megapixels") ||
		!strings.Contains(err.Error(), "models.MaxImagePixels") {
		t.Errorf("err = %v, want the size, the limit and how to raise it", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("refusing the bomb allocated %d bytes", n)
	}
	if elapsed > time.Second {
		t.Errorf("refusing the bomb took %v", elapsed)
	}
}

func TestLoadImageLimitIsSettable(t *testing.T) {
	defer func(n int) { models.MaxImagePixels = n }(models.MaxImagePixels)
	cat := testutil.Testdata("images", "chelsea.png")
	models.MaxImagePixels = 451*300 - 1 // One pixel fewer than the cat.
	if _, err := models.LoadImage(cat); err == nil || !strings.Contains(err.Error(), "451×300") {
		t.Errorf("over the lowered limit: err = %v", err)
	}
	models.MaxImagePixels = 451 * 300
	if _, err := models.LoadImage(cat); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

// Resizing a large picture reads the pixels it samples, with no float copy
// of the whole picture (which would be 12 bytes a pixel).
func TestTensorOfLargeImageAllocatesLittle(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	in := models.Input{Layout: models.NCHW, Channels: 3, Height: 224, Width: 224, Normalization: models.ImageNet}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := in.Tensor(img); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// The batch itself is 600 KB, and each sampled pixel boxes its colour.
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("Tensor of a 4000×3000 image allocated %d MB", n>>20)
	}
}

// FuzzLoadImage: any bytes either load as an image that preprocesses, or
// give an error, quickly; never a panic.
func FuzzLoadImage(f *testing.F) {
	small := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	small.Set(1, 1, color.NRGBA{200, 10, 30, 128})
	var p, j, grey16 bytes.Buffer
	png.Encode(&p, small)
	jpeg.Encode(&j, small, nil)
	png.Encode(&grey16, image.NewGray16(image.Rect(0, 0, 2, 5)))
	for _, seed := range [][]byte{
		p.Bytes(), j.Bytes(), grey16.Bytes(),
		pngHeaderOnly(60000, 60000), pngHeaderOnly(4, 4),
		p.Bytes()[:len(p.Bytes())/2], j.Bytes()[:len(j.Bytes())/2],
		[]byte("\x89PNG\r\n\x1a\n"), []byte("\xff\xd8\xff"), []byte("not a picture"), nil,
	} {
		f.Add(seed)
	}
	// A mutated header may declare up to the limit: keep each input cheap.
	defer func(n int) { models.MaxImagePixels = n }(models.MaxImagePixels)
	models.MaxImagePixels = 1 << 20
	in := models.Input{Layout: models.NHWC, Channels: 3, Height: 8, Width: 8, Normalization: models.ImageNet}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeTemp(t, "in", data)
		start := time.Now()
		img, err := models.LoadImage(path)
		if err == nil {
			b := img.Bounds()
			if b.Empty() || b.Dx()*b.Dy() > models.MaxImagePixels {
				t.Fatalf("loaded a %v image", b)
			}
			if _, err := in.Tensor(img); err != nil {
				t.Fatalf("Tensor of a loaded %v image: %v", b, err)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v on %d bytes", d, len(data))
		}
	})
}
