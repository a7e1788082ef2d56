// Command convlens looks inside convolutional neural networks from the shell.
//
//	convlens demo --out DIR
//	convlens layers --model M.onnx
//	convlens train mnist|lesions [--shortcut]|cells [--grey] [--out DIR]
//	convlens eval mnist|lesions [--shortcut]|cells [--grey]
//	convlens eval --metric deletion|insertion|drop|road|sanity --method NAME --model M ...
//	convlens features --model M (--image IMG | --input X.npy) --layers A,B|all --out DIR [--top K]
//	convlens cam --model M.onnx (--image IMG | --input X.npy) --layer NAME[,NAME...]
//	             [--method gradcam] [--class N | --top K] [--raw]
//	             [--out-npy cam.npy] [--out-png overlay.png]
//
// Run `convlens help` or `convlens COMMAND -h` for details. Errors are one
// line on stderr and a non-zero exit status. A command's outputs are written
// together at its end or not at all: on an error, SIGINT or SIGTERM, no
// output is half-written, no existing one is replaced and no temporary file
// is left.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/backend"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/compute"
)

// command is one subcommand: its flags are parsed from args, output goes to stdout.
type command struct {
	name, usage string
	run         func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"demo", "the textbook walkthrough on the embedded models, offline: one HTML page and its pictures", runDemo},
	{"layers", "list a model's layers: name, op type, output shape", runLayers},
	{"cam", "compute class activation maps (Grad-CAM) for images", runCAM},
	{"eval", "a built-in model's accuracy and localisation (eval mnist|lesions|cells), or how faithful a method's maps are (eval --metric ...)", runEval},
	{"train", "retrain a built-in model from its seed and rewrite its weights", runTrain},
	{"features", "feature maps of layers: filter-grid PNGs and stats.json", runFeatures},
	{"report", "one-page-per-image HTML report of heat maps, for print and for readers who do not run code", runReport},
	{"audit", "explain a whole image archive into a Parquet file, resumably, with a cohort report (--runner prism|flink|dataflow: as an Apache Beam pipeline)", runAudit},
}

// usageError marks errors in the command line itself; they exit with status 2.
type usageError struct{ error }

func main() {
	discardOnSignal()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process's exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "convlens %s: %v (see `convlens %s -h`)\n", c.name, err, c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "convlens %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "convlens: unknown command %q (see `convlens help`)\n", args[0])
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "convlens: look inside convolutional neural networks\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
	fmt.Fprintf(w, "\nModels: a path to an .onnx file, or a built-in model: %s\n", strings.Join(embedded.EmbeddedNames(), ", "))
	fmt.Fprintln(w, "Backend: XLA when its plugin is installed or installable, else pure Go; $GOMLX_BACKEND overrides.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("convlens "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args into fs, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// openModel opens the --model argument.
func openModel(name string) (models.Model, error) {
	if name == "" {
		return nil, usageError{errors.New("--model is required: an .onnx file or a built-in model (" + strings.Join(embedded.EmbeddedNames(), ", ") + ")")}
	}
	return embedded.Open(name)
}

// openClassifier opens the --model argument for a command that explains
// class scores, refusing a model whose output has no classes before GoMLX
// fails on it deep inside a graph.
func openClassifier(name string) (models.Model, error) {
	m, err := openModel(name)
	if err != nil {
		return nil, err
	}
	if err := models.CheckClasses(m); err != nil {
		return nil, err
	}
	return m, nil
}

// backend picks the compute backend and says which on stderr.
func openBackend(stderr io.Writer) (compute.Backend, error) {
	b, note, err := backend.Default()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(stderr, note)
	return b, nil
}

func runLayers(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("layers", stderr)
	modelName := fs.String("model", "", "model: an .onnx file or a built-in model name")
	verbose := fs.Bool("v", false, "also say, on stderr, how the file was rewritten while loading (weights listed as inputs, Dropout, ceil-mode pools, a fixed batch...)")
	if err := parse(fs, args); err != nil {
		return err
	}
	m, err := openModel(*modelName)
	if err != nil {
		return err
	}
	if r, ok := m.(interface{ Rewrites() []string }); ok && *verbose {
		if len(r.Rewrites()) == 0 {
			fmt.Fprintln(stderr, "convlens: loaded as written, no rewrite needed")
		}
		for _, line := range r.Rewrites() {
			fmt.Fprintln(stderr, "convlens: rewritten while loading:", line)
		}
	}
	for _, l := range m.Layers() {
		fmt.Fprintln(stdout, l)
	}
	return nil
}
