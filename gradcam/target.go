package gradcam

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/convlens/convlens/heatmap"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Target says which score a map explains. The zero Target is Top(1).
//
// A model with one output z, a sigmoid binary classifier, has two
// decisions to explain: class 1, positive, with score z (the log-odds
// log(p/(1−p)) of p = σ(z)), and class 0, negative, with score −z. [Top](1)
// explains the decision the model made (1 when z > 0, score |z|), [Class](0)
// and Class(1) either one, as pytorch-grad-cam's
// BinaryClassifierOutputTarget(0 or 1) does; [Output](0) explains z itself,
// for regression. (With a fixed category, a wrong decision's score is
// negative and its map blank, which pytorch-grad-cam's users report as a
// bug, its issue #428: Top(1) explains the decision made instead.)
type Target struct {
	k       int
	classes []int
	output  bool // Output: the model's output itself, no decisions
	negate  bool // Counterfactual
	fn      func(logits *graph.Node) *graph.Node
	id      int64 // Distinguishes the graphs of Score, Similarity and Segment targets.
	name    string
	width   int // The output width the target needs (Similarity); 0: any.
	segment bool
	region  *heatmap.Map // Segment's region; nil: where the class is predicted.
	err     error        // A bad argument of the constructor, reported by Explain.
	// perImage > 0: classes holds perImage classes of each image, [N,perImage]
	// (the classes chosen on an image, kept for its augmented copies).
	perImage int
}

// Top explains, for each image, its k highest-scoring classes, best first.
func Top(k int) Target { return Target{k: k} }

// Class explains the given classes: one class for every image, or one per image.
func Class(classes ...int) Target { return Target{classes: classes} }

// Output explains the model's outputs themselves, by index: one for every
// image, or one per image. For a regression model it explains the
// predicted value (Output(0) for one output), and for a one-output
// classifier the logit z, whatever the decision (see [Target]).
func Output(indices ...int) Target { return Target{classes: indices, output: true} }

var targetIDs atomic.Int64

// chosen is t with the classes [N,K], K per image, already chosen.
func (t Target) chosen(classes []int, k int) Target {
	t.classes, t.perImage, t.k = classes, k, 0
	return t
}

// Score explains a function of the logits [N,classes] that returns one score
// per image [N] (or K scores [N,K]), such as a softmax probability or a sum of
// classes; an image's score must depend on that image's logits alone, since a
// batch may be explained in parts. name identifies it in messages. Each call
// compiles its own graph: create a Score target once and reuse it.
func Score(name string, fn func(logits *graph.Node) *graph.Node) Target {
	return Target{fn: fn, id: targetIDs.Add(1), name: name}
}

// Similarity explains the cosine similarity between the model's output and
// a reference embedding, reference·y / (max(‖reference‖, 1e-8)·max(‖y‖,
// 1e-8)), as pytorch-grad-cam's SimilarityToConceptTarget: for retrieval
// and embedding models, which regions make an image resemble the reference
// (the output of another image, or a concept's mean embedding). The
// reference must have one value per output and be finite and not zero;
// Explain reports one that is not. Each call compiles its own graph: create
// the target once per reference.
func Similarity(reference []float32) Target {
	t := Target{id: targetIDs.Add(1), name: "the similarity to the reference embedding", width: len(reference)}
	var norm float64
	for i, v := range reference {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.err = fmt.Errorf("gradcam.Similarity: value %d of the reference embedding is %v: give a finite embedding", i, v)
			return t
		}
		norm += float64(v) * float64(v)
	}
	if len(reference) == 0 || norm == 0 {
		t.err = errors.New("gradcam.Similarity: the reference embedding is empty or zero, so no similarity to it is defined: give the output of the model for a reference image")
		return t
	}
	ref := slices.Clone(reference)
	t.fn = func(y *graph.Node) *graph.Node {
		r := graph.ConvertDType(graph.Const(y.Graph(), ref), y.DType()) // [D]
		dot := graph.Einsum("nd,d->n", y, r)
		ny := graph.Max(graph.Sqrt(graph.ReduceSum(graph.Square(y), 1)), graph.Scalar(y.Graph(), y.DType(), 1e-8))
		return graph.Div(dot, graph.MulScalar(ny, max(math.Sqrt(norm), 1e-8)))
	}
	return t
}

// Segment explains a semantic segmentation model's class over a region, as
// pytorch-grad-cam's SemanticSegmentationTarget: the model's output
// [N,classes,H,W] (channels last for an NHWC model) is summed over the
// region's pixels, each weighted by the region's value there, and the
// class's sum is the score. A zero region (Width 0) is where the model
// predicts the class (its per-pixel arg-max), image by image; a region
// given is the same for every image and must have the output's size.
// Result.Logits holds every class's sum over the region.
func Segment(class int, region heatmap.Map) Target {
	t := Target{classes: []int{class}, segment: true, id: targetIDs.Add(1),
		name: fmt.Sprintf("class %d over its region", class)}
	if region.Width != 0 || region.Height != 0 || region.Values != nil {
		if err := region.Validate(); err != nil {
			t.err = fmt.Errorf("gradcam.Segment: the region: %w", err)
		}
		for i, v := range region.Values {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.err = fmt.Errorf("gradcam.Segment: value %d of the region is %v: give weights in [0, 1], 1 inside the region", i, v)
				break
			}
		}
		r := region
		t.region = &r
	}
	return t
}

