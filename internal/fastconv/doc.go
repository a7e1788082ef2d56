// Package fastconv speeds up convolutions on GoMLX's pure-Go backend ("go", package
// github.com/gomlx/compute/gobackend).
//
// That backend runs ConvGeneral as a direct loop nest, at 1–2 GFLOP/s, while its
// DotGeneral (matrix multiplication) has SIMD kernels that run 50–100 GFLOP/s when built
// with GOEXPERIMENT=simd. [Wrap] decorates a backend so that its ConvGeneral is lowered onto
// the backend's own ops instead:
//
//   - Pad applies the padding and the input dilation;
//   - one Gather takes all the windows of the input that the kernel meets (the "im2col"
//     matrix), copying contiguous runs;
//   - one DotGeneral contracts them with the kernel;
//   - Reshape and, only where the layouts require it, Transpose give the output its layout.
//
// The order of every intermediate's axes is planned so that DotGeneral needs no
// transposition of its own and as little data as possible is moved, the way the backend
// moves it fastest: it copies contiguous runs (Gather, Concatenate, and Transposes that
// keep the last axis in place, which are planned on merged axes) much faster than it
// moves single elements (Slice, other Transposes). At batch size 1, the forward pass of
// the usual layouts (NCHW with OIHW kernels, NHWC with HWIO kernels) transposes nothing;
// at larger batches NCHW moves whole rows of H·W. Strided windows are gathered from the
// input split by phase (position modulo the stride), with the innermost phase moved out
// of the way by one tiled transpose (phase.go).
//
// Beneath it, Reverse and Transpose of constants (the weights of convlens' graphs) are
// computed once, when the graph is built, and handed to the backend as constants
// (fold.go): the kernels a backward pass reverses and re-lays out are no longer
// rearranged on every call.
//
// Float constants of [SharedMinBytes] and more (the fully connected weights of VGG and
// AlexNet) are not copied into each graph: every graph takes them as parameters, fed
// from one buffer per backend, or from the very buffer of a tensor moved to the
// backend with Tensor.ToDevice (shared.go).
//
// The decorated backend also lowers pooling (ReduceWindow) onto reductions, broadcasts
// and gathered windows (pool.go), and gives binary ops (Add, Sub, Mul, Div, Max, Min, Pow)
// whose smaller operand the backend would broadcast element by element, such as an NCHW
// bias [1, C, 1, 1] at batch size > 1, an operand it broadcasts by rows instead
// (broadcast.go).
//
// # Covered
//
// Everything that CNN forward and backward passes emit, in float32 and float64:
//
//   - any number of spatial axes (1D, 2D, 3D...), any batch size;
//   - any axis layout: any ConvolveAxesConfig, including the swapped axes of the
//     convolutions that compute gradients;
//   - strides, paddings (including negative ones), kernel dilations;
//   - input dilations: the transposed convolutions of the gradient of strided
//     convolutions with respect to their input. With stride 1 on the dilated axes (as
//     GoMLX emits them), the output is split by phase (position modulo the dilation) into
//     ordinary convolutions of the undilated input with slices of the kernel, whose
//     outputs are interleaved: no multiplication by the inserted zeros. Otherwise the
//     input is zero-interleaved by Pad;
//   - channel groups, depthwise included (feature_group_count), and batch groups
//     (batch_group_count);
//   - kernel gradients, whose "kernel" is the output gradient and whose output is small:
//     windows are then enumerated by output position instead of kernel position.
//
// # Not covered
//
// These go to the wrapped backend's ConvGeneral, unchanged:
//
//   - convolutions with one input and one output channel and fewer than 2¹⁶
//     multiply-adds, for which the backend's direct loop is cheaper than the lowering's
//     ops (GoMLX's gradient of a depthwise convolution is thousands of these);
//   - other dtypes (half precision, integers);
//   - dynamic shapes and empty tensors;
//   - invalid configurations (the wrapped backend reports the error);
//   - convolutions whose im2col matrix would exceed 2²⁶ elements (256 MiB in float32),
//     and those whose windows are so fragmented that Gather would copy fewer than 8
//     contiguous elements at a time and more than 256 Slice ops would be needed instead.
//
// # Use
//
//	backend := fastconv.Wrap(gobackend.GetBackend())
//	exec := graph.MustNewExec(backend, fn) // or model.MustNewExec(backend, store, fn)
//
// The decorated backend shares the wrapped one's buffers and devices, but GoMLX treats it
// as a different backend instance: tensors already on the wrapped backend must be moved
// (Tensor.ToLocal) before use with the decorated one.
package fastconv
