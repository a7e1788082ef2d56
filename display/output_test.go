package display

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/heatmap"
)

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSavePNGRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.png")
	img := randomImage(9, 5, 7)
	if err := SavePNG(path, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := findImage(got, img); !ok || p != (image.Point{}) || got.Bounds() != img.Bounds() {
		t.Error("decoded PNG differs from the image saved")
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want only out.png", names)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestSavePNGFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.png")
	// png.Encode refuses an empty image, after SavePNG has created its
	// temporary file.
	empty := image.NewRGBA(image.Rect(0, 0, 0, 0))
	if err := SavePNG(path, empty); err == nil {
		t.Fatal("SavePNG of an empty image succeeded")
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("failed save left %v", names)
	}
	// An existing file survives a failed save untouched.
	if err := os.WriteFile(path, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SavePNG(path, empty); err == nil {
		t.Fatal("SavePNG of an empty image succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "previous" {
		t.Errorf("failed save changed the existing file to %q", b)
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("failed save left %v", names)
	}
	// And a successful save replaces it.
	if err := SavePNG(path, randomImage(2, 2, 1)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Error("successful save did not replace the file")
	}

	if err := SavePNG(filepath.Join(dir, "missing", "x.png"), randomImage(2, 2, 1)); err == nil {
		t.Error("SavePNG into a missing directory succeeded")
	}
	if err := SavePNG(filepath.Join(dir, "x.png"), nil); err == nil {
		t.Error("SavePNG(nil) succeeded")
	}
	if err := SavePNG(dir+"/", randomImage(2, 2, 1)); err == nil {
		t.Error("SavePNG to a directory name succeeded")
	}
}

func TestSaveHTML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "page.html")
	if err := SaveHTML(path, "<p>hi</p>"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "<p>hi</p>" {
		t.Errorf("SaveHTML wrote %q", b)
	}
}

// notNotebook makes the package believe it runs outside a notebook (it
// does, but be explicit) for the test.
func notNotebook(t *testing.T) {
	old := isNotebook
	isNotebook = func() bool { return false }
	t.Cleanup(func() { isNotebook = old })
}

func TestShowOutsideNotebook(t *testing.T) {
	notNotebook(t)
	img := randomImage(4, 3, 9)

	t.Setenv(DisplayDirEnv, "")
	if err := Show(img); !errors.Is(err, ErrNotNotebook) {
		t.Errorf("Show without %s: %v, want ErrNotNotebook", DisplayDirEnv, err)
	}
	if err := ShowHTML("<b>x</b>"); !errors.Is(err, ErrNotNotebook) {
		t.Errorf("ShowHTML without %s: %v, want ErrNotNotebook", DisplayDirEnv, err)
	}

	dir := filepath.Join(t.TempDir(), "shown") // created on demand
	t.Setenv(DisplayDirEnv, dir)
	if err := Show(img); err != nil {
		t.Fatal(err)
	}
	if err := Show(img); err != nil {
		t.Fatal(err)
	}
	if err := ShowHTML("<b>x</b>"); err != nil {
		t.Fatal(err)
	}
	names := dirEntries(t, dir)
	var pngs, htmls int
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "show-") && strings.HasSuffix(n, ".png"):
			pngs++
			f, _ := os.Open(filepath.Join(dir, n))
			got, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Errorf("%s: %v", n, err)
			} else if _, ok := findImage(got, img); !ok {
				t.Errorf("%s does not hold the image", n)
			}
		case strings.HasPrefix(n, "show-") && strings.HasSuffix(n, ".html"):
			htmls++
			if b, _ := os.ReadFile(filepath.Join(dir, n)); string(b) != "<b>x</b>" {
				t.Errorf("%s holds %q", n, b)
			}
		default:
			t.Errorf("unexpected file %s", n)
		}
	}
	if pngs != 2 || htmls != 1 {
		t.Errorf("files %v: want 2 PNGs and 1 HTML", names)
	}
	if err := Show(nil); err == nil {
		t.Error("Show(nil) succeeded")
	}
}

