package main

// `convlens audit --runner prism|flink|dataflow`: the audit as an Apache
// Beam pipeline (package beamaudit). Beam doubles the binary (53 -> 114 MB)
// and adds a minute or two to a cold build; the exact command-line
// interface the audit promises is worth it.

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/convlens/convlens/cmd/convlens/internal/audit"
	"github.com/convlens/convlens/cmd/convlens/internal/audit/beamaudit"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute"
)

func init() {
	// A portable runner (Flink, Dataflow) starts this binary as its Go SDK
	// worker: `convlens --worker --id=... --control_endpoint=...`. Beam's
	// harness then runs here and exits; convlens's commands do not run.
	if len(os.Args) > 1 && slices.ContainsFunc(os.Args[1:], func(a string) bool {
		return a == "--worker" || a == "-worker" || strings.HasPrefix(a, "--worker=") || strings.HasPrefix(a, "-worker=")
	}) {
		flag.Parse()
		beam.Init()
		os.Exit(0)
	}
}

// runBeamAudit runs the audit on a Beam runner. rest are Beam's pipeline
// options (the arguments after --), parsed by Beam's own flags.
func runBeamAudit(ctx context.Context, runner, modelArg string, b compute.Backend, m models.Model, s audit.Settings, src audit.Source, out string, rest []string, stderr io.Writer) (audit.Summary, error) {
	if err := flag.CommandLine.Parse(rest); err != nil {
		return audit.Summary{}, usageError{err}
	}
	if flag.NArg() > 0 {
		return audit.Summary{}, usageError{errors.New("unexpected Beam argument " + flag.Arg(0))}
	}
	e, err := audit.NewExplainer(b, m, s)
	if err != nil {
		return audit.Summary{}, err
	}
	noteLayer(stderr, s.Layer, e.Layer())
	job := beamaudit.Job{Model: modelArg, Settings: e.Settings(), Identity: e.Identity(), Source: src, Out: out,
		Shards: runtime.GOMAXPROCS(0)}
	job.Settings.Layer = e.Layer()
	e.Close()
	if runner != "prism" {
		// Many workers: enough shards to spread the archive over them.
		job.Shards = max(job.Shards, 256)
	}
	slog.SetLogLoggerLevel(slog.LevelWarn) // Prism's job log is for Beam's developers
	return beamaudit.Run(ctx, runner, job, stderr)
}
