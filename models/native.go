package models

import (
	"errors"
	"fmt"
	"sync"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// Tap marks a layer of a native model: it records x under name and returns x
// unchanged, so a forward function reads as usual:
//
//	x = tap("conv1", activation.Relu(conv(scope.In("conv1"), x)))
type Tap func(name string, x *graph.Node) *graph.Node

// ForwardFunc is a model written in GoMLX: it builds the logits of x,
// shaped [batch, classes], marking its layers with tap.
type ForwardFunc func(scope *model.Scope, x *graph.Node, tap Tap) *graph.Node

// Native is a [Model] written in GoMLX.
type Native struct {
	name    string
	input   Input
	labels  []string
	store   *model.Store
	forward ForwardFunc

	layersOnce sync.Once
	layers     []Layer
	layersErr  error
}

// NewNative wraps forward, whose weights live in store (trained or loaded
// beforehand), as a Model taking images described by input.
func NewNative(name string, input Input, store *model.Store, forward ForwardFunc) *Native {
	return &Native{name: name, input: input, store: store, forward: forward}
}

// SetLabels names the classes, indexed by logit.
func (m *Native) SetLabels(labels []string) *Native {
	if m == nil {
		return nil
	}
	m.labels = labels
	return m
}

// Name, Input, Labels and Store of a nil *Native are zero values, so that a
// nil model inside a Model interface is refused with an error (by
// [NewRunner], say) rather than a panic.

func (m *Native) Name() string {
	if m == nil {
		return ""
	}
	return m.name
}

func (m *Native) Input() Input {
	if m == nil {
		return Input{}
	}
	return m.input
}

func (m *Native) Labels() []string {
	if m == nil {
		return nil
	}
	return m.labels
}

func (m *Native) Store() *model.Store {
	if m == nil {
		return nil
	}
	return m.store
}

// Layers lists the tapped layers in the order the forward function taps them.
// It builds the graph once, without running it, to learn their shapes.
func (m *Native) Layers() []Layer {
	layers, _ := m.Check()
	return layers
}

// Check builds the forward graph once and reports an error in it (a duplicate
// tap name, a shape mismatch); it returns the layers on success.
func (m *Native) Check() ([]Layer, error) {
	if m == nil {
		return nil, errors.New("models: the native model is nil: make one with models.NewNative")
	}
	m.layersOnce.Do(func() {
		switch {
		case m.store == nil:
			m.layersErr = fmt.Errorf("model %s: the weight store is nil: give models.NewNative a *model.Store (model.NewStore())", m.name)
		case m.forward == nil:
			m.layersErr = fmt.Errorf("model %s: the forward function is nil: give models.NewNative one", m.name)
		default:
			m.layersErr = m.input.Validate()
		}
		if m.layersErr != nil {
			return
		}
		var taps []Layer
		_, m.layersErr = buildShapes(m.store, m.input.Shape(1), func(scope *model.Scope, x *graph.Node) []*graph.Node {
			logits := m.forward(scope, x, func(name string, n *graph.Node) *graph.Node {
				for _, l := range taps {
					if l.Name == name {
						panic(fmt.Errorf("layer %q is tapped twice", name))
					}
				}
				taps = append(taps, Layer{Name: name, Op: n.Type().String(), Shape: n.Shape()})
				return n
			})
			return []*graph.Node{logits}
		})
		if m.layersErr != nil {
			m.layersErr = fmt.Errorf("building model %s: %w", m.name, m.layersErr)
		}
		m.layers = taps
	})
	return m.layers, m.layersErr
}

// Forward runs the forward function, collecting the requested taps.
func (m *Native) Forward(scope *model.Scope, x *graph.Node, layers []string) (*graph.Node, []*graph.Node) {
	acts := make([]*graph.Node, len(layers))
	// A method may run the model several times in one graph (Integrated
	// Gradients, SmoothGrad): each run reuses the same weights, so the
	// scopes it enters count as new.
	logits := m.forward(scope.ResetVisited(), x, func(name string, n *graph.Node) *graph.Node {
		for i, want := range layers {
			if want == name {
				acts[i] = n
			}
		}
		return n
	})
	for i, a := range acts {
		if a == nil {
			panic(fmt.Errorf("model %s has no layer %q", m.name, layers[i]))
		}
	}
	return logits, acts
}
