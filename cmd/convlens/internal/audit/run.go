package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"
)

// Options configure [Run].
type Options struct {
	// Source lists the images.
	Source Source
	// Out is the results file: created, or appended to (resumed).
	Out string
	// Progress receives the progress line (nil: none).
	Progress io.Writer
	// MinRowGroup is the fewest rows a row group holds before the run
	// flushes for size (default 64); see [FlushPolicy].
	MinRowGroup int
}

// Summary is what a run did.
type Summary struct {
	// Skipped were already in the file; Written were explained now, of
	// which Errors are error rows; Duplicates were listed more than once.
	Skipped, Written, Errors, Duplicates int
	// Elapsed is the run's time.
	Elapsed time.Duration
}

// FlushPolicy decides when the rows gathered become a row group: when
// they are at least a sixteenth of the rows in the file (and at least
// MinRows, at most 8192), or when the last flush is older than a tenth of
// the run's time so far (at least 2 s, at most 5 min). Row groups thus grow
// with the file, which keeps the unreferenced footers few (see [Appender]),
// and a stop loses at most a few minutes of work.
type FlushPolicy struct {
	MinRows int
	start   time.Time
	last    time.Time
}

// Due reports whether pending rows should be flushed now, into a file of written rows.
func (p *FlushPolicy) Due(pending, written int, now time.Time) bool {
	if p.start.IsZero() {
		p.start, p.last = now, now
	}
	if pending == 0 {
		return false
	}
	minRows := p.MinRows
	if minRows <= 0 {
		minRows = 64
	}
	if pending >= min(max(written/16, minRows), 8192) {
		return true
	}
	interval := min(max(now.Sub(p.start)/10, 2*time.Second), 5*time.Minute)
	return now.Sub(p.last) >= interval
}

// Flushed records a flush.
func (p *FlushPolicy) Flushed(now time.Time) { p.last = now }

// idKey is the set key of an id: its SHA-256, truncated to 16 bytes.
type idKey [16]byte

func keyOf(id string) idKey {
	h := sha256.Sum256([]byte(id))
	return idKey(h[:16])
}

// Run audits the archive with the single-process engine: it skips the
// images the results file already holds, explains the others a batch at a
// time in listing order, and appends their rows as it goes. Memory: the
// model, one batch of images, one row group of rows, and a set of the ids
// done (16 bytes and a map entry each). ctx stops it between batches; what
// was flushed stays.
func Run(ctx context.Context, e *Explainer, opt Options) (Summary, error) {
	start := time.Now()
	var sum Summary
	app, err := OpenAppender(opt.Out, e.Identity())
	if err != nil {
		return sum, err
	}
	defer app.Close()
	done, err := doneSet(opt.Out)
	if err != nil {
		return sum, err
	}
	// Count what is left, for the progress line.
	total := 0
	if err := opt.Source.Walk(func(r Record) error {
		if done[keyOf(r.ID)] {
			sum.Skipped++
		} else {
			total++
		}
		return nil
	}); err != nil {
		return sum, err
	}
	prog := newProgress(opt.Progress, total, sum.Skipped)
	policy := FlushPolicy{MinRows: opt.MinRowGroup}
	var pending []Row
	flush := func() error {
		if err := app.Append(pending); err != nil {
			return err
		}
		pending = pending[:0]
		policy.Flushed(time.Now())
		return nil
	}
	// One goroutine lists and reads the images, a batch ahead of the one
	// that explains them.
	loadedCh := make(chan Loaded, 1)
	stop := make(chan struct{})
	var walkErr error
	go func() {
		defer close(loadedCh)
		batch := make([]Record, 0, e.s.Batch)
		send := func() bool {
			select {
			case loadedCh <- e.Load(batch):
				batch = make([]Record, 0, e.s.Batch)
				return true
			case <-stop:
				return false
			}
		}
		walkErr = opt.Source.Walk(func(r Record) error {
			k := keyOf(r.ID)
			if fromFile, ok := done[k]; ok {
				if !fromFile {
					sum.Duplicates++
				}
				return nil
			}
			done[k] = false
			batch = append(batch, r)
			if len(batch) == e.s.Batch && !send() {
				return errStop
			}
			return nil
		})
		if walkErr == nil && len(batch) > 0 {
			send()
		}
	}()
	for items := range loadedCh {
		if err = ctx.Err(); err != nil {
			break
		}
		for _, row := range e.ExplainLoaded(items) {
			if row.Error != nil {
				sum.Errors++
			}
			pending = append(pending, row)
		}
		sum.Written += len(items)
		prog.update(sum.Written, sum.Errors)
		if policy.Due(len(pending), int(app.Rows()), time.Now()) {
			if err = flush(); err != nil {
				break
			}
		}
	}
	close(stop)
	for range loadedCh {
	}
	if err == nil && walkErr != nil && !errors.Is(walkErr, errStop) {
		err = walkErr
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	if cerr := app.Close(); err == nil {
		err = cerr
	}
	sum.Elapsed = time.Since(start)
	prog.finish(sum.Written, sum.Errors)
	return sum, err
}

// doneSet is the set of ids a results file holds.
// Its values are true; ids explained by this run are added as false.
func doneSet(path string) (map[idKey]bool, error) {
	ids, err := ReadIDs(path)
	if err != nil {
		return nil, err
	}
	done := make(map[idKey]bool, len(ids))
	for _, id := range ids {
		done[keyOf(id)] = true
	}
	return done, nil
}

// progress draws one line on stderr: images done, images/s, time left.
type progress struct {
	w            io.Writer
	total, skip  int
	start, drawn time.Time
}

func newProgress(w io.Writer, total, skipped int) *progress {
	p := &progress{w: w, total: total, skip: skipped, start: time.Now()}
	if w != nil && skipped > 0 {
		fmt.Fprintf(w, "audit: %d image(s) already in the results file, skipped\n", skipped)
	}
	return p
}

func (p *progress) update(done, errs int) {
	if p.w == nil || time.Since(p.drawn) < 500*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	p.draw(done, errs, "\r")
}

func (p *progress) draw(done, errs int, end string) {
	el := time.Since(p.start).Seconds()
	rate := float64(done) / max(el, 1e-9)
	left := "?"
	if rate > 0 {
		left = time.Duration(float64(max(p.total-done, 0)) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\raudit: %d/%d images, %d error(s), %.1f images/s, %s left   %s", done, p.total, errs, rate, left, end)
}

func (p *progress) finish(done, errs int) {
	if p.w != nil {
		p.draw(done, errs, "\n")
	}
}
