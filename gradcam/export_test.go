package gradcam

// SideBySideAlways makes the methods that run the model many times per image
// run their calls side by side however short they are, so that tests on
// small models take that path; it returns the undo.
func SideBySideAlways() (undo func()) {
	old := sideBySideMin
	sideBySideMin = 0
	return func() { sideBySideMin = old }
}
