package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/convlens/convlens/cmd/convlens/internal/demo"
)

// runDemo writes the textbook walkthrough on the embedded models.
func runDemo(args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("demo", stderr)
	out := fs.String("out", "", "folder for index.html and its pictures (created if missing)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("--out DIR is required")}
	}
	undo, err := makeDir(*out)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	files := stageOutputs()
	defer files.Discard()
	page, err := demo.Write(files, *out, b, func(title string) { fmt.Fprintln(stderr, "done:", title) })
	if err != nil {
		return err
	}
	if err := files.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", page)
	return nil
}
