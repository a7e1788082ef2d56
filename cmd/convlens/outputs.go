package main

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"github.com/convlens/convlens/internal/atomicfile"
)

// Every command writes its files through one atomicfile.Set: each output is
// staged as it is made and all are committed together at the end, so that
// an error leaves every existing file as it was and no temporaries.

// current is the running command's set, which an interrupt discards.
var current atomic.Pointer[atomicfile.Set]

// stageOutputs starts the set of outputs of a command; the command defers
// its Discard and calls Commit once everything is written.
func stageOutputs() *atomicfile.Set {
	s := new(atomicfile.Set)
	current.Store(s)
	return s
}

// makeDir creates the folder path and any missing above it, and returns a
// function that removes those it created, for a command that fails before
// committing its outputs there: a failed command leaves no empty folder.
func makeDir(path string) (undo func(), err error) {
	var created []string // Deepest first.
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	undo = func() {
		for _, dir := range created {
			os.Remove(dir) // Fails, leaving it, if anything else was put there.
		}
	}
	if err := os.MkdirAll(path, 0o777); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

// stagePNG stages img as a PNG file at path.
func stagePNG(out *atomicfile.Set, path string, img image.Image) error {
	return out.Write(path, func(w io.Writer) error { return png.Encode(w, img) })
}

// stageText stages the text s as the file at path.
func stageText(out *atomicfile.Set, path, s string) error {
	return out.Write(path, func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	})
}

// discardOnSignal makes SIGINT and SIGTERM discard the staged outputs and
// exit as a shell reports a process the signal ended: 128 + its number (130
// for SIGINT). Discard waits for a commit under way, so every output is
// left either as it was or whole.
func discardOnSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-c
		if s := current.Load(); s != nil {
			s.Discard()
		}
		fmt.Fprintf(os.Stderr, "convlens: stopped by %v\n", sig)
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
}
