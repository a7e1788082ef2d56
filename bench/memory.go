package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/convlens/convlens/gradcam"
)

// The memory section (issue 13): peak RSS of the methods that run the model
// many times per image, each case in a fresh convlens worker, so that the
// peak (VmHWM, model loading included) is that one call's.
//
//   - ResNet-18 at batch 1: Integrated Gradients (32 steps), SmoothGrad (16
//     samples), Score-CAM at the last block (512 channels); target ≤ 1.0 GB;
//   - tinycnn (testdata/tinycnn, 3×64×64, its last block) at batch 64, every
//     method; target ≤ 1.0 GB;
//   - tinycnn at batch 192, the methods with many points per image: target,
//     to complete (before issue 13, Integrated Gradients ran out of memory).
//
// A missed target makes the bench fail. A worker whose RSS passes -mem-cap
// is killed, so that a regression cannot take the machine down, and its
// case fails.

const (
	memTarget   = 1.0e9 // bytes
	tinyModel   = "tinycnn"
	tinyLayer   = "layer2" // its last block, 32 channels at 8×8
	memPollTick = 20 * time.Millisecond
)

// memCase is one measurement: method at batch on model.
type memCase struct {
	model, method string
	batch         int
	completes     bool // the target is to complete, not ≤ memTarget
}

// memCases lists the section's cases; quick keeps the two the issue measured worst.
func memCases(quick bool) []memCase {
	if quick {
		return []memCase{
			{model: extrasModel, method: "integratedgradients", batch: 1},
			{model: tinyModel, method: "integratedgradients", batch: 64},
		}
	}
	cases := []memCase{
		{model: extrasModel, method: "integratedgradients", batch: 1},
		{model: extrasModel, method: "smoothgrad", batch: 1},
		{model: extrasModel, method: "scorecam", batch: 1},
	}
	for _, m := range gradcam.MethodNames() {
		cases = append(cases, memCase{model: tinyModel, method: m, batch: 64})
	}
	for _, m := range []string{"integratedgradients", "smoothgrad", "scorecam", "ablationcam"} {
		cases = append(cases, memCase{model: tinyModel, method: m, batch: 192, completes: true})
	}
	return cases
}

// memRow is a measured case.
type memRow struct {
	memCase
	seconds float64
	peak    int64
	err     error
}

// ok says whether the case met its target.
func (r memRow) ok() bool {
	if r.err != nil {
		return false
	}
	return r.completes || float64(r.peak) <= memTarget
}

// memFiles returns the model file, layer and input of a memory case's model.
func memFiles(cfg config, model string) (onnx, layer, input string, err error) {
	if model != tinyModel {
		layer, err = layerNode(cfg.dir, model, "last")
		return filepath.Join(cfg.dir, model+".onnx"), layer, filepath.Join(cfg.dir, model+".input.npy"), err
	}
	dir := filepath.Join(cfg.root, "testdata", tinyModel)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return "", "", "", err
	}
	var man struct {
		Layers map[string]struct {
			ONNXOutput string `json:"onnx_output"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		return "", "", "", fmt.Errorf("%s manifest: %w", tinyModel, err)
	}
	if layer = man.Layers[tinyLayer].ONNXOutput; layer == "" {
		return "", "", "", fmt.Errorf("%s manifest names no layer %q", tinyModel, tinyLayer)
	}
	return filepath.Join(dir, "model.onnx"), layer, filepath.Join(dir, "input.npy"), nil
}

// measureMemory runs every case in a fresh worker.
func measureMemory(cfg config, quick bool, echo io.Writer, logf func(string, ...any)) []memRow {
	var rows []memRow
	for _, c := range memCases(quick) {
		r := memRow{memCase: c}
		logf("memory: %s %s batch %d", c.model, c.method, c.batch)
		r.seconds, r.peak, r.err = measureCase(cfg, c, echo)
		if r.err != nil {
			logf("memory: %s %s batch %d: %v", c.model, c.method, c.batch, r.err)
		}
		rows = append(rows, r)
	}
	return rows
}

// measureCase runs one explain call in a fresh worker, watching its RSS.
func measureCase(cfg config, c memCase, echo io.Writer) (float64, int64, error) {
	onnx, layer, input, err := memFiles(cfg, c.model)
	if err != nil {
		return 0, 0, err
	}
	g, err := startGoFiles(cfg, c.model, onnx, layer, input, echo)
	if err != nil {
		return 0, 0, err
	}
	defer g.close()
	stop := make(chan struct{})
	var capped int64 // the RSS at which the watchdog killed the worker
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(memPollTick)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if rss, err := g.status("VmRSS"); err == nil && float64(rss) > cfg.memCap {
					capped = rss
					g.kill()
					return
				}
			}
		}
	}()
	secs, callErr := g.seconds("explain %s %d 1 %s", c.method, c.batch, pointsArg(cfg.points))
	var peak int64
	var peakErr error
	if callErr == nil {
		peak, peakErr = g.status("VmHWM")
	}
	close(stop)
	wg.Wait()
	switch {
	case capped > 0:
		return 0, capped, fmt.Errorf("killed at %s RSS, over -mem-cap %s", fmtBytes(capped), fmtBytes(int64(cfg.memCap)))
	case callErr != nil:
		return 0, 0, callErr
	}
	return secs, peak, peakErr
}

func pointsArg(p int) string {
	if p > 0 {
		return fmt.Sprint(p)
	}
	return ""
}

// writeMemory writes the section's table.
func writeMemory(w *strings.Builder, cfg config, rows []memRow) {
	points := fmt.Sprintf("the default, %d", gradcam.DefaultPointsPerCall)
	if cfg.points > 0 {
		points = fmt.Sprint(cfg.points)
	}
	fmt.Fprintf(w, "\nPeak RSS of the methods that run the model many times per image (issue 13): one call, top-1 class, default method settings, each in a fresh convlens worker; VmHWM, model loading included; points per call of the model (gradcam.Builder.PointsPerCall): %s.\n\n", points)
	w.WriteString("| model | method | batch | time | peak RSS | target |\n|---|---|---:|---:|---:|---|\n")
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | %s | %d | | failed: %s | missed |\n", r.model, r.method, r.batch,
				strings.ReplaceAll(oneLine(firstN(r.err.Error(), 200)), "|", "/"))
			continue
		}
		target := fmt.Sprintf("≤ %s: %s", fmtBytes(int64(memTarget)), verdict(r.ok()))
		if r.completes {
			target = "completes: met"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s |\n", r.model, r.method, r.batch, fmtSec(r.seconds), fmtBytes(r.peak), target)
	}
}
