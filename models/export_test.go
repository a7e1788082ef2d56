package models

// CompiledGraphs counts the executables of r that hold a compiled graph, for
// the external tests of the runner's cache.
func CompiledGraphs(r *Runner) (n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.execs {
		e.mu.RLock()
		if e.exec != nil {
			n++
		}
		e.mu.RUnlock()
	}
	return n
}
