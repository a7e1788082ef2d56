package training

import (
	"fmt"
	"math"
	"time"

	"github.com/convlens/convlens/cmd/convlens/internal/evaluation"
	"github.com/convlens/convlens/datasets/mnistdata"
	"github.com/convlens/convlens/internal/rng"
	"github.com/convlens/convlens/models"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// ImageConfig configures the training of a model on generated images
// ([TrainLesions], [TrainCells]). Start from the model's default
// configuration, which produced its embedded weights.
type ImageConfig struct {
	// Images is the number of training images, generated once (from Seed)
	// and kept for the whole run.
	Images int
	// Epochs is the number of passes over them.
	Epochs int
	// BatchSize is the number of images per step; a last partial batch of an
	// epoch is dropped.
	BatchSize int
	// LearningRate is Adam's initial learning rate; it decays towards zero
	// along one cosine half-period over the whole run.
	LearningRate float64
	// Seed drives the training images, the initial weights, the batch order
	// and the augmentation.
	Seed int64
	// Augment applies one of the eight flips and quarter turns of the square,
	// at random, to each training image (the classes do not depend on
	// orientation).
	Augment bool
	// MaxSteps, when > 0, stops training after that many steps; the
	// learning-rate schedule then spans MaxSteps.
	MaxSteps int
	// EvalImages is the number of held-out images the report's accuracy is
	// measured on; 0 skips the evaluation (the accuracy is then NaN).
	EvalImages int
	// Backend to train on; nil means the pure-Go backend, whatever
	// $GOMLX_BACKEND says.
	Backend compute.Backend
	// Progress, if not nil, is called after every step, and once more with
	// Done set after the evaluation.
	Progress func(Progress)
}

func (cfg ImageConfig) validate(name string) error {
	switch {
	case cfg.Images <= 0:
		return fmt.Errorf("%s training: %d images (start from the default configuration)", name, cfg.Images)
	case cfg.Epochs <= 0:
		return fmt.Errorf("%s training: %d epochs", name, cfg.Epochs)
	case cfg.BatchSize <= 0 || cfg.BatchSize > cfg.Images:
		return fmt.Errorf("%s training: batch size %d for %d images", name, cfg.BatchSize, cfg.Images)
	case !(cfg.LearningRate > 0):
		return fmt.Errorf("%s training: learning rate %v", name, cfg.LearningRate)
	case cfg.EvalImages < 0:
		return fmt.Errorf("%s training: %d evaluation images", name, cfg.EvalImages)
	}
	return nil
}

// Report is the outcome of training a model on generated images.
type Report struct {
	// Name of the model trained.
	Name string
	// Config is the configuration used.
	Config ImageConfig
	// Store holds the trained weights (and the optimizer's state).
	Store *model.Store
	// Model is the trained network, ready to run or to save.
	Model *models.Native
	// Losses holds the batch loss of every step; Steps counts them.
	Losses []float64
	Steps  int
	// HeldOutAccuracy on Config.EvalImages held-out images (NaN when skipped).
	HeldOutAccuracy float64
	// TrainTime is the wall time of the training steps, including
	// compilation; GenTime that of generating the training images;
	// EvalTime that of the held-out evaluation.
	TrainTime, GenTime, EvalTime time.Duration
	// Backend names the backend used.
	Backend string
}

// String summarises the report in one line.
func (r *Report) String() string {
	return fmt.Sprintf("%s: %d steps on %d images in %v (%s; images generated in %v); held-out accuracy %.2f%% on %d images in %v",
		r.Name, r.Steps, r.Config.Images, r.TrainTime.Round(time.Millisecond), r.Backend, r.GenTime.Round(time.Millisecond),
		100*r.HeldOutAccuracy, r.Config.EvalImages, r.EvalTime.Round(time.Millisecond))
}

// imageTask is what differs between the models trained on generated images.
type imageTask struct {
	name    string
	input   models.Input
	labels  []string
	forward models.ForwardFunc
	// sample fills dst (one image, the input's shape) with training image i
	// and returns its class; it is called from several goroutines.
	sample func(i int, dst []float32) int
	// accuracy measures a trained model on n held-out images.
	accuracy func(b compute.Backend, m models.Model, n int) (float64, error)
}

// imageSet is a labelled set of images kept as bytes, channels last.
type imageSet struct {
	h, w, c int
	pix     []uint8
	labels  []int32
}

func generateSet(in models.Input, n int, sample func(i int, dst []float32) int) *imageSet {
	s := &imageSet{h: in.Height, w: in.Width, c: in.Channels, labels: make([]int32, n)}
	size := s.h * s.w * s.c
	s.pix = make([]uint8, n*size)
	const chunk = 64
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		x, labels := evaluation.Batch(in, lo, hi, sample)
		flat := tensors.MustCopyFlatData[float32](x)
		x.FinalizeAll()
		for i, v := range flat {
			s.pix[lo*size+i] = uint8(math.Round(float64(v) * 255))
		}
		for i, l := range labels {
			s.labels[lo+i] = int32(l)
		}
	}
	return s
}

