package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/convlens/convlens/cmd/convlens/internal/training"
	"github.com/convlens/convlens/models/embedded"
)

// trainables are the datasets `convlens train` knows.
var trainables = []string{embedded.MNISTName, "lesions", "cells"}

// runTrain retrains a built-in model from its seed and rewrites its weights.
//
//	convlens train mnist [--out DIR] [--epochs N] [--seed S]
//	convlens train lesions [--shortcut] [--out DIR] [--epochs N] [--seed S]
//	convlens train cells [--grey] [--out DIR] [--epochs N] [--seed S]
func runTrain(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{fmt.Errorf("name the model to train: convlens train %s [--out DIR]", strings.Join(trainables, "|"))}
	}
	switch args[0] {
	case embedded.MNISTName:
		return trainMNIST(args, stdout, stderr)
	case "lesions", "cells":
		return trainImages(args, stdout, stderr)
	}
	return usageError{fmt.Errorf("unknown model %q; models that can be trained: %s", args[0], strings.Join(trainables, ", "))}
}

func trainMNIST(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train "+args[0], stderr)
	out := fs.String("out", embedded.MNISTWeightsDir, "folder for the weights (the embedded ones, from the repository root, by default)")
	epochs := fs.Int("epochs", training.DefaultMNISTConfig().Epochs, "passes over the 8,000 training digits")
	seed := fs.Int64("seed", training.DefaultMNISTConfig().Seed, "seed for initialisation, shuffling and augmentation")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *epochs < 1 {
		return usageError{errors.New("--epochs must be at least 1")}
	}
	if err := checkWeightsDir(*out); err != nil {
		return err
	}
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	cfg := training.DefaultMNISTConfig()
	cfg.Epochs, cfg.Seed, cfg.Backend = *epochs, *seed, b
	cfg.Progress = trainProgress(stderr, 125)
	rep, err := training.TrainMNIST(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep)
	if err := embedded.SaveMNISTWeights(rep.Store, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "weights written to %s (rebuild to embed them)\n", *out)
	return nil
}

// trainImages trains the lesion or cell models, on generated images.
func trainImages(args []string, stdout, stderr io.Writer) error {
	name := args[0]
	fs := newFlags("train "+name, stderr)
	var shortcut, grey *bool
	if name == "lesions" {
		shortcut = fs.Bool("shortcut", false, "train the shortcut model: a ruler on every suspicious lesion and none on benign ones")
	} else {
		grey = fs.Bool("grey", false, "train the grey model, which sees the images greyed out")
	}
	out := fs.String("out", "", "folder for the weights (default: the embedded ones', from the repository root)")
	epochs := fs.Int("epochs", 0, "passes over the training images (default: the embedded weights' setting)")
	seed := fs.Int64("seed", 0, "seed for the images, initialisation, shuffling and augmentation (default: the embedded weights')")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *epochs < 0 {
		return usageError{errors.New("--epochs must be at least 1")}
	}
	var (
		train func(training.ImageConfig) (*training.Report, error)
		save  func(*training.Report, string) error
		cfg   training.ImageConfig
		dir   string
	)
	switch {
	case shortcut != nil:
		c := training.DefaultLesionsConfig(*shortcut)
		cfg, dir = c.ImageConfig, embedded.LesionsWeightsDir
		if *shortcut {
			dir = embedded.LesionsShortcutWeightsDir
		}
		train = func(ic training.ImageConfig) (*training.Report, error) {
			c.ImageConfig = ic
			return training.TrainLesions(c)
		}
		save = func(r *training.Report, dir string) error { return embedded.SaveLesionsWeights(r.Store, dir) }
	default:
		c := training.DefaultCellsConfig(*grey)
		cfg, dir = c.ImageConfig, embedded.CellsWeightsDir
		save = func(r *training.Report, dir string) error { return embedded.SaveCellsWeights(r.Store, dir) }
		if *grey {
			dir = embedded.CellsGreyWeightsDir
			save = func(r *training.Report, dir string) error { return embedded.SaveCellsGreyWeights(r.Store, dir) }
		}
		train = func(ic training.ImageConfig) (*training.Report, error) {
			c.ImageConfig = ic
			return training.TrainCells(c)
		}
	}
	if *out != "" {
		dir = *out
	}
	if *epochs > 0 {
		cfg.Epochs = *epochs
	}
	if *seed != 0 {
		cfg.Seed = *seed
	}
	if err := checkWeightsDir(dir); err != nil {
		return err
	}
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	cfg.Backend = b
	cfg.Progress = trainProgress(stderr, 25)
	rep, err := train(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep)
	if err := save(rep, dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "weights written to %s (rebuild to embed them)\n", dir)
	return nil
}

// checkWeightsDir fails before training, not after it, when the weights
// could not be saved in dir: saving replaces the folder whole with one made
// beside it, so dir must be a folder or not exist, and the nearest folder
// above it that exists must take new entries, which a probe tries.
func checkWeightsDir(dir string) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("--out %s is a file, not a folder for the weights", dir)
	}
	parent := filepath.Dir(dir)
	for {
		if _, err := os.Stat(parent); err == nil || filepath.Dir(parent) == parent {
			break
		}
		parent = filepath.Dir(parent)
	}
	probe, err := os.MkdirTemp(parent, ".convlens-check-")
	if err != nil {
		return fmt.Errorf("--out %s: the weights could not be saved there: %w", dir, err)
	}
	return os.Remove(probe)
}

// trainProgress reports every `every` steps, and the end, on w.
func trainProgress(w io.Writer, every int) func(training.Progress) {
	return func(p training.Progress) {
		if p.Step%every == 0 || p.Done {
			fmt.Fprintf(w, "epoch %d/%d step %d/%d loss %.4f (%v)\n", p.Epoch, p.Epochs, p.Step, p.Steps, p.Loss, p.Elapsed.Round(1e9))
		}
	}
}
