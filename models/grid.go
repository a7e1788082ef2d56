package models

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/core/graph"
)

// Grid says how a layer's activation is read as a map: Channels values at
// each point of a Height×Width grid. A CAM or a feature map needs one.
//
// Convolutional layers are rank-4, in the model's layout or channels-last
// (Swin, and ConvNeXt's blocks, compute [N,h,w,C] inside an NCHW model).
// Vision transformers compute tokens, [N, Skip + Height·Width, Channels]:
// ViT's class token first (Skip 1), DeiT's class and distillation tokens
// (Skip 2), then the patches row by row; the leading tokens are dropped, as
// pytorch-grad-cam's reshape_transform does.
type Grid struct {
	// Layout of the activation: channels-first or -last. Tokens are channels-last.
	Layout Layout
	// Tokens is set for a rank-3 activation of Skip leading tokens then the grid's.
	Tokens bool
	Skip   int
	// Channels, Height and Width of the map.
	Channels, Height, Width int
}

// Grid returns how the layer reads as a map in a model whose input has the
// given layout, when its shape says so: a rank-4 activation, taken as
// channels-last when its middle axes are equal and its last differs (an NCHW
// activation of a square input has height = width), or a rank-3 one whose
// token count, less 0, 1 or 2 leading tokens, is a square of side ≥ 2.
// Anything else (a non-square token grid, say) needs [ParseGrid].
func (l Layer) Grid(layout Layout) (Grid, bool) {
	d := l.Shape.Dimensions
	switch {
	case len(d) == 4 && layout == NCHW && d[1] == d[2] && d[3] != d[2]:
		return Grid{Layout: NHWC, Height: d[1], Width: d[2], Channels: d[3]}, true
	case len(d) == 4 && layout == NHWC:
		return Grid{Layout: NHWC, Height: d[1], Width: d[2], Channels: d[3]}, true
	case len(d) == 4:
		return Grid{Layout: NCHW, Channels: d[1], Height: d[2], Width: d[3]}, true
	case len(d) == 3 && d[0] == 1:
		for skip := range 3 {
			side := int(math.Sqrt(float64(d[1] - skip)))
			if side >= 2 && side*side == d[1]-skip {
				return Grid{Layout: NHWC, Tokens: true, Skip: skip, Height: side, Width: side, Channels: d[2]}, true
			}
		}
	}
	return Grid{}, false
}

// ParseGrid reads an explicit grid for an activation of the given shape (a
// batch of one), for layers whose shape does not say: "nchw" or "nhwc" for a
// rank-4 activation, "tokens:HxW" or "tokens:HxW+S" (S leading tokens
// dropped, default 1) for a rank-3 one.
func ParseGrid(spec string, dims []int) (Grid, error) {
	spec = strings.ToLower(strings.TrimSpace(spec))
	switch {
	case spec == "nchw" || spec == "nhwc":
		if len(dims) != 4 {
			return Grid{}, fmt.Errorf("grid %q is for a rank-4 activation; this one is shaped %v", spec, dims)
		}
		if spec == "nchw" {
			return Grid{Layout: NCHW, Channels: dims[1], Height: dims[2], Width: dims[3]}, nil
		}
		return Grid{Layout: NHWC, Height: dims[1], Width: dims[2], Channels: dims[3]}, nil
	case strings.HasPrefix(spec, "tokens:"):
		if len(dims) != 3 {
			return Grid{}, fmt.Errorf("grid %q is for tokens [N,T,D]; this activation is shaped %v", spec, dims)
		}
		size, skipText, hasSkip := strings.Cut(strings.TrimPrefix(spec, "tokens:"), "+")
		hText, wText, ok := strings.Cut(size, "x")
		h, errH := strconv.Atoi(hText)
		w, errW := strconv.Atoi(wText)
		skip, errS := 1, error(nil)
		if hasSkip {
			skip, errS = strconv.Atoi(skipText)
		}
		if !ok || errH != nil || errW != nil || errS != nil || h < 1 || w < 1 || skip < 0 {
			return Grid{}, fmt.Errorf("grid %q: want tokens:HxW or tokens:HxW+S, e.g. tokens:14x14+1", spec)
		}
		if skip+h*w != dims[1] {
			return Grid{}, fmt.Errorf("grid %q needs %d+%d×%d = %d tokens; the activation has %d", spec, skip, h, w, skip+h*w, dims[1])
		}
		return Grid{Layout: NHWC, Tokens: true, Skip: skip, Height: h, Width: w, Channels: dims[2]}, nil
	}
	return Grid{}, fmt.Errorf("unknown grid %q: want nchw, nhwc or tokens:HxW[+S]", spec)
}

// String writes the grid as [ParseGrid] reads it.
func (g Grid) String() string {
	if g.Tokens {
		return fmt.Sprintf("tokens:%dx%d+%d", g.Height, g.Width, g.Skip)
	}
	return strings.ToLower(g.Layout.String())
}

// Map reshapes an activation read this way (any batch) to channels-first
// maps [N, Channels, Height, Width], in the graph, so gradients flow through.
func (g Grid) Map(x *graph.Node) *graph.Node {
	if g.Tokens {
		n := x.Shape().Dimensions[0]
		x = graph.Slice(x, graph.AxisRange(), graph.AxisRange(g.Skip, g.Skip+g.Height*g.Width))
		x = graph.Reshape(x, n, g.Height, g.Width, g.Channels)
	}
	if g.Layout == NHWC {
		x = graph.TransposeAllDims(x, 0, 3, 1, 2)
	}
	return x
}

// ChannelShape is the shape that broadcasts one value per channel of n
// images over an activation read this way: [n,C,1,1], [n,1,1,C] or, for
// tokens, [n,1,C] (every token's channel).
func (g Grid) ChannelShape(n int) []int {
	switch {
	case g.Tokens:
		return []int{n, 1, g.Channels}
	case g.Layout == NHWC:
		return []int{n, 1, 1, g.Channels}
	}
	return []int{n, g.Channels, 1, 1}
}
