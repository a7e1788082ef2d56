// Package beamaudit runs an audit (package audit) as an Apache Beam
// pipeline, for archives larger than one machine explains in the time
// wanted. It is its own package so that the single-process engine does
// not depend on Beam.
//
// The pipeline:
//
//	records (listed by the launcher, those already in the results file left out)
//	  → keyed by shard (record i → shard i mod Shards) → GroupByKey
//	  → explain: a DoFn that opens the model and compiles its graphs once per
//	    instance (Setup) and turns each shard's records into rows, a batch
//	    at a time, with audit.Explainer, the code the local engine runs
//	  → one key → GroupByKey → sink: a DoFn that appends the rows to the
//	    results file in row groups (audit.Appender, audit.FlushPolicy)
//
// so the rows are those of the single-process command, image by image;
// only their order in the file may differ. The shards are what runs in
// parallel: Prism splits the shards' bundle as soon as it sees no progress
// and runs the parts at once, so Shards is the number of images explained
// at the same time.
//
// Workers open the model by the name or path the launcher was given, and
// read the images, the masks and the results file by their paths: on
// Flink or Dataflow these must be on a file system every worker sees.
package beamaudit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/convlens/convlens/cmd/convlens/internal/audit"
	"github.com/convlens/convlens/models/backend"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/compute"

	// Runners: Prism in this process, and the portable runners.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/dataflow"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/flink"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*audit.Row)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*audit.Record)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*Keyed)(nil)).Elem())
	register.Function1x2(shardOf)
	register.DoFn4x1[context.Context, int, func(*audit.Record) bool, func(audit.Row), error](&explainFn{})
	register.DoFn4x1[context.Context, int, func(*audit.Row) bool, func(int), error](&sinkFn{})
	register.Iter1[audit.Record]()
	register.Iter1[audit.Row]()
	register.Emitter1[audit.Row]()
	register.Emitter1[int]()
}

// Keyed is a record with its shard.
type Keyed struct {
	Shard  int
	Record audit.Record
}

func shardOf(k Keyed) (int, audit.Record) { return k.Shard, k.Record }

// Job is one audit to run as a pipeline.
type Job struct {
	// Model is the --model argument: a built-in model's name or an ONNX file.
	Model string
	// Settings are the explainer's, Layer resolved to its node; Identity
	// the results' (see audit.Explainer.Identity).
	Settings audit.Settings
	Identity audit.Identity
	// Source lists the images; Out is the results file.
	Source audit.Source
	Out    string
	// Shards is how many parts the records are split into: the images
	// explained at the same time.
	Shards int
	// MinRowGroup is the sink's audit.FlushPolicy.MinRows.
	MinRowGroup int
}

// progress counts the images explained in this process, for the launcher's
// progress line when the runner runs the workers here (Prism).
var progress atomic.Int64

// running and mostRunning count the shards being explained in this
// process at once, and the most at any time (for the tests).
var running, mostRunning atomic.Int64

