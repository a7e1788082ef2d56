package display

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"

	"github.com/convlens/convlens/internal/atomicfile"

	"github.com/janpfeifer/gonb/gonbui"
)

// DisplayDirEnv names the environment variable that gives Show, ShowHTML and
// the builders' Show methods (Chart.Show, OverlayBuilder.Show, ...) a
// directory to write to when the program is not running in a GoNB notebook.
const DisplayDirEnv = "CONVLENS_DISPLAY_DIR"

// ErrNotNotebook is returned by Show, ShowHTML and the builders' Show
// methods when the program is not running inside a GoNB notebook and
// DisplayDirEnv is unset, so there is nowhere to show anything. Test for it
// with errors.Is; a command-line program would save with SavePNG or
// SaveHTML instead.
var ErrNotNotebook = errors.New("display: not running in a GoNB notebook (set " + DisplayDirEnv + " to write files instead)")

// Hooks for tests. Each display waits for GoNB to take it (gonbui.Sync):
// otherwise a cell whose program exits right after can lose its last picture.
var (
	isNotebook = func() bool { return gonbui.IsNotebook }
	sendPNG    = func(b []byte) error { gonbui.DisplayPng(b); gonbui.Sync(); return gonbui.Error() }
	sendHTML   = func(s string) error { gonbui.DisplayHTML(s); gonbui.Sync(); return gonbui.Error() }
)

// SavePNG writes img to path as a PNG file, atomically: the picture is first
// written to a temporary file in the same directory, which is renamed to
// path only once complete, so an error leaves no partial file, and an
// existing file at path is replaced only by a whole picture, keeping its
// mode (a new file gets the umask's). A nil img (or
// a nil pointer inside the interface), an empty one, or one of more than
// heatmap.MaxPixels pixels, is an error, and writes nothing.
func SavePNG(path string, img image.Image) error {
	if err := checkImage("SavePNG: img", img); err != nil {
		return err
	}
	return writeFileAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// SaveHTML writes the HTML text s to path, atomically like SavePNG. Use it
// with Chart.HTML for a page that opens in any browser.
func SaveHTML(path, s string) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	})
}

// writeFileAtomic creates or replaces path with what write produces,
// atomically (see internal/atomicfile: the umask honoured, a replaced
// file's mode kept).
func writeFileAtomic(path string, write func(io.Writer) error) error {
	if err := atomicfile.WriteFile(path, write); err != nil {
		return fmt.Errorf("display: saving %s: %w", path, err)
	}
	return nil
}

// Show displays img in the output of the running GoNB notebook cell.
//
// Outside a notebook, if the environment variable CONVLENS_DISPLAY_DIR
// (DisplayDirEnv) names a directory, Show writes img there as a new PNG
// file named show-*.png and returns nil; otherwise it returns
// ErrNotNotebook and does nothing.
func Show(img image.Image) error {
	if err := checkImage("Show: img", img); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("display: encoding PNG: %w", err)
	}
	if isNotebook() {
		return sendPNG(buf.Bytes())
	}
	return writeShowFile(".png", buf.Bytes())
}

// ShowHTML displays the HTML fragment s in the output of the running GoNB
// notebook cell. Notebooks exported to HTML load RequireJS, which captures
// UMD scripts such as echarts; for charts use Chart.Show, which isolates the
// chart in an iframe.
//
// Outside a notebook it behaves like Show: it writes s to a new show-*.html
// file in CONVLENS_DISPLAY_DIR if that is set, and otherwise returns
// ErrNotNotebook.
func ShowHTML(s string) error {
	if isNotebook() {
		return sendHTML(s)
	}
	return writeShowFile(".html", []byte(s))
}

// showImage shows what a builder's Image method returns, as Show does, or
// returns the builder's error. The Show methods of the builders that make
// one picture are this.
func showImage(img image.Image, err error) error {
	if err != nil {
		return err
	}
	return Show(img)
}

// saveImage saves what a builder's Image method returns, as SavePNG does, or
// returns the builder's error. The Save methods of the builders that make
// one picture are this.
func saveImage(path string, picture func() (image.Image, error)) error {
	img, err := picture()
	if err != nil {
		return err
	}
	return SavePNG(path, img)
}

// writeShowFile writes data to a new file in the fallback directory.
func writeShowFile(ext string, data []byte) error {
	dir := os.Getenv(DisplayDirEnv)
	if dir == "" {
		return ErrNotNotebook
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("display: %s: %w", DisplayDirEnv, err)
	}
	// Reserve a unique name, then fill it atomically under that name.
	f, err := os.CreateTemp(dir, "show-*"+ext)
	if err != nil {
		return fmt.Errorf("display: %s: %w", DisplayDirEnv, err)
	}
	path := f.Name()
	f.Close()
	if err := writeFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}
