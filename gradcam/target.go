package gradcam

import (
	"fmt"
	"sync/atomic"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Target says which score a map explains. The zero Target is Top(1).
type Target struct {
	k       int
	classes []int
	// perImage > 0: classes holds perImage classes of each image, [N,perImage]
	// (the classes chosen on an image, kept for its augmented copies).
	perImage int
	fn       func(logits *graph.Node) *graph.Node
	fnID     int64
	name     string
}

// Top explains, for each image, its k highest-scoring classes, best first.
func Top(k int) Target { return Target{k: k} }

// Class explains the given classes: one class for every image, or one per image.
func Class(classes ...int) Target { return Target{classes: classes} }

// chosen is the class target of classes [N,K], K per image, already chosen.
func chosen(classes []int, k int) Target { return Target{classes: classes, perImage: k} }

var scoreIDs atomic.Int64

// Score explains a function of the logits [N,classes] that returns one score
// per image [N] (or K scores [N,K]), such as a softmax probability or a sum of
// classes. name identifies it in messages. Each call compiles its own graph:
// create a Score target once and reuse it.
func Score(name string, fn func(logits *graph.Node) *graph.Node) Target {
	return Target{fn: fn, fnID: scoreIDs.Add(1), name: name}
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
	switch {
	case t.fn != nil:
		return t.name
	case t.classes != nil:
		return fmt.Sprintf("class %v", t.classes)
	default:
		return fmt.Sprintf("top-%d", max(t.k, 1))
	}
}

// key distinguishes targets that need different graphs.
func (t Target) key() string {
	switch {
	case t.fn != nil:
		return fmt.Sprintf("score#%d", t.fnID)
	case t.classes != nil:
		return "classes"
	default:
		return fmt.Sprintf("top%d", max(t.k, 1))
	}
}

// classInput validates the target against a batch of n images and a model
// with numClasses outputs (0 when unknown), and returns the class indices
// [n,1] to feed the graph, or nil when the graph chooses them itself.
func (t Target) classInput(n, numClasses int) (*tensors.Tensor, error) {
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
		if len(t.classes) != 1 && len(t.classes) != n {
			return nil, fmt.Errorf("%d classes given for %d images: give one class for all images or one per image", len(t.classes), n)
		}
		idx := make([]int32, n)
		for i := range idx {
			c := t.classes[min(i, len(t.classes)-1)]
			if c < 0 || (numClasses > 0 && c >= numClasses) {
				return nil, fmt.Errorf("class index %d is out of range: the model has %d classes (0 to %d)", c, numClasses, numClasses-1)
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
// targets) and scores [N,K]. The class choice carries no gradient.
func (t Target) scores(logits, given *graph.Node) (classes, scores *graph.Node) {
	g := logits.Graph()
	n := logits.Shape().Dimensions[0]
	switch {
	case t.fn != nil:
		scores = t.fn(logits)
		if scores.Rank() == 1 {
			scores = graph.ExpandAxes(scores, 1)
		}
		if scores.Rank() != 2 || scores.Shape().Dimensions[0] != n {
			panic(fmt.Errorf("score %q has shape %v; it must give one score per image, [N] or [N,K]", t.name, scores.Shape().Dimensions))
		}
		k := scores.Shape().Dimensions[1]
		return graph.AddScalar(graph.Zeros(g, shapes.Make(dtypes.Int32, n, k)), -1), scores
	case given != nil:
		classes = given
	default:
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
