// Package training trains the models convlens ships with.
//
// [TrainMNIST] trains the MNIST network of package models ([models.MNISTForward])
// on the 8,000 training digits of package mnistdata and evaluates it on the
// 2,000 held-out ones; [models.SaveMNISTWeights] then writes the weights that
// [models.MNIST] embeds.
package training

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/convlens/convlens/internal/mnistdata"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/exceptions"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/gomlx/ml/train/optimizer/cosineschedule"
)

// MNISTConfig configures [TrainMNIST]. Start from [DefaultMNISTConfig],
// which produced the embedded weights, and change what you need.
type MNISTConfig struct {
	// Epochs is the number of passes over the training digits.
	Epochs int
	// BatchSize is the number of digits per step. A last partial batch of an
	// epoch is dropped, so every step has the same shape.
	BatchSize int
	// LearningRate is Adam's initial learning rate; it decays towards zero
	// along one cosine half-period over the whole run.
	LearningRate float64
	// Seed drives the initial weights, the batch order and the augmentation.
	Seed int64
	// Augment distorts each training digit at random; the zero value does not.
	Augment Augmentation
	// TrainDigits, when > 0, trains on only the first TrainDigits training
	// digits (for quick tests). The held-out digits are unaffected.
	TrainDigits int
	// MaxSteps, when > 0, stops training after that many steps; the learning
	// rate schedule then spans MaxSteps.
	MaxSteps int
	// SkipEval skips the held-out evaluation (the report's accuracy is then NaN).
	SkipEval bool
	// Backend to train on; nil means the pure-Go backend, whatever
	// $GOMLX_BACKEND says (so the result does not depend on the machine).
	Backend compute.Backend
	// Progress, if not nil, is called after every step, and once more with
	// Done set after the evaluation. TrainMNIST itself prints nothing.
	Progress func(MNISTProgress)
}

// Augmentation is a random affine distortion of the training digits.
type Augmentation struct {
	// Shift is the largest translation along each axis, in pixels.
	Shift float64
	// Rotate is the largest rotation, in degrees.
	Rotate float64
	// Scale is the largest relative change of size (0.1: 90% to 110%).
	Scale float64
}

// DefaultMNISTConfig is the configuration the embedded weights were trained with.
func DefaultMNISTConfig() MNISTConfig {
	return MNISTConfig{
		Epochs:       15,
		BatchSize:    64,
		LearningRate: 2e-3,
		Seed:         1,
		Augment:      Augmentation{Shift: 2, Rotate: 10, Scale: 0.1},
	}
}

func (cfg MNISTConfig) validate() error {
	switch {
	case cfg.Epochs <= 0:
		return fmt.Errorf("mnist training: %d epochs (start from DefaultMNISTConfig)", cfg.Epochs)
	case cfg.BatchSize <= 0:
		return fmt.Errorf("mnist training: batch size %d", cfg.BatchSize)
	case !(cfg.LearningRate > 0):
		return fmt.Errorf("mnist training: learning rate %v", cfg.LearningRate)
	case cfg.Augment.Shift < 0 || cfg.Augment.Rotate < 0 || cfg.Augment.Scale < 0 || cfg.Augment.Scale >= 1:
		return fmt.Errorf("mnist training: augmentation %+v", cfg.Augment)
	}
	return nil
}

