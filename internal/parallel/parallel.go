// Package parallel runs independent steps of a loop on every core.
package parallel

import (
	"runtime"
	"sync"
)

// For runs fn(0), ..., fn(n-1) on up to GOMAXPROCS goroutines and returns
// when all are done. The calls must not depend on each other's order.
func For(n int, fn func(i int)) {
	ForN(n, runtime.GOMAXPROCS(0), fn)
}

// ForN is For on up to workers goroutines (at least one).
func ForN(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(n, max(workers, 1)) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
