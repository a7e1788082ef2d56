package atomicfile_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/convlens/convlens/internal/atomicfile"
)

func text(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// names lists dir, so a test sees any temporary file left behind.
func names(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range entries {
		s = append(s, e.Name())
	}
	return strings.Join(s, " ")
}

func TestSetCommitsTogether(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("old a"), 0o644)
	var s atomicfile.Set
	if err := s.Write(a, text("new a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(b, text("new b")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, a); got != "old a" {
		t.Errorf("before Commit a is %q", got)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if read(t, a) != "new a" || read(t, b) != "new b" {
		t.Errorf("after Commit: a %q, b %q", read(t, a), read(t, b))
	}
	if got := names(t, dir); got != "a b" {
		t.Errorf("folder holds %s", got)
	}
}

// A failure in any output leaves every old file as it was and no temporaries.
func TestSetFailureLeavesOldFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("old a"), 0o644)
	var s atomicfile.Set
	if err := s.Write(a, text("new a")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.Write(b, func(w io.Writer) error { io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) || !strings.Contains(err.Error(), "writing "+b) {
		t.Errorf("err = %v", err)
	}
	s.Discard()
	if got := names(t, dir); got != "a" || read(t, a) != "old a" {
		t.Errorf("folder holds %s, a is %q", got, read(t, a))
	}
	if err := s.Write(b, text("late")); !errors.Is(err, atomicfile.ErrDiscarded) {
		t.Errorf("Write after Discard: %v", err)
	}
}

// Discard while a file is being written: the writer hears it, the file is gone.
func TestDiscardDuringWrite(t *testing.T) {
	dir := t.TempDir()
	var s atomicfile.Set
	writing, discarded := make(chan struct{}), make(chan struct{})
	go func() {
		<-writing
		s.Discard()
		close(discarded)
	}()
	err := s.Write(filepath.Join(dir, "a"), func(w io.Writer) error {
		close(writing)
		<-discarded
		_, err := io.WriteString(w, "content")
		return err
	})
	if !errors.Is(err, atomicfile.ErrDiscarded) {
		t.Errorf("err = %v, want ErrDiscarded", err)
	}
	if got := names(t, dir); got != "" {
		t.Errorf("folder holds %s", got)
	}
}

// A link to a file writes the file; the link stays.
func TestSymlinkWritesItsTarget(t *testing.T) {
	dir := t.TempDir()
	file, link := filepath.Join(dir, "file"), filepath.Join(dir, "link")
	os.WriteFile(file, []byte("old"), 0o600)
	if err := os.Symlink("file", link); err != nil {
		t.Skip(err)
	}
	if err := atomicfile.WriteFile(link, text("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if fi, _ := os.Stat(file); read(t, file) != "new" || fi.Mode().Perm() != 0o600 {
		t.Errorf("file is %q, mode %v", read(t, file), fi.Mode().Perm())
	}
}

func TestRefusesTwoWritesToOneFileAndDirectories(t *testing.T) {
	dir := t.TempDir()
	var s atomicfile.Set
	defer s.Discard()
	if err := s.Write(filepath.Join(dir, "a"), text("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(filepath.Join(dir, ".", "a"), text("2")); err == nil || !strings.Contains(err.Error(), "already an output") {
		t.Errorf("second write to a: %v", err)
	}
	if err := s.Write(dir, text("3")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("write to a folder: %v", err)
	}
}

func TestSame(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	os.WriteFile(a, nil, 0o644)
	os.Symlink("a", filepath.Join(dir, "link"))
	os.Symlink("sub/new", filepath.Join(dir, "dangling"))
	os.Link(a, filepath.Join(dir, "hard"))
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{a, filepath.Join(sub, "..", "a"), true},
		{a, filepath.Join(dir, "link"), true},
		{a, filepath.Join(dir, "hard"), true},
		{filepath.Join(dir, "new"), filepath.Join(sub, "..", "new"), true},
		{filepath.Join(dir, "dangling"), filepath.Join(sub, "new"), true},
		{a, filepath.Join(dir, "new"), false},
	} {
		if got := atomicfile.Same(c.a, c.b); got != c.same {
			t.Errorf("Same(%s, %s) = %v", c.a, c.b, got)
		}
	}
}
