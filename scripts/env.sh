# Sourced by every build path: the Go toolchain and build settings convlens needs.
# GoMLX v0.28 needs Go >= 1.27; the go command fetches this toolchain itself.
export GOTOOLCHAIN=go1.27.3
# The pure-Go backend's SIMD matrix multiply (about 14x faster) is behind this experiment.
export GOEXPERIMENT=simd
