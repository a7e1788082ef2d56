package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/convlens/convlens/internal/training"
	"github.com/convlens/convlens/models"
)

// runTrain retrains a built-in model from its seed and rewrites its weights.
func runTrain(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != models.MNISTName {
		return usageError{fmt.Errorf("name the model to train: convlens train %s [--out DIR]", models.MNISTName)}
	}
	fs := newFlags("train "+args[0], stderr)
	out := fs.String("out", models.MNISTWeightsDir, "folder for the weights (the embedded ones, from the repository root, by default)")
	epochs := fs.Int("epochs", training.DefaultMNISTConfig().Epochs, "passes over the 8,000 training digits")
	seed := fs.Int64("seed", training.DefaultMNISTConfig().Seed, "seed for initialisation, shuffling and augmentation")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *epochs < 1 {
		return usageError{errors.New("--epochs must be at least 1")}
	}
	b, err := backend(stderr)
	if err != nil {
		return err
	}
	cfg := training.DefaultMNISTConfig()
	cfg.Epochs, cfg.Seed, cfg.Backend = *epochs, *seed, b
	cfg.Progress = func(p training.MNISTProgress) {
		if p.Step%125 == 0 || p.Done {
			fmt.Fprintf(stderr, "epoch %d/%d step %d/%d loss %.4f (%v)\n", p.Epoch, p.Epochs, p.Step, p.Steps, p.Loss, p.Elapsed.Round(1e9))
		}
	}
	rep, err := training.TrainMNIST(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep)
	if err := models.SaveMNISTWeights(rep.Store, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "weights written to %s (rebuild to embed them)\n", *out)
	return nil
}
