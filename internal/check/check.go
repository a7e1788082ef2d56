// Package check holds the argument checks that models and display share:
// whether an interface holds a nil, and whether an image can be read whole.
package check

import (
	"errors"
	"fmt"
	"image"
	"reflect"
)

// IsNil reports whether v is nil or holds a nil pointer, map, slice,
// function, channel or interface: an interface that is not nil but whose
// methods would dereference nil.
func IsNil(v any) bool {
	if v == nil {
		return true
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface, reflect.UnsafePointer:
		return r.IsNil()
	}
	return false
}

// Image says what makes img unreadable, if anything, in words that complete
// "the image ...": nil or a nil pointer inside the interface (whose Bounds
// would panic), empty bounds, or corners that
// At cannot read (a pixel buffer shorter than its bounds).
func Image(img image.Image) (err error) {
	if img == nil {
		return errors.New("is nil")
	}
	if IsNil(img) {
		return fmt.Errorf("is a nil %T", img)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("(%T) cannot be read: %v (is its pixel buffer as large as its bounds?)", img, p)
		}
	}()
	b := img.Bounds()
	if b.Empty() {
		return fmt.Errorf("(%T) is empty: its bounds %v hold no pixel", img, b)
	}
	for _, p := range []image.Point{b.Min, {b.Max.X - 1, b.Min.Y}, {b.Min.X, b.Max.Y - 1}, b.Max.Sub(image.Pt(1, 1))} {
		if img.At(p.X, p.Y) == nil {
			return fmt.Errorf("(%T) has no colour at %v", img, p)
		}
	}
	return nil
}
