// Package repo finds the convlens checkout the commands under it (bench,
// coverage) run in, for the caches and scripts they keep there.
package repo

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Root is the directory of convlens' go.mod: found from the working
// directory up, else from this source file's location.
func Root() (string, error) {
	isRoot := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		return err == nil && strings.Contains(string(b), "module github.com/convlens/convlens\n")
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isRoot(dir) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Join(filepath.Dir(file), "..", ".."); isRoot(dir) {
			return filepath.Clean(dir), nil
		}
	}
	return "", errors.New("run it inside the convlens repository (go run ./bench or ./coverage from there)")
}