// Run runs the job on the named runner (beam.Run) and returns what it did.
// Progress, when not nil, gets a progress line while the workers run in
// this process.
func Run(ctx context.Context, runner string, job Job, out io.Writer) (audit.Summary, error) {
	start := time.Now()
	var sum audit.Summary
	if job.Shards < 1 {
		job.Shards = 1
	}
	// Create the file, or check that it is one of these settings.
	app, err := audit.OpenAppender(job.Out, job.Identity)
	if err != nil {
		return sum, err
	}
	if err := app.Close(); err != nil {
		return sum, err
	}
	doneIDs, err := audit.ReadIDs(job.Out)
	if err != nil {
		return sum, err
	}
	seen := make(map[string]bool, len(doneIDs))
	for _, id := range doneIDs {
		seen[id] = true
	}
	var recs []Keyed
	if err := job.Source.Walk(func(r audit.Record) error {
		switch fromFile, ok := seen[r.ID]; {
		case ok && fromFile:
			sum.Skipped++
		case ok:
			sum.Duplicates++
		default:
			seen[r.ID] = false
			recs = append(recs, Keyed{Shard: len(recs) % job.Shards, Record: r})
		}
		return nil
	}); err != nil {
		return sum, err
	}
	if len(recs) == 0 {
		sum.Elapsed = time.Since(start)
		return sum, nil
	}
	beamInit.Do(beam.Init)
	p, s := beam.NewPipelineWithRoot()
	keyed := beam.ParDo(s, shardOf, beam.CreateList(s, recs))
	rows := beam.ParDo(s, &explainFn{Model: job.Model, Settings: job.Settings}, beam.GroupByKey(s, keyed))
	beam.ParDo(s, &sinkFn{Out: job.Out, Identity: job.Identity, MinRowGroup: job.MinRowGroup},
		beam.GroupByKey(s, beam.AddFixedKey(s, rows)))

	progress.Store(0)
	stopProgress := showProgress(out, len(recs), sum.Skipped)
	_, err = beam.Run(ctx, runner, p)
	stopProgress()
	if err != nil {
		return sum, fmt.Errorf("running the pipeline on %s: %w", runner, err)
	}
	// What the run added: the rows of the ids it was given.
	if err := audit.ReadRows(job.Out, func(r audit.Row) error {
		if seen[r.ID] {
			return nil
		}
		sum.Written++
		if !r.OK() {
			sum.Errors++
		}
		return nil
	}); err != nil {
		return sum, err
	}
	if sum.Written != len(recs) {
		return sum, fmt.Errorf("the pipeline wrote %d rows for %d images", sum.Written, len(recs))
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

var beamInit sync.Once

// showProgress draws the progress line until the returned function is called.
func showProgress(w io.Writer, total, skipped int) func() {
	if w == nil {
		return func() {}
	}
	if skipped > 0 {
		fmt.Fprintf(w, "audit: %d image(s) already in the results file, skipped\n", skipped)
	}
	start := time.Now()
	draw := func(end string) {
		done := int(progress.Load())
		rate := float64(done) / max(time.Since(start).Seconds(), 1e-9)
		left := "?"
		if rate > 0 {
			left = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(w, "\raudit (beam): %d/%d images, %.1f images/s, %s left   %s", done, total, rate, left, end)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw("")
			case <-stop:
				draw("\n")
				return
			}
		}
	}()
	return func() { close(stop); <-stopped }
}

// sharedBackend is this process's compute backend, shared by the DoFn
// instances (one per bundle the runner runs at once).
var sharedBackend struct {
	once sync.Once
	b    compute.Backend
	err  error
}

func workerBackend() (compute.Backend, error) {
	sharedBackend.once.Do(func() {
		sharedBackend.b, _, sharedBackend.err = backend.Default()
	})
	return sharedBackend.b, sharedBackend.err
}

// explainFn explains a shard's records.
type explainFn struct {
	Model    string
	Settings audit.Settings

	e *audit.Explainer
}

// Setup opens the model and prepares its explanations, once per instance.
func (f *explainFn) Setup() error {
	b, err := workerBackend()
	if err != nil {
		return err
	}
	m, err := embedded.Open(f.Model)
	if err != nil {
		return err
	}
	f.e, err = audit.NewExplainer(b, m, f.Settings)
	return err
}

// Teardown frees the compiled graphs.
func (f *explainFn) Teardown() {
	if f.e != nil {
		f.e.Close()
	}
}

// ProcessElement explains one shard, a batch at a time.
func (f *explainFn) ProcessElement(ctx context.Context, _ int, recs func(*audit.Record) bool, emit func(audit.Row)) error {
	n := running.Add(1)
	defer running.Add(-1)
	for m := mostRunning.Load(); n > m && !mostRunning.CompareAndSwap(m, n); m = mostRunning.Load() {
	}
	batch := f.e.Settings().Batch
	var buf []audit.Record
	run := func() {
		for _, row := range f.e.Explain(buf) {
			emit(row)
		}
		progress.Add(int64(len(buf)))
		buf = buf[:0]
	}
	var r audit.Record
	for recs(&r) {
		buf = append(buf, r)
		if len(buf) == batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			run()
		}
	}
	if len(buf) > 0 {
		run()
	}
	return nil
}

// sinkFn appends every row to the results file.
type sinkFn struct {
	Out         string
	Identity    audit.Identity
	MinRowGroup int
}

// ProcessElement writes the rows in row groups and emits how many.
func (f *sinkFn) ProcessElement(_ context.Context, _ int, rows func(*audit.Row) bool, emit func(int)) error {
	app, err := audit.OpenAppender(f.Out, f.Identity)
	if err != nil {
		return err
	}
	policy := audit.FlushPolicy{MinRows: f.MinRowGroup}
	var pending []audit.Row
	n := 0
	var r audit.Row
	for rows(&r) {
		pending = append(pending, r)
		n++
		if policy.Due(len(pending), int(app.Rows()), time.Now()) {
			if err := app.Append(pending); err != nil {
				return errors.Join(err, app.Close())
			}
			policy.Flushed(time.Now())
			pending = pending[:0]
		}
		r = audit.Row{}
	}
	if err := app.Append(pending); err != nil {
		return errors.Join(err, app.Close())
	}
	if err := app.Close(); err != nil {
		return err
	}
	emit(n)
	return nil
}
