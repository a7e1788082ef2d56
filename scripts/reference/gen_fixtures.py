#!/usr/bin/python3
"""Generates the "tinycnn" Grad-CAM fixtures in testdata/tinycnn/.

Run from anywhere with Debian's interpreter (torch 1.13, torchvision 0.14,
onnx, python3-opencv):

    /usr/bin/python3 scripts/reference/gen_fixtures.py

Everything is seeded and runs on one CPU thread, so re-running it on the same
software versions rewrites the committed files byte for byte (the script
prints the SHA-256 of every file it writes).

The model ("tinycnn", input 3x64x64, 10 classes), torchvision-ResNet style:

    stem:   conv3x3(3->8, pad 1) + BN + ReLU         -> [8,64,64]   (module "relu")
    pool:   maxpool 2x2 stride 2                      -> [8,32,32]
    layer1: one BasicBlock(8->16, stride 2)           -> [16,16,16]
    layer2: one BasicBlock(16->32, stride 2)          -> [32,8,8]
    head:   global average pool, flatten, Linear(32->10)

A BasicBlock is conv3x3(stride s)+BN, relu, conv3x3+BN, plus a downsample
branch conv1x1(stride s)+BN, then relu(sum). As in torchvision it calls its ONE
ReLU module twice; torch.onnx names the two calls ".../relu/Relu" and
".../relu_1/Relu". The activations below are taken from an explicit forward
function that returns the intermediate tensors (no module hooks), so there is
no ambiguity about which call is meant.

Weights: default torch init (seed 0), BatchNorm affine parameters randomised,
BatchNorm running statistics re-estimated on random inputs (reset, momentum
None, 10 train-mode passes of 16 images), then eval(). Exported to ONNX opset
13 (input "input", output "logits", dynamic batch axis); the exporter folds
each Conv+BN into a single Conv node.

Grad-CAM definitions (implemented in scripts/reference/camref.py):

* target score of image i = logits[i, c_i]; the gradient is taken of
  sum_i logits[i, c_i] with respect to the layer activation A [N,K,h,w].
* weights  w[i,k] = mean over (y,x) of dscore/dA[i,k,y,x]       ([N,K])
* raw      raw[i] = sum_k w[i,k] A[i,k]   (signed, no ReLU)     ([N,h,w])
* normalised (pytorch-grad-cam, exactly): ReLU; per image x - min, then
  / (1e-7 + max); cv2.resize INTER_LINEAR (half-pixel centres) to 64x64; then
  pytorch-grad-cam's layer aggregation: ReLU, mean over layers (one layer
  here), and the same per-image min-max again (no resize).        ([N,64,64])
* multi-layer (layers "layer1" and "layer2" together): for each layer ReLU,
  per-image min-max, resize to 64x64 (NO second min-max per layer); stack,
  ReLU, mean over the layers, per-image min-max.                   ([N,64,64])
* top-3: for each image the classes of its 3 highest logits in descending
  order; for each rank r the single-layer normalised map of layer "layer2"
  with target class top3[i, r].                                   ([N,3,64,64])

Targets: "top1" (argmax of each image's logits), "class3" (class 3 for every
image), "classes147" (classes 1, 4, 7 for images 0, 1, 2).

Before writing, the script evaluates the exported ONNX graph with a small
torch interpreter (camref.OnnxTorchRunner), in float32 and in float64, and
checks that the logits, every named node output and every raw Grad-CAM map
computed THROUGH THE ONNX GRAPH match the PyTorch reference (relative error
< 1e-4; measured ~1e-6). The ONNX graph is not bit-identical to the PyTorch
model (Conv+BN folded, weights rounded to float32); in bigger models a
pre-activation within rounding distance of zero can flip sign and move
early-layer maps by 1e-4..1e-2 (see scripts/reference/export_torchvision.py).

testdata/tinycnn/manifest.json lists every file with its shape and meaning.
"""

import hashlib
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import camref  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "..", "testdata", "tinycnn"))
N, SIZE, NUM_CLASSES = 3, 64, 10
INPUT_SEED = 17


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)  # used twice, as in torchvision
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        mid = self.relu(self.bn1(self.conv1(x)))              # ONNX ".../relu/Relu"
        out = self.bn2(self.conv2(mid)) + self.downsample(x)  # ONNX ".../Add"
        out = self.relu(out)                                  # ONNX ".../relu_1/Relu"
        # The first ReLU call's output, kept explicitly (the module is reused,
        # so a forward hook on self.relu could not tell the calls apart).
        self.mid = mid
        return out


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2, 2)
        self.layer1 = nn.Sequential(BasicBlock(8, 16, 2))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, NUM_CLASSES)

    def forward_taps(self, x):
        """Returns (logits, {layer key: activation tensor})."""
        stem = self.relu(self.bn1(self.conv1(x)))
        # Call the stages as modules so that the ONNX exporter sees the module
        # scopes (node names "/layer1/layer1.0/...").
        l1 = self.layer1(self.maxpool(stem))
        l2 = self.layer2(l1)
        l2mid = self.layer2[0].mid
        logits = self.fc(torch.flatten(self.avgpool(l2), 1))
        return logits, {"stem": stem, "layer1": l1, "layer2_mid": l2mid, "layer2": l2}

    def forward(self, x):
        return self.forward_taps(x)[0]


