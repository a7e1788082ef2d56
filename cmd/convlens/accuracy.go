package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
)

// runAccuracy measures a built-in model on its held-out data and prints one
// "name: value" line per figure (see package cmd/convlens/internal/evaluation):
//
//	convlens eval mnist                 accuracy
//	convlens eval lesions [--images N]  accuracy, pointing_game, energy_in_mask, energy_on_ruler
//	convlens eval lesions --shortcut    accuracy (with the ruler correlation), accuracy_uncorrelated,
//	                                    accuracy_reversed, energy_on_ruler, energy_in_mask, pointing_game
//	convlens eval cells [--grey]        accuracy
//
// `convlens eval` dispatches here when its first argument is not a flag.
func runAccuracy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{fmt.Errorf("name a dataset: convlens eval %s [--grey] [--shortcut]", strings.Join(evaluation.Datasets, "|"))}
	}
	name := args[0]
	if !slices.Contains(evaluation.Datasets, name) {
		return usageError{fmt.Errorf("unknown dataset %q; known datasets: %s", name, strings.Join(evaluation.Datasets, ", "))}
	}
	fs := newFlags("eval "+name, stderr)
	var opt evaluation.Options
	if name == "cells" {
		fs.BoolVar(&opt.Grey, "grey", false, "evaluate the model trained on greyed-out images")
	}
	if name == "lesions" {
		fs.BoolVar(&opt.Shortcut, "shortcut", false, "evaluate the shortcut model, with and without the ruler correlation")
	}
	if name != "mnist" {
		fs.IntVar(&opt.Images, "images", 0, fmt.Sprintf("held-out images (default %d for lesions, %d for cells)",
			evaluation.DefaultLesionImages, evaluation.DefaultCellImages))
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if opt.Images < 0 {
		return usageError{fmt.Errorf("--images %d: give a positive number", opt.Images)}
	}
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	opt.Backend = b
	figs, err := evaluation.Run(name, opt)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, figs)
	return nil
}
