package gradcam

import (
	"fmt"

	"github.com/convlens/convlens/internal/fastconv"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// maskMethod is a model-agnostic perturbation method ([OcclusionMethod],
// [RISEMethod]): it runs the model on P copies of each image, copy p being
// x ⊙ M_p + b (1 − M_p) for a keep-mask M_p [H,W] (1 keeps a pixel, in
// every channel) and a constant baseline b, and makes the map at input
// resolution from the scores of the copies. It needs no layer. The copies
// go through the model in calls of at most [Builder.PointsPerCall] and
// count against [Builder.MaxPasses], as the perturbation methods' do.
type maskMethod interface {
	Method
	// masks is the number P of masks for an input of h×w pixels.
	masks(h, w int) int
	// mask writes keep-mask p, [h·w] row-major, into dst.
	mask(p, h, w int, dst []float32)
	// fill is the baseline b, in the model's input space.
	fill() float64
	// probabilities is true when a class target's copies are scored by the
	// class's softmax probability rather than its logit.
	probabilities() bool
	// attribute returns the map [h·w] of one image and target from the
	// score of the image, base, and those of its P copies.
	attribute(base float64, scores []float64, h, w int) []float64
}

// explainMasks runs a mask method: a base pass for the logits, the classes
// and the scores, the masked copies in calls of at most
// [Builder.PointsPerCall] (see pointPlan), then the maps.
func (c *CAM) explainMasks(mm maskMethod, x *tensors.Tensor, t Target, given *tensors.Tensor) (*Result, error) {
	n := x.Shape().Dimensions[0]
	total := c.Passes(n)
	in := c.runner.Model().Input()
	if err := c.checkPasses(mm.Name(), n, fmt.Sprintf("(%d masked copies of each %d×%d image)", mm.masks(in.Height, in.Width), in.Width, in.Height),
		"use fewer masks (a larger stride)"); err != nil {
		return nil, err
	}
	m := c.runner.Model()
	args := []any{x}
	if given != nil {
		args = append(args, given)
	}
	base, err := c.exec(c.key("masks-base", t), func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		logits, _ := m.Forward(scope, inputs[0], nil)
		logits = c.logits(t, logits)
		var given *graph.Node
		if len(inputs) > 1 {
			given = inputs[1]
		}
		classes, scores := t.scores(logits, given)
		return []*graph.Node{logits, classes, scores}
	}, args...)
	if err != nil {
		return nil, err
	}
	defer finalizeAll(base)
	logits, classes := base[0], base[1]
	k := classes.Shape().Dimensions[1]
	baseScores := tensors.MustCopyFlatData[float32](base[2])

	h, w := in.Height, in.Width
	p := mm.masks(h, w)
	pl := c.plan(n, p)
	pl.atOnce = fastconv.CallsAtOnce(c.runner.Backend(), p)
	perturbed := make([]float64, n*k*p) // [N,K,P]
	fn, key := c.masksGraph(mm, t, pl.per), c.key("masks-chunk", t, fmt.Sprint(pl.per))
	err = pl.run([]*tensors.Tensor{x, classes}, func(first, skip, img int, group []*tensors.Tensor) error {
		masks := make([]float32, pl.per*h*w)
		for j := range pl.per {
			mm.mask(first+j, h, w, masks[j*h*w:(j+1)*h*w])
		}
		outs, err := c.exec(key, fn, group[0], group[1], tensors.FromFlatDataAndDimensions(masks, pl.per, h, w))
		if err != nil {
			return err
		}
		defer finalizeAll(outs)
		return tensors.ConstFlatData(outs[0], func(scores []float32) { // [G,per,K]
			for g := range group[0].Shape().Dimensions[0] {
				for j := skip; j < pl.per; j++ { // points before skip: another call's
					for tk := range k {
						perturbed[((img+g)*k+tk)*p+first+j] = float64(scores[(g*pl.per+j)*k+tk])
					}
				}
			}
		})
	}, func(d int) {
		if c.progress != nil {
			c.progress(Progress{Method: mm.Name(), Layer: "the input", Done: d, Total: total})
		}
	})
	if err != nil {
		return nil, err
	}
	raw := make([]float32, n*k*h*w)
	for i := range n * k {
		for j, v := range mm.attribute(float64(baseScores[i]), perturbed[i*p:(i+1)*p], h, w) {
			raw[i*h*w+j] = float32(v)
		}
	}
	outs, err := c.exec(c.key("masks-maps", t), c.mapsGraph(t, func(_ *graph.Node, inputs []*graph.Node) []*graph.Node {
		return inputs[:1]
	}), logits, classes, tensors.FromFlatDataAndDimensions(raw, n, k, h, w))
	if err != nil {
		return nil, err
	}
	return c.result(outs)
}

// masksGraph returns the graph of one call of the model for a mask method:
// inputs a group of G images x, their classes [G,K] (int32) and per masks
// [per,H,W]; output the scores of the per masked copies of each image, [G,per,K].
func (c *CAM) masksGraph(mm maskMethod, t Target, per int) func(*model.Scope, []*graph.Node) []*graph.Node {
	m := c.runner.Model()
	in := m.Input()
	return func(scope *model.Scope, inputs []*graph.Node) []*graph.Node {
		x, classes, masks := inputs[0], inputs[1], inputs[2]
		n, k := x.Shape().Dimensions[0], classes.Shape().Dimensions[1]
		xc := channelsFirst(x, in.Layout)                                    // [G,C,H,W]
		keep := graph.ExpandAxes(graph.ConvertDType(masks, x.DType()), 0, 2) // [1,per,1,H,W]
		xm := graph.Mul(graph.ExpandAxes(xc, 1), keep)                       // [G,per,C,H,W]
		if b := mm.fill(); b != 0 {
			xm = graph.Add(xm, graph.MulScalar(graph.OneMinus(keep), b))
		}
		xm = mergeLeading(xm)
		if in.Layout == models.NHWC {
			xm = graph.TransposeAllAxes(xm, 0, 2, 3, 1)
		}
		logits, _ := m.Forward(scope, graph.StopGradient(xm), nil)
		logits = c.logits(t, logits)
		if mm.probabilities() && t.fn == nil {
			logits = t.probabilities(logits)
		}
		classesRep := mergeLeading(graph.BroadcastToDims(graph.ExpandAxes(classes, 1), n, per, k))
		return []*graph.Node{graph.Reshape(t.rescore(logits, classesRep), n, per, k)}
	}
}

// maskMap is the Map of the mask methods, which make their maps from the
// scores of the masked copies instead (see [CAM.Explain]): the sum over
// channels of g [N,C,H,W].
func maskMap(_, g *graph.Node) *graph.Node { return graph.ReduceSum(g, 1) }