// Counterfactual explains the evidence against t instead of for it: the
// regions that, made stronger, would lower t's score, as in the Grad-CAM
// paper's counterfactual explanations (Selvaraju et al., 2017, §5.2; there
// the channel weights are those of the negated gradient). It negates the
// score, so every method explains −score; Result.Scores holds −score. The
// classes are chosen as t chooses them (Top(1): the predicted class).
func Counterfactual(t Target) Target {
	t.negate = !t.negate
	return t
}

// images is the target for images [start,end) of a batch: a class given
// per image keeps those images' classes; every other target is the same for
// any image.
func (t Target) images(start, end int) Target {
	if t.perImage > 0 {
		t.classes = t.classes[start*t.perImage : end*t.perImage]
	} else if len(t.classes) > 1 {
		t.classes = t.classes[start:end]
	}
	return t
}

// String describes the target.
func (t Target) String() string {
	var s string
	switch {
	case t.fn != nil || t.segment:
		s = t.name
	case t.output:
		s = fmt.Sprintf("output %v", t.classes)
	case t.classes != nil:
		s = fmt.Sprintf("class %v", t.classes)
	default:
		s = fmt.Sprintf("top-%d", max(t.k, 1))
	}
	if t.negate {
		return "the evidence against " + s
	}
	return s
}

// key distinguishes targets that need different graphs.
func (t Target) key() string {
	var s string
	switch {
	case t.fn != nil || t.segment:
		s = fmt.Sprintf("target#%d", t.id)
	case t.output:
		s = "outputs"
	case t.classes != nil:
		s = "classes"
	default:
		s = fmt.Sprintf("top%d", max(t.k, 1))
	}
	if t.negate {
		s += ",negated"
	}
	return s
}

// classInput validates the target against a batch of n images and a model
// whose output has the given shape, and returns the class indices [n,1] to
// feed the graph, or nil when the graph chooses them itself.
func (t Target) classInput(n int, output []int) (*tensors.Tensor, error) {
	if t.err != nil {
		return nil, t.err
	}
	numClasses := 0 // Unknown.
	switch {
	case t.segment:
		if len(output) != 4 {
			return nil, fmt.Errorf("%s: the model's output is shaped %v, not a segmentation's [N,classes,H,W]", t, output)
		}
		numClasses = output[1]
	case len(output) == 2:
		numClasses = output[1]
		if numClasses == 1 && !t.output && t.fn == nil {
			numClasses = 2 // The two decisions of a one-output model.
		}
		if t.width > 0 && output[1] != t.width {
			return nil, fmt.Errorf("the reference embedding has %d values, but the model outputs %d per image: compute the reference with the same model", t.width, output[1])
		}
	}
	switch {
	case t.fn != nil:
		return nil, nil
	case t.perImage > 0:
		idx := make([]int32, len(t.classes))
		for i, c := range t.classes {
			idx[i] = int32(c)
		}
		return tensors.FromFlatDataAndDimensions(idx, n, t.perImage), nil
	case t.classes != nil:
		what, plural := "class", "classes"
		if t.output {
			what, plural = "output", "outputs"
		}
		if len(t.classes) != 1 && len(t.classes) != n {
			return nil, fmt.Errorf("%d %s given for %d images: give one for all images or one per image", len(t.classes), plural, n)
		}
		idx := make([]int32, n)
		for i := range idx {
			c := t.classes[min(i, len(t.classes)-1)]
			if c < 0 || (numClasses > 0 && c >= numClasses) {
				return nil, fmt.Errorf("%s index %d is out of range: the model has %d %s (0 to %d)", what, c, numClasses, plural, numClasses-1)
			}
			idx[i] = int32(c)
		}
		return tensors.FromFlatDataAndDimensions(idx, n, 1), nil
	default:
		if t.k < 0 || (numClasses > 0 && t.k > numClasses) {
			return nil, fmt.Errorf("top %d classes asked for, but the model has %d classes", t.k, numClasses)
		}
		return nil, nil
	}
}

// needsClasses reports whether the graph takes class indices as an input.
func (t Target) needsClasses() bool { return t.fn == nil && t.classes != nil }

