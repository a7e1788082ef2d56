// Package atomicfile writes files that readers see whole or not at all.
// Each file is written to a temporary file beside it, named
// .NAME.tmp-RANDOM, and renamed over it once complete. A Set stages several
// files and renames them only after every one was written, so that a
// command's outputs land together or, on error, leave every old file as it
// was.
//
// A new file gets the mode os.Create gives it (0666 less the umask); a file
// replaced keeps its permission bits. A path that is a symbolic link writes
// the file it points to, and the link stays.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ErrDiscarded is returned by a Set's Write and Commit once it was discarded.
var ErrDiscarded = errors.New("outputs discarded")

// A Set stages files and moves them into place together. Its methods may be
// called from several goroutines: Discard, from a signal handler say, waits
// for a Commit under way, so every path is left either old or new and whole,
// and no temporary file survives it. The zero Set is ready to use.
type Set struct {
	mu        sync.Mutex
	staged    []stagedFile
	discarded bool
}

type stagedFile struct{ tmp, path string }

// Write stages a file for path with the content write produces; nothing at
// path changes before Commit.
func (s *Set) Write(path string, write func(io.Writer) error) error {
	target := Target(path)
	f, err := s.create(target)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())

	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.discarded {
		err = ErrDiscarded // Discard removed the file meanwhile.
	}
	if err != nil {
		s.drop(f.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// create makes the temporary file for target and records it, under the
// lock, so that Discard cannot miss it.
func (s *Set) create(target string) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discarded {
		return nil, ErrDiscarded
	}
	for _, st := range s.staged {
		if st.path == target {
			return nil, errors.New("it is already an output of this command")
		}
	}
	perm, replace := fs.FileMode(0o666), false
	if fi, err := os.Stat(target); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, errors.New("it exists and is not a regular file")
		}
		perm, replace = fi.Mode().Perm(), true
	}
	dir, name := filepath.Split(target)
	for range 100 {
		tmp := filepath.Join(dir, "."+name+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		// OpenFile applies the umask, as os.Create does.
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.staged = append(s.staged, stagedFile{tmp, target})
		// The umask may have narrowed a replaced file's mode.
		if replace {
			if err := f.Chmod(perm); err != nil {
				s.drop(tmp)
				f.Close()
				return nil, err
			}
		}
		return f, nil
	}
	return nil, errors.New("no unused temporary file name")
}

// drop removes a staged temporary file; the caller holds the lock.
func (s *Set) drop(tmp string) {
	for i, st := range s.staged {
		if st.tmp == tmp {
			os.Remove(tmp)
			s.staged = append(s.staged[:i], s.staged[i+1:]...)
			return
		}
	}
}

// Commit renames every staged file onto its path, in the order written. A
// rename fails only if the file system does (the paths were checked when
// staged); the error then says which outputs were already replaced, and the
// others are left as they were.
func (s *Set) Commit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discarded {
		return ErrDiscarded
	}
	for i, st := range s.staged {
		if err := os.Rename(st.tmp, st.path); err != nil {
			var done []string
			for _, d := range s.staged[:i] {
				done = append(done, d.path)
			}
			for _, rest := range s.staged[i:] {
				os.Remove(rest.tmp)
			}
			s.staged = nil
			if len(done) > 0 {
				return fmt.Errorf("writing %s: %w (already replaced: %s)", st.path, err, strings.Join(done, ", "))
			}
			return fmt.Errorf("writing %s: %w", st.path, err)
		}
	}
	s.staged = nil
	return nil
}

// Discard removes every staged file not yet committed; the Set takes no
// more. It may be called at any time, more than once, and after Commit.
func (s *Set) Discard() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.staged {
		os.Remove(st.tmp)
	}
	s.staged = nil
	s.discarded = true
}

// WriteFile writes one file atomically, as a Set of one.
func WriteFile(path string, write func(io.Writer) error) error {
	var s Set
	defer s.Discard()
	if err := s.Write(path, write); err != nil {
		return err
	}
	return s.Commit()
}

// Target is the file a write to path replaces: path made absolute, with
// symbolic links followed, even one that points to a file not yet made.
func Target(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	// Linux follows at most 40 links in a row; so do we.
	for range 40 {
		if t, err := filepath.EvalSymlinks(abs); err == nil {
			return t
		}
		// abs does not exist: resolve its folder, then follow abs if it is a link.
		if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			abs = filepath.Join(dir, filepath.Base(abs))
		}
		link, err := os.Readlink(abs)
		if err != nil {
			return abs
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(abs), link)
		}
		abs = link
	}
	return abs
}

// Same reports whether writing a and writing b would write one file.
func Same(a, b string) bool {
	ta, tb := Target(a), Target(b)
	if ta == tb {
		return true
	}
	fa, errA := os.Stat(ta)
	fb, errB := os.Stat(tb)
	return errA == nil && errB == nil && os.SameFile(fa, fb) // hard links, case-insensitive names
}
