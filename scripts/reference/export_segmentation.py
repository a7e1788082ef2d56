#!/usr/bin/python3
"""Exports torchvision segmentation models with PyTorch Grad-CAM references of a Segment target.

    /usr/bin/python3 scripts/reference/export_segmentation.py --out DIR

Run by gradcam's segmentation test (cmd/convlens/segmentation_test.go, in CI or
with CONVLENS_SEGMENTATION_DIR); the exports are tens to hundreds of MB, so
they are made, never committed. Needs Debian's python3-torch (1.13),
python3-torchvision (0.14), python3-onnx, python3-opencv.

Each model (MODELS below) has seeded random weights (torch.manual_seed(0))
and BatchNorm statistics re-estimated on export_torchvision.py's random
images, and is wrapped so that its output is the tensor torchvision returns
as "out": [N,21,S,S], the classifier's map upsampled bilinearly
(align_corners=False) to the input size S = 128. The batch: the cat and one
seeded random image, as coverage_export.py makes them.

Targets, as pytorch-grad-cam's SemanticSegmentationTarget (the class's
output summed over a mask, here at the module MODELS names, reached through
a forward hook as coverage_export.reference reaches it):
  "predicted": class C over the pixels where the model's arg-max is C, per
               image; C is the class the model predicts most often on image 0.
  "region":    the same class over a fixed rectangle, region.npy (1 inside).
Raw map: w = spatial mean of the gradient, raw = sum_k w_k A_k
(camref.gradcam_raw's definition); normalised as pytorch-grad-cam does
(camref.normalise_single). Each reference is computed twice, by the model in
float32 and in float64, and the JSON records their distance ("spread").

Writes, for each model NAME and opset K: NAME-opsetK.onnx, and once per model
NAME.input.npy, NAME.{predicted,region}.{raw,norm}[64].npy, NAME.json (class,
layer module path and ONNX node output, scores); region.npy once.
"""

import argparse
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camref  # noqa: E402
import coverage_export as cov  # noqa: E402
import export_torchvision as tv  # noqa: E402

SIZE = 128
# Model -> (target module path inside torchvision's model, opsets).
MODELS = {
    "lraspp_mobilenet_v3_large": ("backbone.16", [11, 13, 17]),
    "deeplabv3_mobilenet_v3_large": ("backbone.16", [13]),
    "fcn_resnet50": ("backbone.layer4", [13]),
}


class Out(nn.Module):
    """torchvision's segmentation model with its "out" tensor as the output."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def prepare(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None)
    gcal = torch.Generator().manual_seed(tv.CALIB_SEED)
    camref.calibrate_batchnorm(model, lambda i: tv.make_images(tv.CALIB_BATCH, gcal, SIZE), passes=tv.CALIB_PASSES)
    return Out(model).eval()


def gradcam(model, x, module, score_fn):
    taps = []

    def hook(_, __, out):
        taps.append(out)
        return out.clone()  # in-place ops after the module cannot change the tap

    handle = module.register_forward_hook(hook)
    try:
        out = model(x)
    finally:
        handle.remove()
    a = taps[0]
    scores = score_fn(out)
    g, = torch.autograd.grad(scores.sum(), a)
    w = g.double().mean(dim=(2, 3))
    raw = (w[:, :, None, None] * a.detach().double()).sum(dim=1).float().numpy()
    return out.detach(), raw, scores.detach().numpy()


def save(out_dir, name, arr):
    np.save(os.path.join(out_dir, name), np.ascontiguousarray(arr, dtype=np.float32))
    return name


def export_model(name, out_dir, region):
    path, opsets = MODELS[name]
    model = prepare(name)
    qualified = "model." + path
    x = cov.make_batch(SIZE)
    save(out_dir, f"{name}.input.npy", x.numpy())
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    cls = int(torch.bincount(pred[0].flatten(), minlength=21).argmax())
    info = {"generator": "scripts/reference/export_segmentation.py", "model": name, "size": SIZE,
            "class": cls, "module": qualified, "targets": {}, "opsets": {}}
    model64 = copy.deepcopy(model).double()
    for key in ["predicted", "region"]:
        entry = {}
        for suffix, m, dtype in [("", model, torch.float32), ("64", model64, torch.float64)]:
            def score(o):
                # Each precision finds the class's pixels in its own output.
                mask = (o.argmax(dim=1) == cls).to(dtype).detach() if key == "predicted" else region.to(dtype)
                return (o[:, cls] * mask).sum(dim=(1, 2))
            _, raw, scores = gradcam(m, x.to(dtype), dict(m.named_modules())[qualified], score)
            entry["raw" + suffix] = save(out_dir, f"{name}.{key}.raw{suffix}.npy", raw)
            entry["normalised" + suffix] = save(out_dir, f"{name}.{key}.norm{suffix}.npy",
                                                camref.normalise_single(raw.astype(np.float32), (SIZE, SIZE)))
            entry["scores" + suffix] = [float(s) for s in scores]
        # How far PyTorch's own float32 run is from its float64 one: the
        # spread any float32 evaluation may show (a ReLU within rounding
        # of zero, a pixel whose two best classes tie).
        ref = lambda k: np.load(os.path.join(out_dir, entry[k]))
        entry["spread"] = {"raw": camref.rel_err(ref("raw"), ref("raw64")),
                           "normalised": float(np.max(np.abs(ref("normalised") - ref("normalised64")))),
                           "scores": camref.rel_err(entry["scores"], entry["scores64"])}
        info["targets"][key] = entry
    for opset in opsets:
        stem = f"{name}-opset{opset}"
        mp, complaint = cov.export(model, SIZE, opset, os.path.join(out_dir, stem + ".onnx"))
        found = cov.scope_output(mp, cov.scope_prefix(qualified))
        assert found is not None, (stem, qualified)
        info["opsets"][str(opset)] = {"onnx": stem + ".onnx", "layer": found[1], "checker": complaint}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        f.write(camref.compact_json(info))
    print(name, "class", cls, "layer", qualified, {k: v["layer"] for k, v in info["opsets"].items()}, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    region = torch.zeros(SIZE, SIZE)
    region[32:96, 16:80] = 1
    save(args.out, "region.npy", region.numpy())
    for name in args.models.split(","):
        export_model(name, args.out, region)


if __name__ == "__main__":
    main()