// logits returns the scores [N,classes] the target picks from, from the
// model's output: the output itself, or for [Segment] its sums over the
// region. It panics (an error for [CAM.Explain]) on an output it cannot
// read.
func (t Target) logits(out *graph.Node, layout models.Layout) *graph.Node {
	if !t.segment {
		if out.Rank() != 2 {
			panic(fmt.Errorf("the model's output has shape %v; Grad-CAM needs logits shaped [batch, classes], or a Segment target for a segmentation's [batch, classes, height, width]", out.Shape().Dimensions))
		}
		return out
	}
	if out.Rank() != 4 {
		panic(fmt.Errorf("%s: the model's output has shape %v, not a segmentation's [batch, classes, height, width]", t, out.Shape().Dimensions))
	}
	out = channelsFirst(out, layout) // [N,C,H,W]
	d := out.Shape().Dimensions
	if t.region != nil {
		if t.region.Width != d[3] || t.region.Height != d[2] {
			panic(fmt.Errorf("%s: the region is %d×%d, the model's output %d×%d: give a region of the output's size", t, t.region.Width, t.region.Height, d[3], d[2]))
		}
		r := graph.Const(out.Graph(), tensors.FromFlatDataAndDimensions(slices.Clone(t.region.Values), d[2], d[3]))
		return graph.Einsum("nchw,hw->nc", out, graph.ConvertDType(r, out.DType()))
	}
	// Where the class is predicted: a mask per image, [N,H,W], without gradient.
	pred := graph.ArgMax(graph.StopGradient(out), 1, dtypes.Int32)
	mask := graph.ConvertDType(graph.Equal(pred, graph.Scalar(out.Graph(), dtypes.Int32, t.classes[0])), out.DType())
	return graph.Einsum("nchw,nhw->nc", out, graph.StopGradient(mask))
}

// choices returns what class indices index, from the logits [N,classes]:
// the logits, or for a one-output model the two decisions [−z, z].
func (t Target) choices(logits *graph.Node) *graph.Node {
	if logits.Shape().Dimensions[1] == 1 && !t.output {
		return graph.Concatenate([]*graph.Node{graph.Neg(logits), logits}, 1)
	}
	return logits
}

// probabilities returns the probabilities of the choices: the softmax of
// the logits [N,classes], or (1 − σ(z), σ(z)) for a one-output model.
func (t Target) probabilities(logits *graph.Node) *graph.Node {
	if logits.Shape().Dimensions[1] == 1 && !t.output {
		p := graph.Sigmoid(logits)
		return graph.Concatenate([]*graph.Node{graph.OneMinus(p), p}, 1)
	}
	return graph.Softmax(logits, 1)
}

// rescore returns the target's scores [M,K] on other logits [M,classes]
// (perturbed or repeated inputs), for the classes [M,K] already chosen.
func (t Target) rescore(logits, classes *graph.Node) *graph.Node {
	if t.fn != nil {
		_, s := t.scores(logits, nil)
		return s
	}
	_, s := t.scores(logits, classes)
	return s
}

// scores builds the target's class indices [N,K] (int32; −1 for Score
// targets) and scores [N,K], negated for a Counterfactual. The class
// choice carries no gradient.
func (t Target) scores(logits, given *graph.Node) (classes, scores *graph.Node) {
	classes, scores = t.pick(logits, given)
	if t.negate {
		scores = graph.Neg(scores)
	}
	return classes, scores
}

// pick is scores without the negation.
func (t Target) pick(logits, given *graph.Node) (classes, scores *graph.Node) {
	g := logits.Graph()
	n := logits.Shape().Dimensions[0]
	if t.fn != nil {
		scores = t.fn(logits)
		if scores.Rank() == 1 {
			scores = graph.ExpandAxes(scores, 1)
		}
		if scores.Rank() != 2 || scores.Shape().Dimensions[0] != n {
			panic(fmt.Errorf("score %q has shape %v; it must give one score per image, [N] or [N,K]", t.name, scores.Shape().Dimensions))
		}
		k := scores.Shape().Dimensions[1]
		return graph.AddScalar(graph.Zeros(g, shapes.Make(dtypes.Int32, n, k)), -1), scores
	}
	logits = t.choices(logits)
	if given != nil {
		classes = given
	} else {
		classes = topClasses(graph.StopGradient(logits), max(t.k, 1))
	}
	// Select logits[n, classes[n,k]] with a one-hot mask, so the gradient
	// flows to the chosen logit alone.
	numClasses := logits.Shape().Dimensions[1]
	mask := graph.StopGradient(graph.OneHot(classes, numClasses, logits.DType())) // [N,K,C]
	scores = graph.ReduceSum(graph.Mul(mask, graph.ExpandAxes(logits, 1)), 2)
	return classes, scores
}

// topClasses returns the indices [N,K] of the k largest logits of each row,
// largest first, by k rounds of ArgMax, each masking out the class it found.
// For the few classes explained at once this is far cheaper than TopK, which
// the pure-Go backend runs as a sort that calls a compiled comparator per
// comparison (a fifth of a ResNet-18 Grad-CAM).
func topClasses(logits *graph.Node, k int) *graph.Node {
	numClasses := logits.Shape().Dimensions[1]
	lowest := graph.Infinity(logits.Graph(), logits.DType(), -1)
	var picks []*graph.Node
	for range k {
		pick := graph.ArgMax(logits, 1, dtypes.Int32) // [N]
		picks = append(picks, pick)
		found := graph.OneHot(pick, numClasses, dtypes.Bool)
		logits = graph.Where(found, graph.BroadcastToShape(lowest, logits.Shape()), logits)
	}
	return graph.Stack(picks, 1)
}
