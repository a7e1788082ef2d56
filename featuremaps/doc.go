// Package featuremaps shows what each layer of a convolutional network
// computes: its feature maps for an image, statistics that turn the textbook's
// observations into measurements, and images synthesised to excite a chosen
// channel.
//
// # Feature maps
//
// A convolutional layer's output for one image is a stack of C feature maps
// (channels), each an H×W grid: channel c answers "where in the image is the
// pattern that filter c detects?". [Extract] runs a batch through the model
// once and returns the activations of any set of layers from that single
// forward pass; the name [All] selects every layer with spatial axes:
//
//	runner := models.NewRunner(backend, model)
//	acts, err := featuremaps.Extract(runner, batch, "conv1", "conv2") // or featuremaps.All
//	fm, _ := acts.Layer("conv1")    // [N, C, H, W], channels first for every model
//	m, _ := fm.Channel(0, 5)         // image 0, channel 5, as a heatmap.Map
//
// Values are always channels first ([N, C, H, W]) whatever the model's layout
// (PyTorch/ONNX models are NCHW, GoMLX models usually NHWC; see
// [models.Input]).
//
// # Filter grids
//
// [FeatureMap.Tiles] returns the channels of one image as labelled tiles,
// which display.TileGrid lays out in a near-square grid, each tile normalised
// to [0,1] on its own (so a weak channel is as visible as a strong one:
// compare tiles by pattern, not by brightness) and labelled with its channel
// index; [FeatureMap.TopTiles] keeps only the K most active channels. Large
// layers paginate, 64 tiles a page by default, instead of producing one
// unreadable sheet. This package computes and never draws, so it does not
// import display; the picture is one call more:
//
//	tiles, _ := fm.Tiles(0)
//	pages, _ := display.TileGrid(tiles).Colormap(display.Viridis).Images()
//
// # What the statistics mean
//
// [FeatureMap.Stats] gives, per image and layer: the channel count, the
// spatial size, the mean activation, the top-K channels by mean activation and
// the fraction of blank channels. A channel is blank when its maximum over
// the image is ≤ 0: after a ReLU it is zero everywhere, the pattern it encodes
// is absent from this image. [Activations.Depth] lists the blank fraction and
// mean of every extracted layer from input to output.
//
// Early layers detect edges and colours, which occur everywhere: almost no
// channel is blank and the maps still look like the image, so the layer keeps
// almost all of its information. Deeper layers encode more abstract, rarer
// patterns ("an ear", "fur"), so for a given image more and more channels are
// blank. The depth summary makes that claim a measured curve instead of an
// impression from pictures; display.LayerChart draws it.
//
// # Feature visualisation
//
// The grids show how an image excites the channels. The reverse question,
// "what does channel c respond to?", is answered by activation maximisation
// (distill.pub, "Feature Visualization", Olah et al. 2017): start from random
// noise and follow the gradient of the channel's mean activation with respect
// to the input pixels. [Visualize] does this for any set of channels (or
// single units, "neurons") of one layer, as one batch; [VisualizeLayer] does
// it for every channel of a layer, for a grid:
//
//	opts := featuremaps.DefaultVisOptions()
//	opts.Progress = func(p featuremaps.Progress) { fmt.Printf("\rstep %d/%d", p.Step, p.Steps) }
//	vis, err := featuremaps.VisualizeLayer(runner, "conv2", nil, opts)
//	page, _ := display.ImageGrid(vis.Images()...).Labels(vis.Labels()...).Title(vis.Title()).Image()
//
// Plain gradient ascent finds high-frequency noise that excites the unit
// without looking like anything. Three things from the article make the
// result look like a feature, each a field of [VisOptions]:
//
//   - Robustness transforms: at every step the image is randomly shifted
//     (Jitter), zoomed (Scale) and rotated (Rotate) before the model sees it,
//     so only patterns that work wherever they land survive.
//   - Penalties: L2 keeps pixels near mid-grey, total variation (TV) keeps
//     neighbouring pixels alike.
//   - Parameterisation: with Fourier the optimiser works on the image's
//     spectrum, scaled so that low frequencies move faster; with Decorrelate
//     the colour channels are mixed through ImageNet's colour correlation, so
//     steps follow natural colours. The pixels are the sigmoid of the result,
//     hence always in [0,1].
//
// The optimiser is Adam on the host. Everything random (the starting noise and
// the transforms of every step) is drawn from a generator seeded with
// VisOptions.Seed, so a run is reproducible: the same seed gives the same
// images. Visualization.Initial and Final are the objective before and after,
// measured without transforms.
//
// # Errors
//
// Nothing here panics on bad input: an unknown layer name yields an error
// listing the closest names, a grid of a layer without spatial axes, an image
// index outside the batch and a channel outside the layer are errors too.
package featuremaps