// MNISTProgress reports the state of a [TrainMNIST] run.
type MNISTProgress struct {
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

// MNISTReport is the outcome of [TrainMNIST].
type MNISTReport struct {
	// Config is the configuration used, defaults filled in.
	Config MNISTConfig
	// Store holds the trained weights (and the optimizer's state); pass it to
	// [models.SaveMNISTWeights].
	Store *model.Store
	// Model is the trained network, ready to run or to save.
	Model *models.Native
	// Losses holds the batch loss of every step.
	Losses []float64
	// Steps is the number of training steps taken.
	Steps int
	// TrainDigits is the number of training digits used.
	TrainDigits int
	// HeldOutCorrect of HeldOutTotal held-out digits were classified correctly;
	// HeldOutAccuracy is their ratio (NaN when the evaluation was skipped).
	HeldOutCorrect, HeldOutTotal int
	HeldOutAccuracy              float64
	// TrainTime is the wall time of the training steps, including compilation;
	// EvalTime that of the held-out evaluation.
	TrainTime, EvalTime time.Duration
	// Backend names the backend used.
	Backend string
}

// String summarises the report in one line.
func (r *MNISTReport) String() string {
	return fmt.Sprintf("mnist: %d steps on %d digits in %v (%s); held-out accuracy %.2f%% (%d/%d) in %v",
		r.Steps, r.TrainDigits, r.TrainTime.Round(time.Millisecond), r.Backend,
		100*r.HeldOutAccuracy, r.HeldOutCorrect, r.HeldOutTotal, r.EvalTime.Round(time.Millisecond))
}

// TrainMNIST trains the MNIST network from scratch and evaluates it on the
// held-out digits. With the same configuration and backend it produces the same
// weights: every random choice is seeded by cfg.Seed.
func TrainMNIST(cfg MNISTConfig) (*MNISTReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	trainSet, heldOut, err := mnistdata.Split()
	if err != nil {
		return nil, err
	}
	if cfg.TrainDigits > 0 && cfg.TrainDigits < trainSet.Len() {
		trainSet = trainSet.Subset(iota(cfg.TrainDigits))
	}
	n := trainSet.Len()
	if cfg.BatchSize > n {
		return nil, fmt.Errorf("batch size %d is larger than the %d training digits", cfg.BatchSize, n)
	}
	stepsPerEpoch := n / cfg.BatchSize
	totalSteps := stepsPerEpoch * cfg.Epochs
	if cfg.MaxSteps > 0 {
		totalSteps = min(totalSteps, cfg.MaxSteps)
	}

	backend := cfg.Backend
	if backend == nil {
		if backend, err = gobackend.New(""); err != nil {
			return nil, fmt.Errorf("starting the pure-Go backend: %w", err)
		}
		defer backend.Finalize()
	}

	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, cfg.Seed)
	lr := cfg.LearningRate
	modelFn := func(scope *model.Scope, x *graph.Node) *graph.Node {
		cosineschedule.New(scope, x.Graph(), dtypes.Float32).
			LearningRate(lr).PeriodSteps(totalSteps + 1).Done()
		return models.MNISTForward(scope, x, func(_ string, n *graph.Node) *graph.Node { return n })
	}
	trainer := train.NewTrainer(backend, store, modelFn, loss.SparseCategoricalCrossEntropyLogits,
		optimizer.Adam().LearningRate(lr).Done(), nil, nil)

	report := &MNISTReport{Config: cfg, Store: store, TrainDigits: n, Backend: backend.Name(),
		HeldOutAccuracy: math.NaN()}
	rng := mnistdata.SplitMix64(uint64(cfg.Seed))
	batch := newBatcher(trainSet, cfg.Augment)
	start := time.Now()
	step := 0
	for epoch := 1; epoch <= cfg.Epochs && step < totalSteps; epoch++ {
		order := mnistdata.Permutation(n, rng.Uint64())
		for b := 0; b < stepsPerEpoch && step < totalSteps; b++ {
			x, y := batch.make(order[b*cfg.BatchSize:(b+1)*cfg.BatchSize], &rng)
			metrics, err := trainer.TrainStep(train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{y}})
			if err != nil {
				return nil, fmt.Errorf("training step %d: %w", step+1, err)
			}
			l, err := scalar(metrics[0])
			for _, m := range metrics {
				m.FinalizeAll()
			}
			if err != nil {
				return nil, fmt.Errorf("training step %d: reading the loss: %w", step+1, err)
			}
			if math.IsNaN(l) || math.IsInf(l, 0) {
				return nil, fmt.Errorf("training step %d: the loss is %v (lower the learning rate)", step+1, l)
			}
			step++
			report.Losses = append(report.Losses, l)
			if cfg.Progress != nil {
				cfg.Progress(MNISTProgress{Epoch: epoch, Epochs: cfg.Epochs, Step: step, Steps: totalSteps,
					Loss: l, Elapsed: time.Since(start)})
			}
		}
	}
	report.Steps = step
	report.TrainTime = time.Since(start)

	report.Model = models.NewNative(models.MNISTName, models.MNISTInput, store, models.MNISTForward).
		SetLabels(models.MNISTLabels())
	if !cfg.SkipEval {
		start = time.Now()
		runner := models.NewRunner(backend, report.Model)
		correct, err := CountCorrect(runner, heldOut, 500)
		runner.Close()
		if err != nil {
			return nil, fmt.Errorf("evaluating on the held-out digits: %w", err)
		}
		report.EvalTime = time.Since(start)
		report.HeldOutCorrect, report.HeldOutTotal = correct, heldOut.Len()
		report.HeldOutAccuracy = float64(correct) / float64(heldOut.Len())
	}
	if cfg.Backend == nil {
		// The backend is finalised on return: move the weights to host memory
		// so that the store outlives it (and can run on any other backend).
		for v := range store.IterVariables() {
			if !v.HasValue() {
				continue
			}
			t, err := v.Value()
			if err == nil {
				err = t.ToLocal()
			}
			if err != nil {
				return nil, fmt.Errorf("copying variable %s off the backend: %w", v.Path(), err)
			}
		}
	}
	if cfg.Progress != nil {
		last := math.NaN()
		if len(report.Losses) > 0 {
			last = report.Losses[len(report.Losses)-1]
		}
		cfg.Progress(MNISTProgress{Epoch: min(cfg.Epochs, (step+stepsPerEpoch-1)/stepsPerEpoch), Epochs: cfg.Epochs,
			Step: step, Steps: totalSteps, Loss: last, Elapsed: report.TrainTime, Done: true})
	}
	return report, nil
}

