package models

import (
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// Node names as torch.onnx 1.13 writes them for torchvision's ResNet-18,
// VGG-16, Inception-v3 and ViT-B/16.
var torchNodes = []string{
	"/conv1/Conv", "/relu/Relu",
	"/layer4/layer4.0/conv1/Conv", "/layer4/layer4.0/relu_1/Relu",
	"/layer4/layer4.1/conv1/Conv", "/layer4/layer4.1/relu/Relu", "/layer4/layer4.1/Add", "/layer4/layer4.1/relu_1/Relu",
	"/features/features.28/Conv", "/features/features.29/Relu", "/features/features.30/MaxPool",
	"/Mixed_7c/branch1x1/conv/Conv", "/Mixed_7c/Concat",
	"/encoder/layers/encoder_layer_10/Add_1",
	"/encoder/layers/encoder_layer_11/ln_1/Add_1", "/encoder/layers/encoder_layer_11/self_attention/MatMul",
	"/encoder/layers/encoder_layer_11/Add_1", "/encoder/ln/Add_1",
	"/avgpool/GlobalAveragePool", "/Flatten", "/fc/Gemm",
}

func torchLayers() []Layer {
	layers := make([]Layer, len(torchNodes))
	for i, n := range torchNodes {
		layers[i] = Layer{Name: n + "_output_0", Module: modulePath(n), Shape: shapes.Make(dtypes.Float32, 1, 8, 7, 7)}
	}
	return layers
}

func TestModulePathFromTorchNodeNames(t *testing.T) {
	for node, want := range map[string]string{
		"/layer4/layer4.1/relu_1/Relu":                "layer4.1.relu_1",
		"/features/features.29/Relu":                  "features.29",
		"/Mixed_7c/branch1x1/conv/Conv":               "Mixed_7c.branch1x1.conv",
		"/encoder/layers/encoder_layer_11/ln_1/Add_1": "encoder.layers.encoder_layer_11.ln_1",
		"/features/features.1/features.1.0/attn/Pad":  "features.1.0.attn",
		"/Flatten":                   "",
		"Relu_23":                    "", // Older exporters: no scopes.
		"resnetv22_stage4_conv0_fwd": "",
		"/classifier/classifier.0/LayerNormalization":    "classifier.0",
		"/features/features.7/features.7.2/block/Conv_1": "features.7.2.block",
		"/layer2/layer2.0/downsample/downsample.0/Conv":  "layer2.0.downsample.0",
	} {
		if got := modulePath(node); got != want {
			t.Errorf("modulePath(%q) = %q, want %q", node, got, want)
		}
	}
}

// A module path names its last node's output, whatever way PyTorch users
// write it; a module called twice (relu, relu_1) is found by its own name.
func TestModuleLayerResolvesPyTorchPaths(t *testing.T) {
	layers := torchLayers()
	for query, want := range map[string]string{
		"layer4":                          "/layer4/layer4.1/relu_1/Relu",
		"layer4.0":                        "/layer4/layer4.0/relu_1/Relu",
		"model.layer4":                    "/layer4/layer4.1/relu_1/Relu",
		"layer4[-1]":                      "/layer4/layer4.1/relu_1/Relu",
		"layer4[0].relu":                  "/layer4/layer4.0/relu_1/Relu",
		"layer4.1.relu":                   "/layer4/layer4.1/relu_1/Relu",
		"features.29":                     "/features/features.29/Relu",
		"features[-1]":                    "/features/features.30/MaxPool",
		"model.features[-2]":              "/features/features.29/Relu",
		"Mixed_7c":                        "/Mixed_7c/Concat",
		"encoder.layers[-1].ln_1":         "/encoder/layers/encoder_layer_11/ln_1/Add_1",
		"model.encoder.layers[-1]":        "/encoder/layers/encoder_layer_11/Add_1",
		"encoder.layers.encoder_layer_10": "/encoder/layers/encoder_layer_10/Add_1",
		"fc":                              "/fc/Gemm",
	} {
		i, err := moduleLayer(layers, query)
		if err != nil || i < 0 || layers[i].Name != want+"_output_0" {
			name := ""
			if i >= 0 {
				name = layers[i].Name
			}
			t.Errorf("moduleLayer(%q) = %q, %v; want %s_output_0", query, name, err, want)
		}
	}
	for query, want := range map[string]string{
		"layer5":       "",
		"layer":        "", // A prefix of a name is not a module.
		"features[40]": "no index 40",
		"features[x]":  "not an integer",
		"features[-1":  "unclosed",
	} {
		i, err := moduleLayer(layers, query)
		switch {
		case want == "" && (err != nil || i != -1):
			t.Errorf("moduleLayer(%q) = %d, %v; want no layer and no error", query, i, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("moduleLayer(%q) error %v, want one with %q", query, err, want)
		}
	}
}
