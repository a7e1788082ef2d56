// Package display turns what a convolutional network computes into pictures
// and pages: heat-map overlays of class activation maps (Grad-CAM),
// side-by-side panels for a batch of images, colour bars, the textbook
// "pixel grid" of a small digit, and interactive charts. It works the same
// from a command-line program (save a PNG or an HTML page) and from a GoNB
// Jupyter notebook (show them inline).
//
// # Maps
//
// What display draws is a [heatmap.Map], the value the gradcam and
// featuremaps packages return: a small two-dimensional field of numbers (a
// CAM, or one channel of a feature map), row-major, row 0 at the top, like an
// image. Package heatmap also normalises and resizes maps; display only
// draws them, and imports nothing of convlens above that floor.
//
// # Colormaps
//
// A Colormap turns a value in [0, 1] into a colour through a 256-entry
// table. Jet is OpenCV's COLORMAP_JET, entry for entry, because the Grad-CAM
// pictures people compare against (pytorch-grad-cam) use it; Viridis and
// Turbo are matplotlib's, and read better in greyscale print and for
// colour-blind readers; Grey is black to white. ColormapByName finds one by
// name for command-line flags.
//
// # Pictures
//
// Pictures are built with small builders: start with a function, set
// options with chained methods, and finish with Image, which returns the
// picture or an error:
//
//	img, err := display.Overlay(photo, cam).Colormap(display.Viridis).Alpha(0.4).Image()
//
// Overlay reproduces pytorch-grad-cam's show_cam_on_image: the map is
// resized to the photo, coloured, blended as alpha*heat + (1-alpha)*photo,
// and brightened so that the largest channel value is 255. Maps are taken
// to be normalised to [0, 1] already, as Grad-CAM's are; for a raw feature
// map set Range(m.MinMax()).
//
// Heatmap gives the coloured map alone, Colorbar its value scale, and Panel
// puts image | heat map | overlay | colour bar in a row under a caption.
// Rows stacks one panel per image of a batch, each with its caption (the
// predicted class and score, say). PixelGrid draws a small greyscale image
// enlarged with every pixel's value written in it: what "an image is a grid
// of numbers" means. All text is dark on white (or black/white by contrast
// on the grey cells of PixelGrid), in the Go Regular font, for print.
//
// # Charts
//
// HeatmapChart, TopKChart and LayerChart build interactive charts with
// Apache ECharts through go-echarts: a map whose cells show position and
// value on hover, the top-k predictions as labelled bars, and per-layer
// quantities (such as the fraction of blank feature maps) against depth,
// with a marker shape and dash per series so that colour is not needed to
// tell them apart. Chart.HTML and Chart.RenderHTML give a whole HTML page;
// Chart.IFrame gives the same page inside an <iframe srcdoc>, which is how a
// notebook should embed it.
//
// By default a chart page loads echarts.min.js from DefaultEChartsURL.
// Without internet access, point the environment variable
// CONVLENS_ECHARTS_JS (EChartsJSEnv) at a local echarts.min.js, or call
// Chart.ScriptFile: the script is then inlined, and the page works offline
// as a single file. The npm package echarts ships it as
// dist/echarts.min.js (for example "npm pack echarts@5.5.1" and unpack).
//
// # Output
//
// SavePNG and SaveHTML write files atomically: a failure leaves no partial
// file behind; every builder's Save does the same. Show, ShowHTML and every
// builder's Show display inline when the
// program runs in a GoNB notebook cell (gonbui.IsNotebook). Elsewhere they
// write a new show-*.png or show-*.html file into the directory named by
// the environment variable CONVLENS_DISPLAY_DIR (DisplayDirEnv) if it is
// set, and otherwise return ErrNotNotebook, which a command-line program
// can test for with errors.Is.
//
// Nothing in this package panics on bad input or prints: every problem is
// returned as an error.
package display
