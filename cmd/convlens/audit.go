package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/convlens/convlens/cmd/convlens/internal/audit"
	"github.com/convlens/convlens/gradcam"
	"github.com/convlens/convlens/internal/atomicfile"
)

// auditRunners are the values of `convlens audit --runner`.
var auditRunners = []string{"local", "prism", "flink", "dataflow"}

type auditFlags struct {
	model, images, masks, layer, method, metrics, runner, out, report string
	regions                                                           listFlag
	top, batch                                                        int
}

// runAudit explains every image of an archive into a Parquet file, one row
// per image, resumably; see package cmd/convlens/internal/audit.
//
//	convlens audit --model M --images DIR|LIST.csv [--masks DIR] [--regions NAME=DIR,...]
//	               [--layer L] [--method gradcam] [--top K] [--metrics road,drop] [--batch N]
//	               [--runner local|prism|flink|dataflow] --out RESULTS.parquet [--report REPORT.html]
//	               [-- BEAM-OPTIONS...]
func runAudit(args []string, stdout, stderr io.Writer) error {
	var beamArgs []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, beamArgs = args[:i], args[i+1:]
	}
	fs := newFlags("audit", stderr)
	var f auditFlags
	fs.StringVar(&f.model, "model", "", "model: an .onnx file or a built-in model name")
	fs.StringVar(&f.images, "images", "", "the archive: a folder (read recursively for PNG and JPEG; an image's id is its relative path) or a CSV with columns id,path[,label][,mask]")
	fs.StringVar(&f.masks, "masks", "", "folder of ground-truth masks at the images' relative paths, as PNG (non-zero = inside)")
	fs.Var(&f.regions, "regions", "named artefact regions, NAME=DIR, comma-separated (e.g. ruler=rulers/), laid out as --masks")
	fs.StringVar(&f.layer, "layer", "", "layer: a node output or a PyTorch module path (default: the last layer with spatial axes)")
	fs.StringVar(&f.method, "method", "gradcam", "method: "+joinComma(gradcam.MethodNames()))
	fs.IntVar(&f.top, "top", 5, "classes listed per image, best first")
	fs.StringVar(&f.metrics, "metrics", "", "faithfulness metrics per image, comma-separated: "+joinComma(audit.Metrics))
	fs.IntVar(&f.batch, "batch", 32, "images per call of the model")
	fs.StringVar(&f.runner, "runner", "local", "engine: local (this process) or an Apache Beam runner: prism (in this process), flink, dataflow; Beam's own options follow a --")
	fs.StringVar(&f.out, "out", "", "results: a Parquet file, one row per image, appended to as the run goes (an existing one is resumed)")
	fs.StringVar(&f.report, "report", "", "also write the cohort report: one self-contained HTML file (and REPORT-cases.html, the worst cases' pages)")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, src, err := f.check()
	if err != nil {
		return err
	}
	if f.runner == "local" && len(beamArgs) > 0 {
		return usageError{errors.New("options after -- are Beam's: give --runner prism, flink or dataflow")}
	}
	m, err := openModel(f.model)
	if err != nil {
		return err
	}
	src.Labels = m.Labels()
	sum, sumOf := weightsChecksum(m)
	if sum == "" {
		return fmt.Errorf("the model has no checksum (%s), and an audit's rows must say which weights made them", sumOf)
	}
	s.ModelSHA256 = sum
	b, err := openBackend(stderr)
	if err != nil {
		return err
	}
	ctx := context.Background()
	var res audit.Summary
	if f.runner == "local" {
		e, err := audit.NewExplainer(b, m, s)
		if err != nil {
			return err
		}
		defer e.Close()
		noteLayer(stderr, f.layer, e.Layer())
		res, err = audit.Run(ctx, e, audit.Options{Source: src, Out: f.out, Progress: stderr})
		if err != nil {
			return err
		}
	} else {
		if res, err = runBeamAudit(ctx, f.runner, f.model, b, m, s, src, f.out, beamArgs, stderr); err != nil {
			return err
		}
	}
	rate := float64(res.Written) / max(res.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(stdout, "wrote %s: %d image(s) explained (%d error row(s)), %d already there, in %s (%.1f images/s)\n",
		f.out, res.Written, res.Errors, res.Skipped, res.Elapsed.Round(time.Millisecond), rate)
	if res.Duplicates > 0 {
		fmt.Fprintf(stdout, "%d image(s) listed more than once were explained once\n", res.Duplicates)
	}
	if f.report == "" {
		return nil
	}
	info := audit.ReportInfo{Model: m.Name(), Checksum: sum, ChecksumOf: sumOf, Labels: m.Labels(), Images: f.images, Date: time.Now()}
	out := stageOutputs()
	defer out.Discard()
	pages, err := audit.WriteReport(out, f.out, f.report, info)
	if err != nil {
		return err
	}
	if err := out.Commit(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (%d case page(s))\n", f.report, audit.CasesPath(f.report), pages)
	return nil
}

// noteLayer says on stderr which layer was chosen or what a module path names.
func noteLayer(stderr io.Writer, given, used string) {
	switch {
	case given == "" && used != "":
		noteDefaultLayer(stderr, used)
	case given != "" && given != used:
		fmt.Fprintf(stderr, "convlens: --layer %s is the output of its last node, %s\n", given, used)
	}
}

// check validates the flags that need no model.
func (f *auditFlags) check() (audit.Settings, audit.Source, error) {
	var s audit.Settings
	var src audit.Source
	switch {
	case f.images == "":
		return s, src, usageError{errors.New("--images DIR or LIST.csv is required")}
	case f.out == "":
		return s, src, usageError{errors.New("--out RESULTS.parquet is required")}
	case !slices.Contains(auditRunners, f.runner):
		return s, src, usageError{fmt.Errorf("unknown --runner %q; available: %s", f.runner, joinComma(auditRunners))}
	case gradcam.Methods[f.method] == nil:
		return s, src, usageError{fmt.Errorf("unknown --method %q; available: %s", f.method, joinComma(gradcam.MethodNames()))}
	case f.top < 1:
		return s, src, usageError{fmt.Errorf("--top %d: K must be at least 1", f.top)}
	case f.batch < 1:
		return s, src, usageError{fmt.Errorf("--batch %d: N must be at least 1", f.batch)}
	case f.report != "" && atomicfile.Same(f.report, f.out):
		return s, src, usageError{fmt.Errorf("--report %s and --out %s are the same file", f.report, f.out)}
	case f.report != "" && !strings.EqualFold(filepath.Ext(f.report), ".html") && !strings.EqualFold(filepath.Ext(f.report), ".htm"):
		return s, src, usageError{fmt.Errorf("--report %s: give an .html file", f.report)}
	}
	var metrics []string
	if f.metrics != "" {
		metrics = strings.Split(f.metrics, ",")
		for i := range metrics {
			metrics[i] = strings.TrimSpace(metrics[i])
		}
	}
	metrics, err := audit.ParseMetrics(metrics)
	if err != nil {
		return s, src, usageError{fmt.Errorf("--metrics: %w", err)}
	}
	regions, err := audit.ParseRegions(f.regions)
	if err != nil {
		return s, src, usageError{fmt.Errorf("--regions: %w", err)}
	}
	for _, dir := range append([]string{f.masks}, regionDirs(regions)...) {
		if dir == "" {
			continue
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return s, src, usageError{fmt.Errorf("mask folder %s: not a folder", dir)}
		}
	}
	src = audit.Source{Images: f.images, Masks: f.masks, Regions: regions}
	s = audit.Settings{Method: f.method, Layer: f.layer, Top: f.top, Metrics: metrics, Regions: regions,
		Masks: src.HasMasks(), Batch: f.batch}
	return s, src, nil
}

func regionDirs(rs []audit.NamedDir) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Dir)
	}
	return out
}
