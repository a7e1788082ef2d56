package gradcam

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/graph"
)

// Score-CAM's variants. Each is [ScoreCAM] with one change, so each keeps
// its mask M_k (A_k upsampled with align_corners=True, then min-max
// normalised: pytorch-grad-cam's, which convlens' Score-CAM follows), its
// score (the target's logit, or a [Score] target's own score) and its
// weights w = softmax_k(s_k) over the channel scores s. torch-cam, the
// anchor of SS-CAM and IS-CAM, min-max normalises A_k before upsampling it
// with align_corners=False, so its masks differ slightly at the edges of
// the cells; it too scores by the logit, and the unmasked image's score it
// subtracts from every s_k is one constant per image and target, which the
// softmax ignores. The zero value of each setting means its default.

// SSCAMMethod is SS-CAM, Smoothed Score-CAM (Wang et al., 2020, "SS-CAM:
// Smoothed Score-CAM for sharper visual feature localization"), as
// torch-cam computes it: the noise goes into the mask, not the input, and
// each channel's score is the mean over Samples noisy copies of its mask,
// s_k = (1/S) Σ_s score(x ⊙ (M_k + Sigma·ε_ks)), with ε_ks standard normal
// per pixel (the same for every colour channel of the input) and the masks
// not clipped; w = softmax_k(s); map = Σ_k w_k A_k. Samples × channels
// passes per image.
//
// The noise is reproducible from Seed in any language: [Perturbation.Noisy]
// says how it is laid out. Defaults: torch-cam's, 35 samples and Sigma 2
// (the masks are in [0,1], so the noise dominates them).
type SSCAMMethod struct {
	Samples int
	Sigma   float64
	Seed    uint64
}

// SSCAM with torch-cam's defaults: 35 samples, Sigma 2; seed 0.
var SSCAM Method = SSCAMMethod{Samples: 35, Sigma: 2}

func (SSCAMMethod) Name() string                     { return "sscam" }
func (SSCAMMethod) Map(a, w *graph.Node) *graph.Node { return ScoreCAM.Map(a, w) }
func (m SSCAMMethod) String() string {
	return fmt.Sprintf("sscam(samples=%d,sigma=%g,seed=%d)", m.Samples, m.Sigma, m.Seed)
}

func (m SSCAMMethod) perturbation() (Perturbation, error) {
	sigma := m.Sigma
	if sigma == 0 {
		sigma = 2
	}
	if err := checkSamples("SSCAMMethod", m.Samples, 35); err != nil {
		return Perturbation{}, err
	}
	if sigma < 0 || math.IsInf(sigma, 0) || math.IsNaN(sigma) {
		return Perturbation{}, fmt.Errorf("gradcam.SSCAMMethod: Sigma=%g, the noise's standard deviation, must be a positive number (0 means the default, 2)", m.Sigma)
	}
	return scoreCAMWith(Perturbation{
		MethodName: m.Name(), Samples: defaultTo(m.Samples, 35), Noisy: true, Seed: m.Seed,
		Sample: func(masks, _, noise *graph.Node) *graph.Node { return graph.Add(masks, graph.MulScalar(noise, sigma)) },
	})
}

// ISCAMMethod is IS-CAM, Integrated Score-CAM (Naidu et al., 2020, "IS-CAM:
// Integrated Score-CAM for axiomatic-based explanations"), as torch-cam
// computes it: each channel's score is accumulated over Samples masks
// scaled along a path from the blank input, s_k = (1/S) Σ_i score(c_i·(x ⊙
// M_k)) for i = 1..S, with c_i = Σ_{j=1..i} j/S = i(i+1)/(2S), the running
// sum torch-cam's code adds (its doc writes Σ_{j=0..i−1} j/S, one step
// behind; the code is followed). The last coefficients exceed 1: for S = 10
// they run from 0.1 to 5.5. w = softmax_k(s); map = Σ_k w_k A_k. Samples ×
// channels passes per image. Default: torch-cam's, 10 samples.
type ISCAMMethod struct {
	Samples int
}