// CountCorrect runs the model of r on the digits, batch digits at a time,
// and counts those whose highest logit is their label.
func CountCorrect(r *models.Runner, d *mnistdata.Digits, batch int) (int, error) {
	if d.Len() == 0 {
		return 0, errors.New("no digits to evaluate")
	}
	pixels := d.Float32()
	plane := mnistdata.Rows * mnistdata.Cols
	correct := 0
	for lo := 0; lo < d.Len(); lo += batch {
		hi := min(lo+batch, d.Len())
		x := tensors.FromFlatDataAndDimensions(pixels[lo*plane:hi*plane], models.MNISTInput.Shape(hi-lo)...)
		logits, _, err := r.Run(x)
		x.FinalizeAll()
		if err != nil {
			return 0, err
		}
		flat := tensors.MustCopyFlatData[float32](logits)
		logits.FinalizeAll()
		classes := len(flat) / (hi - lo)
		for i := range hi - lo {
			row := flat[i*classes : (i+1)*classes]
			best := 0
			for c, v := range row {
				if v > row[best] {
					best = c
				}
			}
			if best == int(d.Labels[lo+i]) {
				correct++
			}
		}
	}
	return correct, nil
}

// batcher assembles training batches, with random affine distortions.
type batcher struct {
	d   *mnistdata.Digits
	aug Augmentation
}

func newBatcher(d *mnistdata.Digits, aug Augmentation) *batcher {
	return &batcher{d: d, aug: aug}
}

// make returns the digits at idx as an input tensor [B, 28, 28, 1] and a
// label tensor [B, 1] (int32), each digit distorted by [Augmentation.apply].
func (b *batcher) make(idx []int, rng *mnistdata.SplitMix64) (x, y *tensors.Tensor) {
	const plane = mnistdata.Rows * mnistdata.Cols
	pix := make([]float32, len(idx)*plane)
	labels := make([]int32, len(idx))
	for i, k := range idx {
		b.aug.apply(b.d.Image(k), pix[i*plane:(i+1)*plane], rng)
		labels[i] = int32(b.d.Labels[k])
	}
	x = tensors.FromFlatDataAndDimensions(pix, models.MNISTInput.Shape(len(idx))...)
	y = tensors.FromFlatDataAndDimensions(labels, len(idx), 1)
	return x, y
}

// apply writes src (28x28 bytes) into dst (28x28 values in [0,1]) through a
// random affine map about the image centre: a rotation by up to ±Rotate
// degrees, a scaling by a factor in [1-Scale, 1+Scale] and a translation by up
// to ±Shift pixels along each axis, each drawn uniformly from rng. Pixels are
// sampled bilinearly, with zero outside the source. The zero Augmentation copies.
func (a Augmentation) apply(src []uint8, dst []float32, rng *mnistdata.SplitMix64) {
	const rows, cols = mnistdata.Rows, mnistdata.Cols
	if a == (Augmentation{}) {
		for i, v := range src {
			dst[i] = float32(v) / 255
		}
		return
	}
	uniform := func(r float64) float64 { // in [-r, r]
		return r * (2*float64(rng.Uint64()>>11)/(1<<53) - 1)
	}
	theta := uniform(a.Rotate) * math.Pi / 180
	scale := 1 + uniform(a.Scale)
	tx, ty := uniform(a.Shift), uniform(a.Shift)
	// Inverse map: source = R(-theta)/scale * (dest - centre - t) + centre.
	cos, sin := math.Cos(theta)/scale, math.Sin(theta)/scale
	const cy, cx = (rows - 1) / 2.0, (cols - 1) / 2.0
	at := func(r, c int) float64 {
		if r < 0 || r >= rows || c < 0 || c >= cols {
			return 0
		}
		return float64(src[r*cols+c])
	}
	for r := range rows {
		for c := range cols {
			u, v := float64(c)-cx-tx, float64(r)-cy-ty
			sx := cos*u + sin*v + cx
			sy := -sin*u + cos*v + cy
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			c0, r0 := int(x0), int(y0)
			val := (at(r0, c0)*(1-fx)+at(r0, c0+1)*fx)*(1-fy) + (at(r0+1, c0)*(1-fx)+at(r0+1, c0+1)*fx)*fy
			dst[r*cols+c] = float32(val / 255)
		}
	}
}

// scalar reads a scalar float tensor.
func scalar(t *tensors.Tensor) (v float64, err error) {
	if e := exceptions.Try(func() {
		switch x := t.Value().(type) {
		case float32:
			v = float64(x)
		case float64:
			v = x
		default:
			err = fmt.Errorf("loss has type %T", x)
		}
	}); e != nil {
		return 0, fmt.Errorf("%v", e)
	}
	return v, err
}

func iota(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
