// Package catch turns the panics GoMLX raises while building graphs and
// starting backends into errors, so that library calls return them.
package catch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gomlx/exceptions"
)

// Do runs fn and returns its panic as an error that keeps the first line of
// the message (GoMLX appends stack traces), or nil if fn returned.
func Do(fn func()) error {
	e := exceptions.Try(fn)
	if e == nil {
		return nil
	}
	msg := fmt.Sprint(e)
	if err, ok := e.(error); ok {
		msg = err.Error()
	}
	msg, _, _ = strings.Cut(msg, "\n")
	return errors.New(msg)
}
