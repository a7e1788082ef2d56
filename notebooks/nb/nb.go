// Package nb is what the convlens notebooks stand on, so that their cells
// read like the library's short path and nothing else: one call shows any
// picture, chart, table or result inline ([Show]); one call opens the model,
// the photograph or a digit ([Model], [Cat], [Digit]); one call runs the
// model ([Predict]); and one call puts an interactive explorer of a model
// in a cell ([Explore]):
//
//	m := nb.Model()
//	r := nb.Runner(m)
//	p := nb.Predict(r, nb.Input(m, nb.Cat()))[0]
//	nb.Show(display.TopKChart(p.Probs, m.Labels(), 5).Title("top-5 classes"))
//	nb.Explore(m)
//
// It is made for GoNB cells (github.com/janpfeifer/gonb, the Go kernel for
// Jupyter), where every cell is compiled and run as a program of its own:
// nothing here needs an earlier cell to have run, so any cell works first
// after a kernel restart. Its functions do not return errors: a failure
// stops the cell with one line, "convlens: <what went wrong>", on its
// output ([Check], [Must]).
//
// Charts are shown as a static picture that the interactive chart replaces
// where scripts run; echarts itself is sent once per kernel session, before
// the first chart (see display.EChartsScript and Chart.NotebookHTML), not
// once per chart.
//
// What a notebook teaches in one cell and uses again in later ones (a
// dense layer and a convolution, the steps of Grad-CAM by hand, the review
// of a lesion model) is here too, not in a cell, so that the later cells
// work on their own; the cell that teaches it shows its source ([Source]).
//
// Outside a notebook (tests, a plain program) nothing is displayed: Show
// prints the text form of what it is given, when it has one.
package nb

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/janpfeifer/gonb/gonbui"
)

// RootEnv names the environment variable holding the convlens checkout the
// notebooks run against; the kernel that `make notebook` installs sets it.
const RootEnv = "CONVLENS_ROOT"

// Check stops the cell if err is not nil, printing one line
// "convlens: <err>" on its standard error.
func Check(err error) {
	if err != nil {
		stop(err)
	}
}

// Must returns v, or stops the cell as Check does when err is not nil.
func Must[T any](v T, err error) T {
	Check(err)
	return v
}

// exit ends the cell's program; tests replace it.
var exit = func(code int) {
	gonbui.Sync() // what was displayed so far reaches the notebook
	os.Exit(code)
}

// stop reports err in one line and ends the cell.
func stop(err error) {
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintln(os.Stderr, "convlens: "+strings.ReplaceAll(msg, "\n", " "))
	exit(1)
}

var root struct {
	once sync.Once
	dir  string
}

// Root returns the convlens checkout the notebooks belong to: $CONVLENS_ROOT
// when it holds convlens, else the checkout this package was compiled from
// (notebooks import the library from their own checkout), else the parent
// of the notebook's folder ($GONB_DIR/..).
func Root() string {
	root.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		for _, dir := range []string{
			os.Getenv(RootEnv),
			filepath.Join(filepath.Dir(file), "..", ".."),
			filepath.Dir(os.Getenv("GONB_DIR")),
		} {
			if isCheckout(dir) {
				root.dir = filepath.Clean(dir)
				return
			}
		}
	})
	if root.dir == "" {
		stop(fmt.Errorf("cannot find the convlens checkout: set %s, or run Jupyter with `make notebook` in the checkout", RootEnv))
	}
	return root.dir
}

func isCheckout(dir string) bool {
	if dir == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && strings.Contains(string(b), "module github.com/convlens/convlens\n")
}

// Path joins elem onto the checkout's root: nb.Path("testdata", "images").
func Path(elem ...string) string {
	return filepath.Join(append([]string{Root()}, elem...)...)
}

// OutDirEnv names the environment variable that overrides where notebooks
// write their files (default: out/notebooks in the checkout).
const OutDirEnv = "CONVLENS_NOTEBOOK_OUT"

// Out returns the path of a file a notebook writes, name, in out/notebooks/
// of the checkout (ignored by git), or in $CONVLENS_NOTEBOOK_OUT; it
// creates the folder.
func Out(name string) string {
	dir := os.Getenv(OutDirEnv)
	if dir == "" {
		dir = Path("out", "notebooks")
	}
	Check(os.MkdirAll(dir, 0o755))
	return filepath.Join(dir, name)
}