// batch returns images idx as [B, H, W, C] in [0,1] and labels [B, 1]; with
// augment, each image is flipped or turned by a random symmetry of the square.
func (s *imageSet) batch(idx []int, augment bool, gen *rng.SplitMix64) (x, y *tensors.Tensor) {
	size := s.h * s.w * s.c
	data := make([]float32, len(idx)*size)
	labels := make([]int32, len(idx))
	for i, k := range idx {
		labels[i] = s.labels[k]
		src := s.pix[k*size : (k+1)*size]
		dst := data[i*size : (i+1)*size]
		sym := 0
		if augment && s.h == s.w {
			sym = int(gen.Uint64() % 8)
		}
		for r := range s.h {
			for c := range s.w {
				// Source pixel of destination (r, c) under symmetry sym.
				sr, sc := r, c
				if sym&1 != 0 {
					sc = s.w - 1 - sc
				}
				if sym&2 != 0 {
					sr = s.h - 1 - sr
				}
				if sym&4 != 0 {
					sr, sc = sc, sr
				}
				for ch := range s.c {
					dst[(r*s.w+c)*s.c+ch] = float32(src[(sr*s.w+sc)*s.c+ch]) / 255
				}
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(data, s.shape(len(idx))...),
		tensors.FromFlatDataAndDimensions(labels, len(idx), 1)
}

func (s *imageSet) shape(n int) []int { return []int{n, s.h, s.w, s.c} }

// trainImages trains task's network under cfg and evaluates it.
func trainImages(task imageTask, cfg ImageConfig) (*Report, error) {
	if err := cfg.validate(task.name); err != nil {
		return nil, err
	}
	backend, release, err := ownBackend(cfg.Backend)
	if err != nil {
		return nil, err
	}
	defer release()

	start := time.Now()
	set := generateSet(task.input, cfg.Images, task.sample)
	genTime := time.Since(start)

	stepsPerEpoch := cfg.Images / cfg.BatchSize
	totalSteps := stepsPerEpoch * cfg.Epochs
	if cfg.MaxSteps > 0 {
		totalSteps = min(totalSteps, cfg.MaxSteps)
	}
	gen := rng.SplitMix64(uint64(cfg.Seed))
	var order []int
	l := loop{
		forward: task.forward, seed: cfg.Seed, learningRate: cfg.LearningRate,
		epochs: cfg.Epochs, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps, backend: backend,
		startEpoch: func(int) { order = mnistdata.Permutation(cfg.Images, gen.Uint64()) },
		batch: func(_, b int) (x, y *tensors.Tensor, err error) {
			x, y = set.batch(order[b*cfg.BatchSize:(b+1)*cfg.BatchSize], cfg.Augment, &gen)
			return x, y, nil
		},
		progress: cfg.Progress,
	}
	res, err := l.run()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", task.name, err)
	}
	rep := &Report{Name: task.name, Config: cfg, Store: res.store, Losses: res.losses, Steps: res.steps,
		HeldOutAccuracy: math.NaN(), TrainTime: res.trainTime, GenTime: genTime, Backend: backend.Name()}
	rep.Model = models.NewNative(task.name, task.input, res.store, task.forward).SetLabels(task.labels)
	if cfg.EvalImages > 0 {
		start := time.Now()
		if rep.HeldOutAccuracy, err = task.accuracy(backend, rep.Model, cfg.EvalImages); err != nil {
			return nil, fmt.Errorf("evaluating %s on held-out images: %w", task.name, err)
		}
		rep.EvalTime = time.Since(start)
	}
	if cfg.Backend == nil {
		if err := detach(res.store); err != nil {
			return nil, err
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(l.finalProgress(res))
	}
	return rep, nil
}
