package gradcam

import "fmt"

// Blank reports whether the map of image n and target k is blank: zero
// everywhere after the ReLU because every raw value, at every layer, is
// zero or negative (for the CAM family: every position's weighted sum of
// channels is negative). Its normalised map is then all zeros, which shows
// nothing about where the evidence was. Another layer, a method with
// per-position weights (HiResCAM, LayerCAM) or the signed map
// ([Builder.ReLU](false)) usually says more.
//
// Blank looks at the raw maps, whatever [Builder.ReLU] was: with the ReLU
// off the signed map is shown, but it is still all negative evidence.
func (r *Result) Blank(n, k int) (bool, error) {
	i, err := r.target("Blank", n, k)
	if err != nil {
		return false, err
	}
	if len(r.Raw) == 0 {
		return false, fmt.Errorf("gradcam.Result.Blank: the result has no raw maps (Raw is empty): the result is inconsistent (made by hand?)")
	}
	for l, lm := range r.Raw {
		m, err := mapOf("Blank", fmt.Sprintf("Raw[%d]", l), lm.Width, lm.Height, lm.Values, i)
		if err != nil {
			return false, err
		}
		for _, v := range m.Values {
			if v > 0 || v != v { // A NaN is not blank: it is an error elsewhere.
				return false, nil
			}
		}
	}
	return true, nil
}
