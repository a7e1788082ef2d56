"""Shared helpers for the PyTorch reference generators of convlens.

Used by gen_fixtures.py, gen_methods.py and export_torchvision.py (scripts/reference/).
Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14, onnx,
python3-opencv).

Contents:

* calibrate_batchnorm: re-estimates BatchNorm running statistics of a
  random-weight model on random inputs (see STACK.md, "Random-weight test
  models need calibrated BatchNorm").
* export_onnx: opset-13 export, input "input", output "logits", dynamic batch.
* OnnxTorchRunner: a small interpreter that evaluates an exported ONNX graph
  with torch operators (differentiably). It is used to prove that the ONNX
  node output we name for a layer is the very tensor the PyTorch reference
  hooked: same activation AND same Grad-CAM gradient when computed through
  the ONNX graph itself.
* gradcam_raw / normalise_*: the Grad-CAM formulas, written from their
  definition (see the docstrings), not copied from pytorch-grad-cam.
"""

import io
import json
import re

import cv2
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-7  # pytorch-grad-cam's epsilon in the min-max step.


# ---------------------------------------------------------------------------
# Model preparation.


@torch.no_grad()
def calibrate_batchnorm(model, make_batch, passes=10):
    """Re-estimates every BatchNorm's running statistics.

    Resets the running stats, sets momentum=None (cumulative moving average,
    i.e. the plain mean over the `passes` batches), runs `passes` forward
    passes in train mode on make_batch(i), then puts the model in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(passes):
        model(make_batch(i))
    model.eval()
    return len(bns)


def export_onnx(model, example, path):
    """Exports `model` (eval mode) to ONNX opset 13 and returns the ModelProto.

    Input is named "input", output "logits", axis 0 of both is dynamic
    ("batch"). In eval mode torch 1.13 folds each Conv+BatchNorm pair into one
    Conv node, so a BN output has no node of its own unless the BN does not
    follow a convolution (DenseNet's norm layers after a Concat).
    """
    f = io.BytesIO()
    torch.onnx.export(
        model,
        example,
        f,
        opset_version=13,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    data = f.getvalue()
    with open(path, "wb") as out:
        out.write(data)
    mp = onnx.load_from_string(data)
    onnx.checker.check_model(mp)
    return mp


def node_output_names(mp):
    return [o for n in mp.graph.node for o in n.output]


def op_histogram(mp):
    h = {}
    for n in mp.graph.node:
        h[n.op_type] = h.get(n.op_type, 0) + 1
    return dict(sorted(h.items()))


# ---------------------------------------------------------------------------
# A minimal differentiable ONNX interpreter on torch operators.


def _attrs(node):
    out = {}
    for a in node.attribute:
        out[a.name] = onnx.helper.get_attribute_value(a)
    return out


def _pads_2d(pads):
    # ONNX pads = [top, left, bottom, right]; F.pad wants (left, right, top, bottom).
    t, l, b, r = pads
    return (l, r, t, b)


class OnnxTorchRunner:
    """Evaluates an ONNX graph with torch ops (autograd-friendly).

    run(x, keep) returns a dict name -> tensor with the graph output(s) and the
    node outputs named in `keep` (all when keep is None). Only the operators
    the test models need are implemented; anything else raises.
    """

    def __init__(self, mp, dtype=torch.float32):
        """dtype: the float type the graph is evaluated in (float32 like the
        model, or float64 for a reference free of float32 rounding)."""
        self.mp = mp
        self.dtype = dtype
        self.init = {
            t.name: self._cast(torch.from_numpy(numpy_helper.to_array(t).copy()))
            for t in mp.graph.initializer
        }

    def _cast(self, t):
        return t.to(self.dtype) if t.is_floating_point() else t

    def run(self, x, keep=None):
        env = dict(self.init)
        # The input requires grad so that every node output is differentiable.
        env[self.mp.graph.input[0].name] = self._cast(x.detach().clone()).requires_grad_(True)
        for node in self.mp.graph.node:
            ins = [env[i] if i else None for i in node.input]
            outs = self._op(node, ins)
            for name, v in zip(node.output, outs):
                env[name] = v
        names = set(o.name for o in self.mp.graph.output)
        if keep is None:
            return env
        names |= set(keep)
        return {k: env[k] for k in names}

    def _op(self, node, ins):
        op = node.op_type
        a = _attrs(node)
        if op == "Conv":
            x, w = ins[0], ins[1]
            b = ins[2] if len(ins) > 2 else None
            pads = a.get("pads", [0, 0, 0, 0])
            if pads[0] != pads[2] or pads[1] != pads[3]:
                x = F.pad(x, _pads_2d(pads))
                pads = [0, 0, 0, 0]
            return [F.conv2d(x, w, b, stride=tuple(a.get("strides", [1, 1])),
                             padding=(pads[0], pads[1]),
                             dilation=tuple(a.get("dilations", [1, 1])),
                             groups=a.get("group", 1))]
        if op == "Relu":
            return [F.relu(ins[0])]
        if op == "Clip":
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else None
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else None
            return [torch.clamp(ins[0], None if lo is None else float(lo),
                                None if hi is None else float(hi))]
        if op == "Sigmoid":
            return [torch.sigmoid(ins[0])]
        if op == "Mul":
            return [ins[0] * ins[1]]
        if op == "Add":
            return [ins[0] + ins[1]]
        if op == "MaxPool":
            assert a.get("ceil_mode", 0) == 0
            k = a["kernel_shape"]
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3]
            return [F.max_pool2d(ins[0], k, stride=a.get("strides", [1, 1]),
                                 padding=(pads[0], pads[1]),
                                 dilation=a.get("dilations", [1, 1]))]
        if op == "AveragePool":
            assert a.get("ceil_mode", 0) == 0
            pads = a.get("pads", [0, 0, 0, 0])
            assert pads[0] == pads[2] and pads[1] == pads[3]
            return [F.avg_pool2d(ins[0], a["kernel_shape"], stride=a.get("strides", [1, 1]),
                                 padding=(pads[0], pads[1]),
                                 count_include_pad=bool(a.get("count_include_pad", 0)))]
        if op == "GlobalAveragePool":
            return [ins[0].mean(dim=(2, 3), keepdim=True)]
        if op == "ReduceMean":
            return [ins[0].mean(dim=tuple(a["axes"]), keepdim=bool(a.get("keepdims", 1)))]
        if op == "Flatten":
            ax = a.get("axis", 1)
            return [ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)]
        if op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
            return [y]
        if op == "Concat":
            return [torch.cat(ins, dim=a["axis"])]
        if op == "BatchNormalization":
            x, s, b, m, v = ins
            return [F.batch_norm(x, m, v, s, b, training=False, eps=a.get("epsilon", 1e-5))]
        if op == "Pad":
            assert a.get("mode", b"constant") in (b"constant", "constant")
            pads = [int(v) for v in ins[1].tolist()]
            assert len(pads) == 8 and pads[:2] == [0, 0] and pads[4:6] == [0, 0]
            value = float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
            # ONNX [b0,c0,t,l, b1,c1,b,r] -> F.pad (l, r, t, b).
            return [F.pad(ins[0], (pads[3], pads[7], pads[2], pads[6]), value=value)]
        if op == "Identity" or op == "Dropout":
            return [ins[0]] + ([None] if len(node.output) > 1 else [])
        if op == "Constant":
            return [self._cast(torch.from_numpy(numpy_helper.to_array(a["value"]).copy()))]
        if op == "Shape":
            return [torch.tensor(list(ins[0].shape), dtype=torch.int64)]
        if op == "Gather":
            return [torch.index_select(ins[0], a.get("axis", 0), ins[1].reshape(-1)).reshape(
                list(ins[0].shape[:a.get("axis", 0)]) + list(ins[1].shape)
                + list(ins[0].shape[a.get("axis", 0) + 1:]))]
        if op == "Unsqueeze":
            y = ins[0]
            for ax in sorted(int(v) for v in ins[1].tolist()):
                y = y.unsqueeze(ax)
            return [y]
        if op == "Reshape":
            shape = [int(v) for v in ins[1].tolist()]
            shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return [ins[0].reshape(shape)]
        raise NotImplementedError(f"ONNX op {op} ({node.name})")


# ---------------------------------------------------------------------------
# Grad-CAM.


def class_targets(logits, spec):
    """Class index per image: spec "top1", an int (same class for all), or a list."""
    n = logits.shape[0]
    if spec == "top1":
        return logits.argmax(dim=1).to(torch.int64)
    if isinstance(spec, int):
        return torch.full((n,), spec, dtype=torch.int64)
    assert len(spec) == n
    return torch.tensor(spec, dtype=torch.int64)


def gradcam_raw(logits, acts, classes):
    """Raw signed Grad-CAM maps for each activation in `acts`.

    score = sum_i logits[i, classes[i]] (images are independent in eval mode,
    so this gives each image the gradient of its own score);
    w[i,k] = mean over (y,x) of d score / d A[i,k,y,x];
    raw[i] = sum_k w[i,k] * A[i,k]   (no ReLU).
    Reductions are done in float64 and the results cast to float32.
    Returns a list of (raw [N,h,w] float32, weights [N,K] float32) numpy pairs.
    """
    score = logits.gather(1, classes.view(-1, 1)).sum()
    grads = torch.autograd.grad(score, acts, retain_graph=True)
    out = []
    for A, g in zip(acts, grads):
        A64, g64 = A.detach().double(), g.double()
        w = g64.mean(dim=(2, 3))
        raw = (w[:, :, None, None] * A64).sum(dim=1)
        out.append((raw.float().numpy(), w.float().numpy()))
    return out


def _minmax_resize(cams, size):
    """Per image: x - min, then / (1e-7 + max); optional cv2 bilinear resize.

    Done in float32 numpy like pytorch-grad-cam. size is (height, width);
    cv2.resize takes (width, height) and uses half-pixel centres.
    """
    res = []
    for img in cams:
        img = img - np.min(img)
        img = img / (np.float32(EPS) + np.max(img))
        if size is not None:
            img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        res.append(img)
    return np.asarray(res, dtype=np.float32)


def normalise_multi(raws, size):
    """pytorch-grad-cam's normalisation of one or more layers' raw maps.

    Per layer: ReLU, per-image min-max ((x-min)/(1e-7+max)), cv2.resize
    INTER_LINEAR to `size`. Then the aggregation: stack the layers, ReLU,
    mean over layers, per-image min-max again (no resize). For a single layer
    the aggregation reduces to a second min-max of the resized map.
    raws: list of [N,h,w] float32 arrays. Returns [N,H,W] float32.
    """
    per_layer = [_minmax_resize(np.maximum(r.astype(np.float32), 0), size) for r in raws]
    stacked = np.stack(per_layer, axis=1)  # [N, L, H, W]
    stacked = np.maximum(stacked, 0)
    mean = np.mean(stacked, axis=1)
    return _minmax_resize(mean, None)


def normalise_single(raw, size):
    return normalise_multi([raw], size)


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))


def compact_json(obj):
    """json.dumps(indent=1), with innermost lists of scalars kept on one line."""
    text = json.dumps(obj, indent=1)
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]",
                  text)
    return text + "\n"
