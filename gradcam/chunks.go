package gradcam

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/convlens/convlens/internal/parallel"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// The methods that run the model many times per image (the perturbation
// methods once per channel, Integrated Gradients once per step, SmoothGrad
// once per sample) evaluate those points in calls of the model of at most
// [Builder.PointsPerCall] points: a chunk of the points of each image of a
// group of images. Memory then depends on the points per call, not on the
// points per image times the batch. All of them go through pointPlan.run.
// The groups are cut there, with [models.SplitBatch], rather than by
// explaining parts of the batch apart ([CAM.explainParts], for models
// whose file fixes the batch), because SmoothGrad's noise and the progress
// reports count over the whole batch.

// pointPlan splits the points of a batch into calls of the model.
type pointPlan struct {
	n, points int // images, and points of each image
	per       int // points of each image in one call
	group     int // images in one call (the last group may be smaller)
	// atOnce is how many calls run side by side (fastconv.CallsAtOnce); more than
	// one only for evals that write apart, each its own points from skip on.
	atOnce int
}

// plan returns the plan for n images of points points each. A model whose
// file fixes the batch (which Explain gives exactly that batch) computes
// one point of every image per call, the batch it takes.
func (c *CAM) plan(n, points int) pointPlan {
	if c.runner.Model().Input().Batch > 0 {
		return pointPlan{n: n, points: points, per: 1, group: n}
	}
	per := min(c.maxPoints, points)
	return pointPlan{n: n, points: points, per: per, group: min(n, max(1, c.maxPoints/per))}
}

// run calls eval once per call of the model: for each chunk of per points,
// p to p+per−1, and within it for each group of images, the images from
// first on, with the group's slices of batch (tensors [n,...] such as the
// input and the classes). The last chunk of points ends at the last point
// and overlaps the one before it, so that every call has the same shape and
// shares one compiled graph: its first skip points were evaluated before.
// Up to atOnce calls run side by side, in waves, if the second call (the
// first may compile the graph) took at least sideBySideMin. progress, if
// not nil, gets after each chunk of points how many points of all the
// images have been evaluated.
func (pl pointPlan) run(batch []*tensors.Tensor, eval func(p, skip, first int, group []*tensors.Tensor) error, progress func(done int)) error {
	groups := [][]*tensors.Tensor{batch}
	if pl.group < pl.n {
		groups = make([][]*tensors.Tensor, (pl.n+pl.group-1)/pl.group)
		for _, t := range batch {
			parts, err := models.SplitBatch(t, pl.group)
			if err != nil {
				return err
			}
			defer func() {
				for _, p := range parts {
					p.FinalizeAll()
				}
			}()
			for i, p := range parts {
				groups[i] = append(groups[i], p)
			}
		}
	}
	type call struct{ start, group int }
	var calls []call
	for start := 0; start < pl.points; start += pl.per {
		for i := range groups {
			calls = append(calls, call{start, i})
		}
	}
	errs := make([]error, max(1, pl.atOnce))
	atOnce := 1 // the first two calls run alone; the second, compiled already, is timed
	for wave := 0; wave < len(calls); {
		todo := calls[wave:min(len(calls), wave+atOnce)]
		wave += len(todo)
		began := time.Now()
		parallel.ForN(len(todo), len(todo), func(w int) {
			cl := todo[w]
			p := min(cl.start, pl.points-pl.per)
			errs[w] = eval(p, cl.start-p, cl.group*pl.group, groups[cl.group])
		})
		if wave == 2 && time.Since(began) >= sideBySideMin {
			atOnce = len(errs)
		}
		for w := range todo {
			if errs[w] != nil {
				return errs[w]
			}
		}
		releaseBuffers()
		if progress == nil {
			continue
		}
		for _, cl := range todo {
			if cl.group == len(groups)-1 { // the last call of its chunk of points
				progress(pl.n * min(cl.start+pl.per, pl.points))
			}
		}
	}
	return nil
}

// sideBySideMin is how long a call of the model must take for pointPlan.run
// to run calls side by side: on 2 cores, tinycnn's calls (one image, about
// 1 ms) took 1.8 times as long two at a time as one after the other (the
// executors' hand-offs outweigh the work), while ResNet-18's (about 40 ms)
// took 0.7 times as long. A variable for the tests (export_test.go).
var sideBySideMin = 10 * time.Millisecond

// releaseHeap is the live heap above which releaseBuffers collects garbage.
const releaseHeap = 256 << 20

// releaseBuffers collects garbage once more after a call of the model when
// the live heap is large. The pure-Go backend keeps a call's buffers in
// sync.Pools, whose contents survive one collection (the runner's, after
// each call; see [models.Runner.SetHeapSlack]); this second one frees them,
// so that the next call's buffers take their place in the heap instead of
// adding to them. Measured on ResNet-18's Integrated Gradients (32 steps,
// batch 1, pure-Go backend): peak RSS 0.91 GB without it and 0.70 GB with
// it at 1 point per call, 2.2 and 1.5 GB at 4, in no more time. Below
// releaseHeap (small models, many short calls) it would cost more time than
// it saves memory.
func releaseBuffers() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() > releaseHeap {
		runtime.GC()
	}
}

// exec runs the graph key of this CAM (compiled on first use) on args.
func (c *CAM) exec(key string, fn func(*model.Scope, []*graph.Node) []*graph.Node, args ...any) ([]*tensors.Tensor, error) {
	e, err := c.runner.Exec(key, fn)
	if err != nil {
		return nil, err
	}
	outs, err := e.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("computing %s on %s: %w", c.method.Name(), c.runner.Model().Name(), err)
	}
	return outs, nil
}

// mapsGraph returns the graph of the last step of the methods that run the
// model many times per image: inputs the logits [N,classes] and the classes
// [N,K] of the unchanged images, then what raw takes; outputs those of
// [CAM.graph], each layer's raw maps [N,K,h,w] computed by raw from the
// target's scores [N,K] and those inputs. It does not run the model, so it
// holds no copy of the weights (see [models.Runner.SetMaxGraphs]).
func (c *CAM) mapsGraph(t Target, raw func(scores *graph.Node, inputs []*graph.Node) []*graph.Node) func(*model.Scope, []*graph.Node) []*graph.Node {
	return func(_ *model.Scope, inputs []*graph.Node) []*graph.Node {
		logits := inputs[0]
		classes, scores := t.scores(logits, inputs[1])
		raws := raw(scores, inputs[2:])
		return append([]*graph.Node{logits, classes, scores, c.finish(raws)}, raws...)
	}
}

func finalizeAll(ts []*tensors.Tensor) {
	for _, t := range ts {
		t.FinalizeAll()
	}
}