func TestShowInNotebook(t *testing.T) {
	oldNB, oldPNG, oldHTML := isNotebook, sendPNG, sendHTML
	t.Cleanup(func() { isNotebook, sendPNG, sendHTML = oldNB, oldPNG, oldHTML })
	var gotPNG []byte
	var gotHTML string
	isNotebook = func() bool { return true }
	sendPNG = func(b []byte) error { gotPNG = b; return nil }
	sendHTML = func(s string) error { gotHTML = s; return nil }
	t.Setenv(DisplayDirEnv, t.TempDir())

	img := randomImage(5, 4, 3)
	if err := Show(img); err != nil {
		t.Fatal(err)
	}
	dec, err := png.Decode(bytes.NewReader(gotPNG))
	if err != nil {
		t.Fatalf("notebook got no PNG: %v", err)
	}
	if _, ok := findImage(dec, img); !ok {
		t.Error("notebook PNG differs from the image")
	}
	if err := ShowHTML("<i>y</i>"); err != nil || gotHTML != "<i>y</i>" {
		t.Errorf("ShowHTML sent %q, %v", gotHTML, err)
	}
	if names := dirEntries(t, os.Getenv(DisplayDirEnv)); len(names) != 0 {
		t.Errorf("in a notebook Show wrote files %v", names)
	}

	sendPNG = func([]byte) error { return errors.New("pipe closed") }
	if err := Show(img); err == nil {
		t.Error("a failed send was not reported")
	}
}

// testBuilderShow checks the Show method of a builder that makes one
// picture, as TestChartShow checks Chart.Show: outside a notebook it
// returns ErrNotNotebook, or writes the builder's picture to one new PNG
// file in DisplayDirEnv; in a notebook it sends that picture and writes
// nothing. bad is the Show of a builder whose Image fails: it returns the
// error and shows nothing.
func testBuilderShow(t *testing.T, show func() error, render func() (image.Image, error), bad func() error) {
	t.Helper()
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, b []byte) {
		t.Helper()
		got, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if p, ok := findImage(got, want); !ok || p != (image.Point{}) || got.Bounds() != want.Bounds() {
			t.Errorf("%s is not the builder's picture", what)
		}
	}

	notNotebook(t)
	t.Setenv(DisplayDirEnv, "")
	if err := show(); !errors.Is(err, ErrNotNotebook) {
		t.Errorf("Show outside a notebook: %v, want ErrNotNotebook", err)
	}
	dir := t.TempDir()
	t.Setenv(DisplayDirEnv, dir)
	if err := show(); err != nil {
		t.Fatal(err)
	}
	names := dirEntries(t, dir)
	if len(names) != 1 || !strings.HasPrefix(names[0], "show-") || !strings.HasSuffix(names[0], ".png") {
		t.Fatalf("Show wrote %v", names)
	}
	b, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		t.Fatal(err)
	}
	same("the file Show wrote", b)
	if err := bad(); err == nil || errors.Is(err, ErrNotNotebook) {
		t.Errorf("Show of a builder that fails: %v, want its error", err)
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("a failed Show wrote files: %v", names)
	}

	var sent []byte
	oldNB, oldPNG := isNotebook, sendPNG
	t.Cleanup(func() { isNotebook, sendPNG = oldNB, oldPNG })
	isNotebook = func() bool { return true }
	sendPNG = func(b []byte) error { sent = b; return nil }
	if err := show(); err != nil {
		t.Fatal(err)
	}
	same("the PNG Show sent", sent)
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("in a notebook Show wrote files %v", names)
	}
	sent = nil
	if err := bad(); err == nil || sent != nil {
		t.Errorf("Show of a builder that fails: %v, sent %d bytes", err, len(sent))
	}
}

// The builders' Save writes exactly their picture, atomically, and a builder
// that fails writes nothing.
func TestBuilderSave(t *testing.T) {
	m := heatmap.Map{Width: 2, Height: 2, Values: []float32{0, 1, 0.5, 0.25}}
	for name, b := range map[string]interface {
		Image() (image.Image, error)
		Save(string) error
	}{
		"Overlay": Overlay(randomImage(12, 8, 5), m).Alpha(0.4),
		"Heatmap": Heatmap(m).Size(6, 6),
	} {
		want, err := b.Image()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "out.png")
		if err := b.Save(path); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p, ok := findImage(got, want); !ok || p != (image.Point{}) || got.Bounds() != want.Bounds() {
			t.Errorf("%s: the saved file is not the builder's picture", name)
		}
	}
	dir := t.TempDir()
	if err := Overlay(nil, heatmap.Map{}).Save(filepath.Join(dir, "bad.png")); err == nil {
		t.Error("Save of a builder that fails: no error")
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("a failed Save wrote files: %v", names)
	}
}

// Replacing a file keeps its mode: a private (0600) picture stays private.
func TestSavePNGKeepsTheReplacedFilesMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.png")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SavePNG(path, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want 0600 kept", fi.Mode().Perm(), err)
	}
}
