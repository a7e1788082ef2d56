// Package training trains the models convlens ships with.
//
// [TrainMNIST] trains the MNIST network of package models ([embedded.MNISTForward])
// on the 8,000 training digits of package mnistdata and evaluates it on the
// 2,000 held-out ones; [embedded.SaveMNISTWeights] then writes the weights that
// [embedded.MNIST] embeds.
package training

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
	"github.com/convlens/convlens/datasets/mnistdata"
	"github.com/convlens/convlens/internal/rng"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/embedded"
	"github.com/gomlx/compute"
	"github.com/gomlx/exceptions"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
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

// MNISTReport is the outcome of [TrainMNIST].
type MNISTReport struct {
	// Config is the configuration used, defaults filled in.
	Config MNISTConfig
	// Store holds the trained weights (and the optimizer's state); pass it to
	// [embedded.SaveMNISTWeights].
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

	backend, release, err := ownBackend(cfg.Backend)
	if err != nil {
		return nil, err
	}
	defer release()

	gen := rng.SplitMix64(uint64(cfg.Seed))
	batch := newBatcher(trainSet, cfg.Augment)
	var order []int
	l := loop{
		forward: embedded.MNISTForward, seed: cfg.Seed, learningRate: cfg.LearningRate,
		epochs: cfg.Epochs, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps, backend: backend,
		startEpoch: func(int) { order = mnistdata.Permutation(n, gen.Uint64()) },
		batch: func(_, b int) (x, y *tensors.Tensor, err error) {
			x, y = batch.make(order[b*cfg.BatchSize:(b+1)*cfg.BatchSize], &gen)
			return x, y, nil
		},
		progress: cfg.Progress,
	}
	res, err := l.run()
	if err != nil {
		return nil, err
	}
	store := res.store
	report := &MNISTReport{Config: cfg, Store: store, TrainDigits: n, Backend: backend.Name(),
		HeldOutAccuracy: math.NaN(), Losses: res.losses, Steps: res.steps, TrainTime: res.trainTime}

	report.Model = models.NewNative(embedded.MNISTName, embedded.MNISTInput, store, embedded.MNISTForward).
		SetLabels(embedded.MNISTLabels())
	if !cfg.SkipEval {
		start := time.Now()
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
		if err := detach(store); err != nil {
			return nil, err
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(l.finalProgress(res))
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
	const plane = mnistdata.Rows * mnistdata.Cols
	return evaluation.Correct(r, d.Len(), batch, func(i int, dst []float32) int {
		copy(dst, pixels[i*plane:(i+1)*plane])
		return int(d.Labels[i])
	})
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
func (b *batcher) make(idx []int, gen *rng.SplitMix64) (x, y *tensors.Tensor) {
	const plane = mnistdata.Rows * mnistdata.Cols
	pix := make([]float32, len(idx)*plane)
	labels := make([]int32, len(idx))
	for i, k := range idx {
		b.aug.apply(b.d.Image(k), pix[i*plane:(i+1)*plane], gen)
		labels[i] = int32(b.d.Labels[k])
	}
	x = tensors.FromFlatDataAndDimensions(pix, embedded.MNISTInput.Shape(len(idx))...)
	y = tensors.FromFlatDataAndDimensions(labels, len(idx), 1)
	return x, y
}

// apply writes src (28x28 bytes) into dst (28x28 values in [0,1]) through a
// random affine map about the image centre: a rotation by up to ±Rotate
// degrees, a scaling by a factor in [1-Scale, 1+Scale] and a translation by up
// to ±Shift pixels along each axis, each drawn uniformly from gen. Pixels are
// sampled bilinearly, with zero outside the source. The zero Augmentation copies.
func (a Augmentation) apply(src []uint8, dst []float32, gen *rng.SplitMix64) {
	const rows, cols = mnistdata.Rows, mnistdata.Cols
	if a == (Augmentation{}) {
		for i, v := range src {
			dst[i] = float32(v) / 255
		}
		return
	}
	uniform := func(r float64) float64 { // in [-r, r]
		return r * (2*float64(gen.Uint64()>>11)/(1<<53) - 1)
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