# Layer key -> (ONNX node output name, description). The names were read from
# the exported graph and are asserted below.
LAYERS = {
    "stem": ("/relu/Relu_output_0", "stem ReLU output (before max-pool)"),
    "layer1": ("/layer1/layer1.0/relu_1/Relu_output_0",
               "first stage output: second call of layer1.0's ReLU"),
    "layer2_mid": ("/layer2/layer2.0/relu/Relu_output_0",
                   "inside the last block: FIRST call of layer2.0's reused ReLU"),
    "layer2": ("/layer2/layer2.0/relu_1/Relu_output_0",
               "last stage output: second (last) call of layer2.0's ReLU"),
}
TARGETS = {
    "top1": ("top1", "argmax of each image's logits"),
    "class3": (3, "class 3 for every image"),
    "classes147": ([1, 4, 7], "classes 1, 4, 7 for images 0, 1, 2"),
}
MULTI_LAYERS = ["layer1", "layer2"]
TOP3_LAYER = "layer2"
SAVE_ACTIVATIONS = ["layer1", "layer2_mid", "layer2"]  # stem's would be 393 KB


def make_images(n, gen):
    """Seeded images with some structure: a smooth random 4x4 field (bilinear
    upsampled, std 1.5) plus pixel noise (std 0.5). Pure i.i.d. noise gives
    nearly the same pooled features, hence the same ranking, for every image."""
    low = F.interpolate(torch.randn(n, 3, 4, 4, generator=gen) * 1.5, size=(SIZE, SIZE),
                        mode="bilinear", align_corners=False)
    return low + 0.5 * torch.randn(n, 3, SIZE, SIZE, generator=gen)


def build_model():
    torch.manual_seed(0)
    model = TinyCNN()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    gcal = torch.Generator().manual_seed(2)
    camref.calibrate_batchnorm(model, lambda i: make_images(16, gcal), passes=10)
    # Centre the classifier: the pooled features are ReLU outputs with a large
    # common mean, so with random fc rows one class wins for every image. Make
    # each fc row orthogonal to the mean feature vector (over 64 calibration
    # images), scale the rows so the logits have std ~2 there, and give the
    # bias small random values. Then different images get different rankings.
    with torch.no_grad():
        feats = torch.cat([torch.flatten(model.avgpool(model.forward_taps(
            make_images(16, gcal))[1]["layer2"]), 1) for _ in range(4)])
        mu = feats.mean(0)
        w = model.fc.weight
        w -= (w @ mu)[:, None] * mu[None, :] / (mu @ mu)
        w *= 2.0 / (feats @ w.t()).std()
        model.fc.bias.copy_(0.1 * torch.randn(NUM_CLASSES, generator=g))
    return model


written = []


