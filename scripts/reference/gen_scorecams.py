#!/usr/bin/python3
"""Generates the reference maps of Score-CAM's variants in testdata/methods/.

Run with Debian's interpreter (torch 1.13, python3-opencv, onnx):

    /usr/bin/python3 scripts/reference/gen_scorecams.py

Writes testdata/methods/scorecams.json and sscam_*, iscam_*, fasterscorecam_*
.npy files, used by gradcam/scorecams_test.go. The model, the input, the
layers and the targets are gen_methods.py's (tinycnn, checked there against
the committed ONNX file's logits; checked again here).

Each formula is written here in PyTorch from its definition, image by image
and channel by channel, independently of convlens. Shared by all three, as
convlens' Score-CAM (and gen_methods.py's scorecam) defines them:

  U_k   channel k of the layer activation A [C,h,w] of one image, resized to
        64x64 (bilinear, align_corners=True)
  M_k   (U_k - min U_k) / (max U_k - min U_k + 1e-8)
  y(z)  the target class's logit for the input z (the score)
  w     softmax over the channels of the channel scores s; raw = sum_k w_k A_k

  sscam           s_k = mean over S samples of y(x * (M_k + sigma eps_sk)),
                  eps from the SplitMix64/Box-Muller stream of
                  gradcam.NormalNoise (seed), laid out [S,N,C,64,64]: the
                  same noise for the 3 colour channels, not clipped
                  (torch-cam's SSCAM puts the noise in the mask)
  iscam           s_k = (1/S) sum_{i=1..S} y(c_i x * M_k) with the running
                  sum c_i = c_{i-1} + i/S, c_0 = 0 (torch-cam's ISCAM)
  fasterscorecam  the `channels` channels of largest variance over positions
                  (torch.var, unbiased=False) of each image, by torch.topk;
                  w = softmax over those channels' s_k = y(x * M_k);
                  raw = sum over those channels of w_k A_k

"normalised" is camref.normalise_single (ReLU, min-max, cv2 bilinear resize
to 64x64, min-max again), as for gen_methods.py's CAM family.
"""

import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import camref  # noqa: E402
import gen_methods as gm  # noqa: E402  (its model taps, noise stream and save())

SIZE = gm.SIZE

CASES = [
    ("sscam", "layer2_conv2", "top1", {"samples": 4, "sigma": 2.0, "seed": 5}, True),
    ("sscam", "layer1", "classes147", {"samples": 3, "sigma": 0.5, "seed": 11}, False),
    ("iscam", "layer2_conv2", "top1", {"samples": 4}, True),
    ("iscam", "layer1", "classes147", {"samples": 3}, False),
    ("fasterscorecam", "layer2_conv2", "top1", {"channels": 5}, True),
    ("fasterscorecam", "layer1", "classes147", {"channels": 4}, False),
]


def channel_masks(a, size):
    """a [C,h,w] -> M [C,H,W], (H, W) = size, the input's: upsampled
    (align_corners=True), min-max per channel."""
    up = F.interpolate(a[None], size=tuple(size), mode="bilinear", align_corners=True)[0]
    lo = up.amin(dim=(1, 2), keepdim=True)
    hi = up.amax(dim=(1, 2), keepdim=True)
    return (up - lo) / (hi - lo + 1e-8)


def logit(model, xs, c):
    """The class-c logits of a batch of inputs xs, float64."""
    return model(xs)[:, c].double()


def pass_logits(model, count, make, c, batch=1):
    """The class-c logits, float64 [count], of the inputs make(p) [3,H,W] for
    p = 0..count-1, run through the model `batch` at a time (1: one pass
    each, as the tinycnn references are computed)."""
    out = []
    for p0 in range(0, count, batch):
        out.append(logit(model, torch.stack([make(p) for p in range(p0, min(p0 + batch, count))]), c))
    return torch.cat(out)


def channel_means(y, c, samples):
    """The mean score of each channel's passes, y [c*samples] channel-major, as [c]."""
    return y.double().reshape(c, samples).mean(dim=1)


def weigh(a, s, channels=None):
    """raw = sum_k softmax(s)_k A_k over the given channels (all by default)."""
    if channels is None:
        channels = torch.arange(a.shape[0])
    w = torch.softmax(s, dim=0)
    return (w[:, None, None] * a[channels].double()).sum(0)


