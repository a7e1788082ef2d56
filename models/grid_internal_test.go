package models

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

func TestLayerGridFromShape(t *testing.T) {
	for _, c := range []struct {
		layout Layout
		dims   []int
		want   string // Grid.String and C×H×W, or "" for none.
	}{
		{NCHW, []int{1, 512, 7, 7}, "nchw 512x7x7"},
		{NCHW, []int{1, 7, 7, 768}, "nhwc 768x7x7"},   // Swin's stages.
		{NCHW, []int{1, 56, 56, 96}, "nhwc 96x56x56"}, // ConvNeXt's blocks.
		{NCHW, []int{1, 1, 1, 768}, "nhwc 768x1x1"},   // ConvNeXt's last LayerNorm, no spatial axes.
		{NHWC, []int{1, 8, 8, 32}, "nhwc 32x8x8"},
		{NCHW, []int{1, 197, 768}, "tokens:14x14+1 768x14x14"}, // ViT-B/16.
		{NCHW, []int{1, 198, 384}, "tokens:14x14+2 384x14x14"}, // DeiT distilled.
		{NCHW, []int{1, 49, 768}, "tokens:7x7+0 768x7x7"},
		{NCHW, []int{197, 1, 768}, ""}, // Sequence-first inside attention.
		{NCHW, []int{12, 197, 64}, ""}, // Heads.
		{NCHW, []int{1, 200, 64}, ""},  // Not a square grid.
		{NCHW, []int{1, 1000}, ""},
	} {
		l := Layer{Shape: shapes.Make(dtypes.Float32, c.dims...)}
		g, ok := l.Grid(c.layout)
		got := ""
		if ok {
			got = fmt.Sprintf("%s %dx%dx%d", g, g.Channels, g.Height, g.Width)
		}
		if got != c.want {
			t.Errorf("%s %v: grid %q, want %q", c.layout, c.dims, got, c.want)
		}
	}
}

func TestParseGrid(t *testing.T) {
	g, err := ParseGrid("tokens:14x16+1", []int{1, 225, 64})
	if err != nil || g.Height != 14 || g.Width != 16 || g.Skip != 1 || !g.Tokens || g.Channels != 64 {
		t.Errorf("tokens:14x16+1 = %+v, %v", g, err)
	}
	if g, err := ParseGrid("NHWC", []int{1, 4, 6, 8}); err != nil || g.Layout != NHWC || g.Height != 4 || g.Width != 6 || g.Channels != 8 {
		t.Errorf("NHWC = %+v, %v", g, err)
	}
	for _, bad := range []struct {
		spec string
		dims []int
	}{
		{"tokens:14x14+1", []int{1, 196, 64}}, // Token count disagrees.
		{"tokens:14", []int{1, 197, 64}},
		{"tokens:0x0+0", []int{1, 0, 64}},
		{"nchw", []int{1, 197, 64}},
		{"hwc", []int{1, 4, 4, 4}},
	} {
		if _, err := ParseGrid(bad.spec, bad.dims); err == nil {
			t.Errorf("ParseGrid(%q, %v) accepted", bad.spec, bad.dims)
		}
	}
}

// Map drops the leading tokens and lays the patches out row by row,
// channels first: token 1+y·W+x, channel c lands at [c, y, x].
func TestGridMapTokens(t *testing.T) {
	const skip, h, w, ch = 1, 2, 3, 4
	tokens := make([]float32, (skip+h*w)*ch)
	for i := range tokens {
		tokens[i] = float32(i)
	}
	b, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	g := Grid{Layout: NHWC, Tokens: true, Skip: skip, Height: h, Width: w, Channels: ch}
	e, err := graph.NewExec(b, g.Map)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(tensors.FromFlatDataAndDimensions(tokens, 1, skip+h*w, ch))
	if err != nil {
		t.Fatal(err)
	}
	if d := out[0].Shape().Dimensions; fmt.Sprint(d) != "[1 4 2 3]" {
		t.Fatalf("shape %v, want [1 4 2 3]", d)
	}
	got := tensors.MustCopyFlatData[float32](out[0])
	for c := range ch {
		for y := range h {
			for x := range w {
				if v, want := got[(c*h+y)*w+x], float32((skip+y*w+x)*ch+c); v != want {
					t.Errorf("[%d,%d,%d] = %v, want %v", c, y, x, v, want)
				}
			}
		}
	}
}
