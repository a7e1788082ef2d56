package training

import (
	"fmt"
	"math"
	"time"

	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/gomlx/ml/train/optimizer/cosineschedule"
)

// Progress reports the state of a training run.
type Progress struct {
	// Epoch (from 1) and Step (from 1, counted over the whole run) just completed,
	// out of Epochs and Steps.
	Epoch, Epochs, Step, Steps int
	// Loss is the cross-entropy of the step's batch.
	Loss float64
	// Elapsed is the training time so far.
	Elapsed time.Duration
	// Done is true once, for the final report after the evaluation.
	Done bool
}

// MNISTProgress is the [Progress] of [TrainMNIST].
type MNISTProgress = Progress

// loop is one training run of a classifier written as a [models.ForwardFunc]:
// Adam with a cosine decay of the learning rate over the whole run, sparse
// softmax cross-entropy on the logits, batches from a function.
type loop struct {
	forward      models.ForwardFunc
	seed         int64
	learningRate float64
	// epochs of stepsPerEpoch steps, stopped after totalSteps (≤ their product).
	epochs, stepsPerEpoch, totalSteps int
	backend                           compute.Backend
	// startEpoch, if set, is called before the first batch of each epoch.
	startEpoch func(epoch int)
	// batch returns batch b (from 0) of the epoch: inputs and int32 labels [B, 1].
	batch func(epoch, b int) (x, y *tensors.Tensor, err error)
	// progress, if set, is called after every step.
	progress func(Progress)
}

// loopResult is what a loop leaves.
type loopResult struct {
	store     *model.Store
	losses    []float64
	steps     int
	trainTime time.Duration
}

// run trains from freshly initialised variables (seeded by l.seed).
func (l loop) run() (*loopResult, error) {
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, l.seed)
	lr, total := l.learningRate, l.totalSteps
	modelFn := func(scope *model.Scope, x *graph.Node) *graph.Node {
		cosineschedule.New(scope, x.Graph(), dtypes.Float32).
			LearningRate(lr).PeriodSteps(total + 1).Done()
		return l.forward(scope, x, func(_ string, n *graph.Node) *graph.Node { return n })
	}
	trainer := train.NewTrainer(l.backend, store, modelFn, loss.SparseCategoricalCrossEntropyLogits,
		optimizer.Adam().LearningRate(lr).Done(), nil, nil)
	res := &loopResult{store: store}
	start := time.Now()
	step := 0
	for epoch := 1; epoch <= l.epochs && step < total; epoch++ {
		if l.startEpoch != nil {
			l.startEpoch(epoch)
		}
		for b := 0; b < l.stepsPerEpoch && step < total; b++ {
			x, y, err := l.batch(epoch, b)
			if err != nil {
				return nil, fmt.Errorf("training step %d: %w", step+1, err)
			}
			metrics, err := trainer.TrainStep(train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{y}})
			x.FinalizeAll()
			y.FinalizeAll()
			if err != nil {
				return nil, fmt.Errorf("training step %d: %w", step+1, err)
			}
			loss, err := scalar(metrics[0])
			for _, m := range metrics {
				m.FinalizeAll()
			}
			if err != nil {
				return nil, fmt.Errorf("training step %d: reading the loss: %w", step+1, err)
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("training step %d: the loss is %v (lower the learning rate)", step+1, loss)
			}
			step++
			res.losses = append(res.losses, loss)
			if l.progress != nil {
				l.progress(Progress{Epoch: epoch, Epochs: l.epochs, Step: step, Steps: total,
					Loss: loss, Elapsed: time.Since(start)})
			}
		}
	}
	res.steps = step
	res.trainTime = time.Since(start)
	return res, nil
}

// finalProgress is the Progress reported once a run is evaluated.
func (l loop) finalProgress(r *loopResult) Progress {
	last := math.NaN()
	if len(r.losses) > 0 {
		last = r.losses[len(r.losses)-1]
	}
	return Progress{Epoch: min(l.epochs, (r.steps+l.stepsPerEpoch-1)/l.stepsPerEpoch), Epochs: l.epochs,
		Step: r.steps, Steps: l.totalSteps, Loss: last, Elapsed: r.trainTime, Done: true}
}

// ownBackend returns b, or when b is nil a new pure-Go backend (whatever
// $GOMLX_BACKEND says, so that the result does not depend on the machine)
// and a function that finalises it.
func ownBackend(b compute.Backend) (compute.Backend, func(), error) {
	if b != nil {
		return b, func() {}, nil
	}
	b, err := gobackend.New("")
	if err != nil {
		return nil, nil, fmt.Errorf("starting the pure-Go backend: %w", err)
	}
	return b, b.Finalize, nil
}

// detach moves every variable of store to host memory, so that the store
// outlives the backend it was trained on (and can run on any other).
func detach(store *model.Store) error {
	for v := range store.IterVariables() {
		if !v.HasValue() {
			continue
		}
		t, err := v.Value()
		if err == nil {
			err = t.ToLocal()
		}
		if err != nil {
			return fmt.Errorf("copying variable %s off the backend: %w", v.Path(), err)
		}
	}
	return nil
}
