//go:build unix

package atomicfile_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/convlens/convlens/internal/atomicfile"
)

// New files get 0666 less the umask, as os.Create gives; replaced files keep their mode.
func TestModes(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o027))
	dir := t.TempDir()
	private, open, fresh := filepath.Join(dir, "private"), filepath.Join(dir, "open"), filepath.Join(dir, "fresh")
	os.WriteFile(private, []byte("old"), 0o600)
	os.WriteFile(open, []byte("old"), 0o644)
	os.Chmod(open, 0o666) // wider than the umask allows a new file
	for _, p := range []string{private, open, fresh} {
		if err := atomicfile.WriteFile(p, text("new")); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]fs.FileMode{private: 0o600, open: 0o666, fresh: 0o640} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), fi.Mode().Perm(), want)
		}
	}
}
