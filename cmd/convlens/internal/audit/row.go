// Package audit explains a whole image archive with one model and writes one
// Parquet row per image: `convlens audit` and its Apache Beam pipeline
// (package beamaudit) are built on it.
//
// # Rows
//
// A [Row] holds an image's id and path, its true label when one is given, the
// prediction with its probability and the top K classes, the class explained,
// the map at layer resolution, and for each region (the ground-truth mask
// given by --masks, named "mask", and every --regions NAME=DIR) whether the
// pointing game hit it and the share of the map's energy inside it; the
// faithfulness metrics asked for; and what produced it (the model's SHA-256,
// the method, the layer, the convlens version). An image that cannot be
// explained (undecodable, of the wrong size, or giving non-finite values)
// still gets a row: its Error says why and its results are null.
//
// Pointing and energy are computed exactly as `convlens eval lesions` computes
// them (metrics.PointingHit and metrics.EnergyFraction on the normalised map
// at input size), so an audit of the held-out lesion images written to disk
// gives the same figures.
//
// # The file, written as the run goes on
//
// The Parquet file grows by one row group per flush; see [Appender] for how
// it stays readable and recoverable at every moment.
package audit

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
)

// Row is one image's audit result: one row of the Parquet file. Null
// (nil) fields are results that do not exist: no label was given, or the
// image is an error row, or a region was not given for this image.
type Row struct {
	// ID identifies the image in the archive: its path relative to the
	// --images folder (with forward slashes), or the CSV's id column.
	ID string `parquet:"id"`
	// Path is the file the image was read from, as given.
	Path string `parquet:"path"`
	// Label is the true class index, when the CSV gives one.
	Label *int32 `parquet:"label,optional"`
	// Predicted is the class with the highest logit, Probability its
	// softmax probability.
	Predicted   *int32   `parquet:"predicted,optional"`
	Probability *float64 `parquet:"probability,optional"`
	// PredictedName is the model's label for Predicted ("" without labels).
	PredictedName *string `parquet:"predicted_name,optional"`
	// TopClasses and TopProbabilities are the K most probable classes, best first.
	TopClasses       []int32   `parquet:"top_classes,list"`
	TopProbabilities []float64 `parquet:"top_probabilities,list"`
	// Explained is the class the map explains (the prediction).
	Explained *int32 `parquet:"explained,optional"`
	// Map is the map at the layer's resolution, MapHeight × MapWidth
	// values row-major: the method's raw signed map before the ReLU and
	// the scaling (gradcam.Result.RawMap). Its ReLU, min-max scaled, is the
	// usual Grad-CAM picture at layer resolution.
	MapHeight int32     `parquet:"map_height"`
	MapWidth  int32     `parquet:"map_width"`
	Map       []float32 `parquet:"map,list"`
	// Regions are the pointing game and energy in each region, by name.
	Regions []Region `parquet:"regions,list"`
	// ROADGap is the image's ROAD score: the mean over the percentiles of
	// the score with the least relevant pixels removed minus with the most
	// relevant removed (higher is more faithful); Drop is its drop in
	// confidence, in percent, when multiplied by its map (lower is more
	// faithful). Null when not asked for (--metrics).
	ROADGap *float64 `parquet:"road_gap,optional"`
	Drop    *float64 `parquet:"drop,optional"`
	// What produced the row.
	ModelSHA256 string `parquet:"model_sha256"`
	Method      string `parquet:"method"`
	Layer       string `parquet:"layer"`
	Version     string `parquet:"convlens_version"`
	// Error says why the image has no results; nil when it has.
	Error *string `parquet:"error,optional"`
}

// Region is the localisation of a map against one region of the image (a
// mask: its non-zero pixels).
type Region struct {
	// Name is "mask" for the --masks ground truth, else the --regions name.
	Name string `parquet:"name"`
	// Present is whether the image has this region: its mask file exists
	// and marks at least one pixel. Without it the figures are null.
	Present bool `parquet:"present"`
	// PointingHit is whether the map's largest value lies inside.
	PointingHit *bool `parquet:"pointing_hit,optional"`
	// EnergyInside is the share of the map's energy inside, in [0, 1].
	EnergyInside *float64 `parquet:"energy_inside,optional"`
}

// Region returns the row's region of that name, or nil.
func (r *Row) Region(name string) *Region {
	for i := range r.Regions {
		if r.Regions[i].Name == name {
			return &r.Regions[i]
		}
	}
	return nil
}

// OK reports whether the row has results (it is not an error row).
func (r *Row) OK() bool { return r.Error == nil }

// MaskRegion is the name of the region the --masks ground truth is measured as.
const MaskRegion = "mask"

// Metric names for --metrics.
const (
	MetricROAD = "road"
	MetricDrop = "drop"
)

// Metrics are the faithfulness metrics an audit can compute per image.
var Metrics = []string{MetricROAD, MetricDrop}

// ParseMetrics checks a --metrics list: known names, each once.
func ParseMetrics(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		if !slices.Contains(Metrics, n) {
			return nil, fmt.Errorf("unknown metric %q; known: %s", n, strings.Join(Metrics, ", "))
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("metric %q given twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// Version is the convlens version rows record: the main module's version
// when the binary was built from a tagged module, else "devel".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Identity is what a results file was made with; a run that appends to an
// existing file must have the same (see [CheckIdentity]).
type Identity struct {
	ModelSHA256, Method, Layer string
}

// ErrMismatch is wrapped by the error that refuses to append to a file made
// with another model, method or layer.
var ErrMismatch = errors.New("results file made with other settings")

// CheckIdentity compares the identity of an existing file with a run's.
func CheckIdentity(file, run Identity) error {
	var diffs []string
	if file.ModelSHA256 != run.ModelSHA256 {
		diffs = append(diffs, fmt.Sprintf("model SHA-256 %.12s…, not %.12s…", file.ModelSHA256, run.ModelSHA256))
	}
	if file.Method != run.Method {
		diffs = append(diffs, fmt.Sprintf("method %s, not %s", file.Method, run.Method))
	}
	if file.Layer != run.Layer {
		diffs = append(diffs, fmt.Sprintf("layer %s, not %s", file.Layer, run.Layer))
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: it holds results of %s; give another --out, or the same model, method and layer to resume it", ErrMismatch, strings.Join(diffs, ", "))
}
