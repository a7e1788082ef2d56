"""Writes testdata/targets/: three small random-weight models exported to ONNX
with PyTorch Grad-CAM references for the targets that are not a class of a
softmax classifier. Used by gradcam/targets_test.go.

Run with Debian's /usr/bin/python3 (torch 1.13). Every model shares one
trunk, conv(3->6, 3x3) ReLU conv(6->8, 3x3, stride 2) ReLU, on 16x16 inputs;
the maps are taken at the second ReLU (8x8) and compared with convlens at the
ONNX node output that the manifest names.

* binary.onnx, a sigmoid binary classifier: one output z. Targets, each a
  score whose gradient makes the Grad-CAM map (w = spatial mean of the
  gradient, raw = sum_k w_k A_k, normalised as pytorch-grad-cam):
  "top1"  the decision the model made: z where z > 0, else -z;
  "class0" -z (the negative decision), "class1" z (the positive one),
  "output0" z (the output itself, as for a regression model),
  "counterfactual_top1" minus the "top1" score.
  The linear layer's bias puts the decision boundary halfway between two
  images, so that half the images have z < 0, none near 0.
* embed.onnx, an embedding model (5 outputs). Target "similarity": the
  cosine similarity of each image's embedding to that of a reference image,
  torch.nn.functional.cosine_similarity (eps 1e-8); the reference embedding
  is stored in the manifest.
* segment.onnx, a segmentation model: a 1x1 conv to 4 classes and a bilinear
  upsampling (align_corners=False, as torchvision's segmentation heads) back
  to 16x16, output [N,4,16,16]. Targets, as pytorch-grad-cam's
  SemanticSegmentationTarget (the class's output summed over a mask):
  "region" class 2 over a fixed mask (region.npy, weights in {0, 1});
  "predicted" class 1 over the pixels where the model's arg-max is class 1.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camref  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "testdata", "targets")
SIZE = 16
N = 6


class Trunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class Head(nn.Module):
    """Pooled features to `outputs` values."""

    def __init__(self, outputs):
        super().__init__()
        self.trunk = Trunk()
        self.fc = nn.Linear(8, outputs)

    def forward(self, x):
        return self.fc(self.trunk(x).mean(dim=(2, 3)))


class Segmenter(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.trunk = Trunk()
        self.classifier = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        y = self.classifier(self.trunk(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def export(model, x, name):
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
    mp = onnx.load(path)
    onnx.checker.check_model(mp)
    relus = [n.output[0] for n in mp.graph.node if n.op_type == "Relu"]
    assert len(relus) == 2, relus
    return relus[1]


def gradcam(model, x, score_fn, module=None):
    """Raw Grad-CAM [N,h,w] at the output of `module` (default the trunk:
    [N,8,8]) for the score score_fn(output) [N]."""
    acts = {}
    h = (module or model.trunk).register_forward_hook(lambda _m, _i, o: acts.__setitem__("a", o))
    out = model(x)
    h.remove()
    a = acts["a"]
    score = score_fn(out)
    g, = torch.autograd.grad(score.sum(), a)
    w = g.double().mean(dim=(2, 3))
    raw = (w[:, :, None, None] * a.detach().double()).sum(dim=1)
    return raw.float().numpy(), score.detach().numpy()


def similarity_score(ref):
    """The score of pytorch-grad-cam's SimilarityToConceptTarget: each output's
    cosine similarity to the reference embedding ref [D]."""
    return lambda o: F.cosine_similarity(o, ref[None, :].expand_as(o), dim=1, eps=1e-8)


def save(name, arr):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(arr, dtype=np.float32))
    return name


def entry(model, x, key, score_fn, classes=None):
    raw, scores = gradcam(model, x, score_fn)
    e = {"target": key, "raw": save(f"{key}_raw.npy", raw),
         "normalised": save(f"{key}_norm.npy", camref.normalise_single(raw, (SIZE, SIZE))),
         "scores": [float(s) for s in scores]}
    if classes is not None:
        e["classes"] = [int(c) for c in classes]
    return e


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    x = torch.rand(N, 3, SIZE, SIZE) * 2 - 1
    ref_image = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    save("input.npy", x.numpy())
    manifest = {"generator": "scripts/reference/gen_targets.py", "input": "input.npy", "size": SIZE}

    # The binary classifier: half the images on each side of the decision.
    binary = Head(1).eval()
    with torch.no_grad():
        binary.fc.weight *= 100  # logits of order 1
        z = binary(x)[:, 0].sort().values
        binary.fc.bias -= (z[N // 2 - 1] + z[N // 2]) / 2  # the decision boundary between two images
        z = binary(x)[:, 0]
    assert (z > 0).any() and (z < 0).any(), z
    layer = export(binary, x[:1], "binary")
    decision = (z > 0).long()
    sign = decision.double() * 2 - 1
    manifest["binary"] = {"model": "binary.onnx", "layer": layer, "z": [float(v) for v in z], "targets": [
        entry(binary, x, "binary_top1", lambda o: o[:, 0] * sign.float(), decision.tolist()),
        entry(binary, x, "binary_class0", lambda o: -o[:, 0], [0] * N),
        entry(binary, x, "binary_class1", lambda o: o[:, 0], [1] * N),
        entry(binary, x, "binary_output0", lambda o: o[:, 0], [0] * N),
        entry(binary, x, "binary_counterfactual_top1", lambda o: -o[:, 0] * sign.float(), decision.tolist()),
    ]}

    embed = Head(5).eval()
    layer = export(embed, x[:1], "embed")
    with torch.no_grad():
        ref = embed(ref_image)[0]
    manifest["embed"] = {"model": "embed.onnx", "layer": layer, "reference": [float(v) for v in ref], "targets": [
        entry(embed, x, "embed_similarity", similarity_score(ref)),
    ]}

    seg = Segmenter().eval()
    layer = export(seg, x[:1], "segment")
    region = torch.zeros(SIZE, SIZE)
    region[4:12, 0:8] = 1
    save("region.npy", region.numpy())
    with torch.no_grad():
        pred = seg(x).argmax(dim=1)
    predicted = (pred == 1).float()
    assert predicted.sum() > 0
    manifest["segment"] = {"model": "segment.onnx", "layer": layer, "region": "region.npy", "targets": [
        entry(seg, x, "segment_region", lambda o: (o[:, 2] * region).sum(dim=(1, 2)), [2] * N),
        entry(seg, x, "segment_predicted", lambda o: (o[:, 1] * predicted).sum(dim=(1, 2)), [1] * N),
    ]}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