def save(name, arr, dtype):
    arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
    np.save(os.path.join(OUT, name), arr)
    written.append(name)
    return {"file": name, "shape": list(arr.shape), "dtype": str(arr.dtype)}


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    model = build_model()

    # Seed 17 was picked (by trying seeds 3..19) so that the three images have
    # different top-1 classes and well separated top-4 logits (asserted below).
    x = make_images(N, torch.Generator().manual_seed(INPUT_SEED))
    mp = camref.export_onnx(model, x[:1], os.path.join(OUT, "model.onnx"))
    written.append("model.onnx")
    names = camref.node_output_names(mp)
    for key, (onnx_name, _) in LAYERS.items():
        assert onnx_name in names, (key, onnx_name)

    logits, acts = model.forward_taps(x)
    top4 = torch.topk(logits.detach(), 4, dim=1).values
    assert len(set(logits.argmax(1).tolist())) == N, "top-1 classes should differ"
    assert (top4[:, :-1] - top4[:, 1:]).min() > 0.05, "top-4 logits too close"
    onames = [v[0] for v in LAYERS.values()]
    onnx_env = camref.OnnxTorchRunner(mp).run(x, keep=onames)
    onnx_env64 = camref.OnnxTorchRunner(mp, torch.float64).run(x, keep=onames)
    checks = {"logits": camref.rel_err(onnx_env["logits"].detach(), logits.detach())}
    for key, (onnx_name, _) in LAYERS.items():
        checks["act:" + key] = camref.rel_err(onnx_env[onnx_name].detach(), acts[key].detach())

    manifest = {
        "generator": "scripts/reference/gen_fixtures.py",
        "model": {
            "file": "model.onnx", "opset": 13, "input_name": "input",
            "output_name": "logits", "input_shape": ["batch", 3, SIZE, SIZE],
            "num_classes": NUM_CLASSES,
        },
        "input": save("input.npy", x.numpy(), np.float32),
        "logits": save("logits.npy", logits.detach().numpy(), np.float32),
        "layers": {},
        "targets": {},
        "gradcam": [],
        "normalisation": (
            "single layer: ReLU; per image x-min, /(1e-7+max); cv2.resize INTER_LINEAR "
            "(half-pixel centres) to 64x64; per image x-min, /(1e-7+max) again. "
            "multi-layer: per layer ReLU, min-max, resize (no second min-max); stack; "
            "ReLU; mean over layers; per image min-max."),
        "raw_definition": (
            "raw[i] = sum_k w[i,k] A[i,k], w[i,k] = mean_{y,x} d logits[i,c_i] / d A[i,k,y,x]; "
            "signed, no ReLU"),
    }
    for key, (onnx_name, desc) in LAYERS.items():
        entry = {"onnx_output": onnx_name, "shape": list(acts[key].shape), "description": desc}
        if key in SAVE_ACTIVATIONS:
            entry["activation"] = save(f"act_{key}.npy", acts[key].detach().numpy(), np.float32)
        manifest["layers"][key] = entry

    layer_keys = list(LAYERS)
    raws = {}
    for tkey, (spec, desc) in TARGETS.items():
        classes = camref.class_targets(logits, spec)
        manifest["targets"][tkey] = {
            "description": desc, "classes": classes.tolist(),
            "classes_file": save(f"target_{tkey}.npy", classes.numpy(), np.int64)["file"],
        }
        ref = camref.gradcam_raw(logits, [acts[k] for k in layer_keys], classes)
        # Same Grad-CAM, but through the ONNX graph's node outputs.
        via_onnx = camref.gradcam_raw(
            onnx_env["logits"], [onnx_env[LAYERS[k][0]] for k in layer_keys], classes)
        # And through the ONNX graph evaluated in float64.
        via_onnx64 = camref.gradcam_raw(
            onnx_env64["logits"], [onnx_env64[LAYERS[k][0]] for k in layer_keys], classes)
        for key, (raw, w), (raw_o, _), (raw_64, _) in zip(layer_keys, ref, via_onnx, via_onnx64):
            checks[f"raw:{key}:{tkey}"] = camref.rel_err(raw_o, raw)
            checks[f"raw64:{key}:{tkey}"] = camref.rel_err(raw_64, raw)
            raws[(key, tkey)] = raw
            norm = camref.normalise_single(raw, (SIZE, SIZE))
            manifest["gradcam"].append({
                "layer": key, "onnx_output": LAYERS[key][0], "target": tkey,
                "classes": classes.tolist(),
                "weights": save(f"gradcam_{key}_{tkey}_weights.npy", w, np.float32),
                "raw": save(f"gradcam_{key}_{tkey}_raw.npy", raw, np.float32),
                "normalised": save(f"gradcam_{key}_{tkey}_norm.npy", norm, np.float32),
                "raw_positive_max": [float(v) for v in np.max(raw.reshape(N, -1), axis=1)],
            })

    # Multi-layer aggregation.
    manifest["multilayer"] = []
    for tkey in TARGETS:
        norm = camref.normalise_multi([raws[(k, tkey)] for k in MULTI_LAYERS], (SIZE, SIZE))
        manifest["multilayer"].append({
            "layers": MULTI_LAYERS, "onnx_outputs": [LAYERS[k][0] for k in MULTI_LAYERS],
            "target": tkey, "classes": manifest["targets"][tkey]["classes"],
            "normalised": save(f"multilayer_{'_'.join(MULTI_LAYERS)}_{tkey}_norm.npy",
                               norm, np.float32),
        })

    # Top-3 classes of each image, in descending order of logit.
    top3 = torch.topk(logits.detach(), 3, dim=1).indices  # sorted descending
    maps = np.zeros((N, 3, SIZE, SIZE), np.float32)
    for r in range(3):
        (raw, _), = camref.gradcam_raw(logits, [acts[TOP3_LAYER]], top3[:, r].contiguous())
        maps[:, r] = camref.normalise_single(raw, (SIZE, SIZE))
    manifest["top3"] = {
        "layer": TOP3_LAYER, "onnx_output": LAYERS[TOP3_LAYER][0],
        "classes": top3.tolist(),
        "classes_file": save("top3_classes.npy", top3.numpy(), np.int64)["file"],
        "normalised": save(f"top3_{TOP3_LAYER}_norm.npy", maps, np.float32),
        "description": "maps[i, r] = single-layer normalised map of image i for class classes[i][r]",
    }

    worst = max(checks.values())
    for k, v in checks.items():
        assert v < 1e-4, (k, v)
    manifest["onnx_check_max_rel_err"] = float(f"{worst:.1e}")

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    written.append("manifest.json")

    total = 0
    for name in written:
        p = os.path.join(OUT, name)
        total += os.path.getsize(p)
        with open(p, "rb") as f:
            print(f"{hashlib.sha256(f.read()).hexdigest()[:16]} {os.path.getsize(p):8d} {name}")
    print(f"{len(written)} files, {total} bytes; ONNX ops: {camref.op_histogram(mp)}")
    print(f"logits: {logits.detach().numpy().round(3).tolist()}")
    print(f"top1 {manifest['targets']['top1']['classes']}, top3 {top3.tolist()}")
    print(f"ONNX-graph check, worst relative error: {worst:.2e}")


if __name__ == "__main__":
    main()