// ISCAM with torch-cam's default, 10 samples.
var ISCAM Method = ISCAMMethod{Samples: 10}

func (ISCAMMethod) Name() string                     { return "iscam" }
func (ISCAMMethod) Map(a, w *graph.Node) *graph.Node { return ScoreCAM.Map(a, w) }
func (m ISCAMMethod) String() string                 { return fmt.Sprintf("iscam(samples=%d)", m.Samples) }

func (m ISCAMMethod) perturbation() (Perturbation, error) {
	if err := checkSamples("ISCAMMethod", m.Samples, 10); err != nil {
		return Perturbation{}, err
	}
	n := defaultTo(m.Samples, 10)
	return scoreCAMWith(Perturbation{
		MethodName: m.Name(), Samples: n,
		Sample: func(masks, s, _ *graph.Node) *graph.Node {
			// Sample s = i − 1: c_i = (s+1)(s+2) / (2S).
			c := graph.DivScalar(graph.Mul(graph.AddScalar(s, 1), graph.AddScalar(s, 2)), float64(2*n))
			return graph.Mul(masks, graph.Reshape(c, 1, s.Shape().Dimensions[0], 1, 1))
		},
	})
}

// FasterScoreCAMMethod is Faster Score-CAM (tabayashi0117's, as
// tf-keras-vis's Scorecam computes it with max_N): Score-CAM on only the
// Channels channels of each image's activation that vary most over
// positions (population variance; all of them when the layer has no more):
// s_k = score(x ⊙ M_k) and w = softmax_k(s) over those channels, and the map
// sums those channels only, map = Σ_{k kept} w_k A_k. min(Channels, C)
// passes per image; with Channels ≥ C it is [ScoreCAM].
//
// Two deliberate differences from tf-keras-vis, to stay [ScoreCAM] on fewer
// channels: its Score-CAM weighs a channel by the softmax probability of
// the class for the masked input, without a softmax over channels (convlens
// keeps its Score-CAM's weights, see above); and it keeps the union of the
// batch's images' top channels for every image, where convlens keeps each
// image's own, so that an image's map does not depend on the batch.
// Default: 10 channels (tf-keras-vis' own default, no max_N, is plain
// Score-CAM).
type FasterScoreCAMMethod struct {
	Channels int
}

// FasterScoreCAM keeps each image's 10 channels of highest variance.
var FasterScoreCAM Method = FasterScoreCAMMethod{Channels: 10}

func (FasterScoreCAMMethod) Name() string                     { return "fasterscorecam" }
func (FasterScoreCAMMethod) Map(a, w *graph.Node) *graph.Node { return ScoreCAM.Map(a, w) }
func (m FasterScoreCAMMethod) String() string {
	return fmt.Sprintf("fasterscorecam(channels=%d)", m.Channels)
}

func (m FasterScoreCAMMethod) perturbation() (Perturbation, error) {
	if m.Channels < 0 {
		return Perturbation{}, fmt.Errorf("gradcam.FasterScoreCAMMethod: Channels=%d is negative; it is how many channels to keep (0 means the default, 10)", m.Channels)
	}
	return scoreCAMWith(Perturbation{MethodName: m.Name(), TopChannels: defaultTo(m.Channels, 10)})
}

// scoreCAMWith is p, which says how a variant differs from [ScoreCAM],
// with Score-CAM's weights, checked.
func scoreCAMWith(p Perturbation) (Perturbation, error) {
	p.Weights = scoreWeights
	return p.perturbation()
}

// checkSamples refuses a negative sample count.
func checkSamples(method string, samples, def int) error {
	if samples < 0 {
		return fmt.Errorf("gradcam.%s: Samples=%d is negative; it is how many passes each channel gets (0 means the default, %d)", method, samples, def)
	}
	return nil
}

// defaultTo is v, or def when v is 0.
func defaultTo(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