# Each variant takes `batch`, how many of its passes go through the model at
# once (see pass_logits); pass p of channel k and sample j is p = k S + j.

def sscam(model, x, acts, classes, samples, sigma, seed, batch=1):
    n, c = acts.shape[:2]
    h, w = x.shape[-2:]
    eps = torch.from_numpy(gm.normal_noise(seed, samples * n * c * h * w).reshape(samples, n, c, h, w))
    raws = []
    for i in range(n):
        m = channel_masks(acts[i], x.shape[-2:])
        y = pass_logits(model, c * samples,
                        lambda p: x[i] * (m[p // samples] + sigma * eps[p % samples, i, p // samples]), classes[i], batch)
        raws.append(weigh(acts[i], channel_means(y, c, samples)))
    return torch.stack(raws), {}


def iscam(model, x, acts, classes, samples, batch=1):
    n, c = acts.shape[:2]
    coeffs, coeff = [], 0.0
    for j in range(1, samples + 1):
        coeff += j / samples
        coeffs.append(coeff)
    raws = []
    for i in range(n):
        m = channel_masks(acts[i], x.shape[-2:])
        y = pass_logits(model, c * samples, lambda p: coeffs[p % samples] * (x[i] * m[p // samples]), classes[i], batch)
        raws.append(weigh(acts[i], channel_means(y, c, samples)))
    return torch.stack(raws), {}


def fasterscorecam(model, x, acts, classes, channels, batch=1):
    n = acts.shape[0]
    raws, kept, gaps = [], [], []
    for i in range(n):
        var = acts[i].var(dim=(1, 2), unbiased=False)
        top = torch.topk(var, channels).indices
        order = torch.sort(var, descending=True).values
        gaps.append(float(order[channels - 1] / order[channels]))
        m = channel_masks(acts[i], x.shape[-2:])
        ks = top.tolist()
        s = pass_logits(model, len(ks), lambda p: x[i] * m[ks[p]], classes[i], batch)
        raws.append(weigh(acts[i], s, top))
        kept.append(sorted(top.tolist()))
    # The variance ratio of the last kept channel to the first one left out:
    # its distance from 1 (at least 0.006 here) dwarfs float32 rounding, so
    # the choice does not hang on it.
    return torch.stack(raws), {"kept": kept, "variance_ratio_at_cut": [round(g, 3) for g in gaps]}


METHODS = {"sscam": sscam, "iscam": iscam, "fasterscorecam": fasterscorecam}


def main():
    torch.set_num_threads(1)
    model, x, logits, _, err = gm.tiny_model()
    with torch.no_grad():
        _, acts = gm.forward_taps(model, x)
    targets = {"top1": logits.argmax(1), "classes147": torch.tensor([1, 4, 7])}

    manifest = {"generator": "scripts/reference/gen_scorecams.py",
                "model": "../tinycnn/model.onnx", "input": "../tinycnn/input.npy",
                "layers": gm.LAYERS, "scorecams": []}
    with torch.no_grad():
        for method, layer, tkey, opts, store_norm in CASES:
            classes = targets[tkey]
            raw, info = METHODS[method](model, x, acts[layer], classes, **opts)
            raw = raw.float().numpy()
            entry = {"method": method, "layer": layer, "target": tkey, "classes": classes.tolist(),
                     "options": opts, "raw": gm.save(f"{method}_{layer}_{tkey}_raw.npy", raw)}
            if store_norm:
                entry["normalised"] = gm.save(f"{method}_{layer}_{tkey}_norm.npy",
                                              camref.normalise_single(raw, (SIZE, SIZE)))
            entry.update(info)
            manifest["scorecams"].append(entry)
    with open(os.path.join(gm.OUT, "scorecams.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    gm.written.append("scorecams.json")
    total = 0
    for name in gm.written:
        p = os.path.join(gm.OUT, name)
        total += os.path.getsize(p)
        with open(p, "rb") as f:
            print(f"{hashlib.sha256(f.read()).hexdigest()[:16]} {os.path.getsize(p):8d} {name}")
    print(f"{len(gm.written)} files, {total} bytes; logits check {err:.1e}")


if __name__ == "__main__":
    main()
