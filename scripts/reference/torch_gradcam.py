#!/usr/bin/python3
"""PyTorch side of convlens' benchmark (go run ./bench): a persistent worker
that computes Grad-CAM the way pytorch-grad-cam 1.5 does, on command.

    /usr/bin/python3 scripts/reference/torch_gradcam.py --onnx DIR/NAME.onnx --model NAME \\
        --input INPUT.npy --batch B [--layer early|last] [--threads 2] [--check-logits LOGITS.npy]

Needs Debian's python3-torch (1.13), python3-torchvision (0.14), python3-onnx
and python3-opencv.

Model: the torchvision architecture NAME, its weights read from the ONNX file's
initialisers, so that both sides of the benchmark compute the same function.
The export folded every Conv+BatchNorm pair into one Conv with a bias; here the
folded weight goes into the Conv, and the folded bias into its BatchNorm, which
is set to the identity plus that bias (weight 1, mean 0, variance 1-eps). The
network keeps torchvision's modules and forward() as a pytorch-grad-cam user
has them. BatchNorms the export kept (DenseNet's) get their four tensors. Every
initialiser must be used and every parameter and buffer set, or the worker
fails; with --check-logits the logits of the first image(s) of the input are
compared with the exporter's (the original PyTorch model's).

Grad-CAM, as pytorch-grad-cam's GradCAM (BaseCAM + ActivationsAndGradients):
a forward hook on the target module keeps its output (detached, on CPU) and
registers a tensor hook that keeps its gradient; forward; model.zero_grad();
the target score sum_i logits[i, argmax_i] is backpropagated (retain_graph,
parameters requiring grad, as there); weights = spatial mean of the gradient,
cam = ReLU(sum_k w_k A_k) in NumPy; per image min-max, cv2.resize to 224x224;
then the multi-layer aggregation step (ReLU, mean over layers, min-max again).

Target modules (with --layer last, the default: the "last" conv block of export_torchvision.py, whose ONNX node
output convlens explains): resnet18 layer4[1]; vgg11 features[19];
mobilenet_v2 features[18]; efficientnet_b0 features[8]; densenet121 the ReLU
that DenseNet.forward applies functionally after features (not a module: the
model is wrapped so that it is one, same function). With --layer early, the
"early" layer: resnet18 layer1; vgg11 features[4]; mobilenet_v2 features[3];
efficientnet_b0 features[2]; densenet121 features.denseblock1.

Score-CAM, as pytorch-grad-cam's ScoreCAM: under no_grad, the layer's
activations upsampled bilinearly (align_corners, UpsamplingBilinear2d) to the
input size, each channel min-max normalised (+1e-8), the input masked by each,
the masked inputs run 16 at a time (its BATCH_SIZE), the target logit of each
as the channel's score, weights = softmax over channels, then as Grad-CAM.

Integrated Gradients, the way captum's IntegratedGradients runs with
internal_batch_size = steps: all steps' points in one batch, one backward of the
summed target logits; midpoint rule alpha_s = (s + 1/2)/S from a zero baseline
(convlens' IntegratedGradients); map = sum over channels of x * mean gradient.

Protocol, one line each way, on stdin/stdout:
    gradcam          -> "ok SECONDS"        one timed Grad-CAM of the batch
    scorecam         -> "ok SECONDS"        one timed Score-CAM of the batch
    ig STEPS         -> "ok SECONDS"        one timed Integrated Gradients
    save PATH        -> "ok C1,C2,..."      writes the last maps [B,224,224]
                                             (float32 .npy), returns the classes
    quit             -> exits
On start the worker prints "ready INFO". A failure prints "err MESSAGE".
"""

import argparse
import sys
import time

import cv2
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

SIZE = 224
EPS = 1e-7

TARGETS = {
    "resnet18": "layer4.1",
    "vgg11": "features.19",
    "mobilenet_v2": "features.18",
    "efficientnet_b0": "features.8",
    "densenet121": "features.relu5",  # added by DenseNetReLU below
}

# The "early" layers of export_torchvision.py: the module whose output is that
# ONNX node's.
EARLY = {
    "resnet18": "layer1",
    "vgg11": "features.4",
    "mobilenet_v2": "features.3",
    "efficientnet_b0": "features.2",
    "densenet121": "features.denseblock1",
}


class DenseNetReLU(nn.Module):
    """torchvision's DenseNet with its functional final ReLU as a module."""

    def __init__(self, m):
        super().__init__()
        m.features.add_module("relu5", nn.ReLU())
        self.features = m.features
        self.classifier = m.classifier

    def forward(self, x):
        out = self.features(x)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(torch.flatten(out, 1))


# ---------------------------------------------------------------------------
# Weights from the ONNX initialisers.


def onnx_values(graph):
    """Name -> numpy array for initialisers, Constants and Identity of them."""
    vals = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    vals[n.output[0]] = numpy_helper.to_array(a.t)
        elif n.op_type == "Identity" and n.input[0] in vals:
            vals[n.output[0]] = vals[n.input[0]]
    return vals


def module_path(node_name):
    """Module path of an ONNX node named by torch 1.13's exporter.

    "/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1": each scope component
    is a child name, prefixed by its parent component when the parent is a
    container indexed by number ("features.1", "conv.0.0").
    """
    parts = node_name.strip("/").split("/")[:-1]
    path, prev = [], None
    for p in parts:
        if prev is not None and p.startswith(prev + "."):
            path.append(p[len(prev) + 1:])
        else:
            path.append(p)
        prev = p
    return ".".join(path)


def conv_to_bn(model):
    """Maps each Conv2d module to the BatchNorm2d fed by its output, if any."""
    outs, pairs, hooks = [], {}, []  # outs keeps the tensors alive: ids are not reused

    def conv_hook(name):
        return lambda mod, inp, out: outs.append((name, out))

    def bn_hook(name):
        def hook(mod, inp, out):
            for conv, t in outs:
                if t is inp[0]:
                    pairs[conv] = name
        return hook

    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook(name)))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(bn_hook(name)))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return pairs


def load_from_onnx(model, path):
    mp = onnx.load(path)
    vals = onnx_values(mp.graph)
    used = set()
    assigned = set()
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    params.update(dict(model.named_buffers()))
    pairs = conv_to_bn(model)

    def get(name):
        used.add(name)
        return torch.from_numpy(np.array(vals[name], dtype=np.float32))

    def setp(full, value):
        t = params[full]
        if tuple(t.shape) != tuple(value.shape):
            raise ValueError(f"{full}: ONNX shape {tuple(value.shape)}, module {tuple(t.shape)}")
        with torch.no_grad():
            t.copy_(value)
        assigned.add(full)

    for n in mp.graph.node:
        if n.op_type not in ("Conv", "Gemm", "BatchNormalization"):
            continue
        path = module_path(n.name)
        if path not in modules:
            raise ValueError(f"ONNX node {n.name}: no module {path!r}")
        m = modules[path]
        if n.op_type == "Conv":
            assert isinstance(m, nn.Conv2d), (n.name, type(m))
            setp(path + ".weight", get(n.input[1]))
            if len(n.input) > 2 and n.input[2]:
                b = get(n.input[2])
                if m.bias is not None:
                    setp(path + ".bias", b)
                else:
                    bn = pairs.get(path)
                    if bn is None:
                        raise ValueError(f"{n.name}: a folded bias but no BatchNorm after {path}")
                    eps = modules[bn].eps
                    setp(bn + ".weight", torch.ones_like(b))
                    setp(bn + ".bias", b)
                    setp(bn + ".running_mean", torch.zeros_like(b))
                    setp(bn + ".running_var", torch.full_like(b, 1 - eps))
        elif n.op_type == "Gemm":
            assert isinstance(m, nn.Linear), (n.name, type(m))
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = get(n.input[1])
            if not attrs.get("transB", 0):
                w = w.t()
            setp(path + ".weight", w)
            setp(path + ".bias", get(n.input[2]))
        else:
            assert isinstance(m, nn.BatchNorm2d), (n.name, type(m))
            for inp, field in zip(n.input[1:], ("weight", "bias", "running_mean", "running_var")):
                setp(f"{path}.{field}", get(inp))
    unused = {t.name for t in mp.graph.initializer} - used
    # Identity-shared initialisers count as used through their alias.
    for n in mp.graph.node:
        if n.op_type == "Identity" and n.output[0] in used:
            unused.discard(n.input[0])
    missing = [k for k in params if k not in assigned and not k.endswith("num_batches_tracked")]
    if unused or missing:
        raise ValueError(f"weights not matched: unused ONNX initialisers {sorted(unused)[:5]}, "
                         f"unset parameters {missing[:5]}")
    return len(assigned)


def build(name, onnx_path):
    model = getattr(torchvision.models, name)(weights=None)
    if name == "densenet121":
        model = DenseNetReLU(model)
    n = load_from_onnx(model, onnx_path)
    model.eval()
    return model, n


# ---------------------------------------------------------------------------
# Grad-CAM as pytorch-grad-cam computes it.


class GradCAM:
    def __init__(self, model, target):
        self.model = model
        self.activations, self.gradients = [], []
        target.register_forward_hook(self.save_activation)
        target.register_forward_hook(self.save_gradient)
        self.maps = None
        self.classes = None

    def save_activation(self, module, inp, output):
        self.activations.append(output.cpu().detach())

    def save_gradient(self, module, inp, output):
        if not hasattr(output, "requires_grad") or not output.requires_grad:
            return

        def store(grad):
            self.gradients = [grad.cpu().detach()] + self.gradients

        output.register_hook(store)

    @staticmethod
    def scale(cam, target_size=None):
        result = []
        for img in cam:
            img = img - np.min(img)
            img = img / (EPS + np.max(img))
            if target_size is not None:
                img = cv2.resize(img, target_size)
            result.append(img)
        return np.float32(result)

    def __call__(self, x):
        self.activations, self.gradients = [], []
        outputs = self.model(x)
        classes = np.argmax(outputs.cpu().data.numpy(), axis=-1)
        self.model.zero_grad()
        loss = sum([out[c] for c, out in zip(classes, outputs)])
        loss.backward(retain_graph=True)
        acts = self.activations[0].cpu().data.numpy()
        grads = self.gradients[0].cpu().data.numpy()
        self.finish(x, classes, acts, np.mean(grads, axis=(2, 3)))
        return self.maps

    def score_cam(self, x, batch_size=16):
        self.activations, self.gradients = [], []
        outputs = self.model(x)
        classes = np.argmax(outputs.cpu().data.numpy(), axis=-1)
        acts = self.activations[0].cpu().data.numpy()
        with torch.no_grad():
            up = nn.UpsamplingBilinear2d(size=x.shape[-2:])(torch.from_numpy(acts))
            flat = up.view(up.size(0), up.size(1), -1)
            maxs = flat.max(dim=-1)[0][:, :, None, None]
            mins = flat.min(dim=-1)[0][:, :, None, None]
            up = (up - mins) / (maxs - mins + 1e-8)
            masked = x[:, None, :, :] * up[:, :, None, :, :]
            scores = []
            for c, images in zip(classes, masked):
                for i in range(0, images.size(0), batch_size):
                    scores.extend(float(o[c]) for o in self.model(images[i:i + batch_size]))
            scores = torch.Tensor(scores).view(acts.shape[0], acts.shape[1])
            weights = torch.nn.Softmax(dim=-1)(scores).numpy()
        self.finish(x, classes, acts, weights)
        return self.maps

    def finish(self, x, classes, acts, weights):
        cam = (weights[:, :, None, None] * acts).sum(axis=1)
        cam = np.maximum(cam, 0)
        cam = self.scale(cam, (x.shape[-1], x.shape[-2]))[:, None, :]
        # aggregate_multi_layer, run for one layer too.
        cam = np.maximum(np.concatenate([cam], axis=1), 0)
        self.maps = self.scale(np.mean(cam, axis=1))
        self.classes = classes


def integrated_gradients(model, x, steps):
    """Per image: all steps' points in one batch, one backward."""
    maps = []
    for image in x:
        with torch.no_grad():
            c = int(model(image[None]).argmax())
        alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
        points = (alphas[:, None, None, None] * image[None]).requires_grad_(True)
        model.zero_grad()
        model(points)[:, c].sum().backward()
        maps.append((image * points.grad.mean(dim=0)).sum(dim=0).numpy())
    return np.stack(maps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--model", required=True, choices=sorted(TARGETS))
    ap.add_argument("--input", required=True, help="float32 .npy [N,3,224,224]; tiled to --batch")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layer", choices=("early", "last"), default="last")
    ap.add_argument("--check-logits", help="the exporter's logits of the input's first images")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    model, nparams = build(args.model, args.onnx)
    names = TARGETS if args.layer == "last" else EARLY
    target = dict(model.named_modules())[names[args.model]]
    data = np.load(args.input).astype(np.float32)
    reps = -(-args.batch // data.shape[0])
    x = torch.from_numpy(np.ascontiguousarray(np.concatenate([data] * reps)[:args.batch]))
    info = f"model {args.model} ({nparams} tensors from ONNX) batch {args.batch} " \
           f"threads {torch.get_num_threads()} load {time.perf_counter() - t0:.1f}s"
    if args.check_logits:
        want = np.load(args.check_logits)
        n = min(len(want), len(data))
        with torch.no_grad():
            got = model(torch.from_numpy(data[:n])).numpy()
        err = float(np.max(np.abs(got - want[:n])) / np.max(np.abs(want[:n])))
        if err > 1e-3:
            print(f"err logits differ from the exporter's: relative {err:.1e}", flush=True)
            sys.exit(1)
        info += f" logits-vs-export {err:.1e}"
    cam = GradCAM(model, target)
    print("ready " + info, flush=True)

    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        try:
            if cmd[0] == "gradcam":
                t = time.perf_counter()
                cam(x)
                print(f"ok {time.perf_counter() - t:.6f}", flush=True)
            elif cmd[0] == "scorecam":
                t = time.perf_counter()
                cam.score_cam(x)
                print(f"ok {time.perf_counter() - t:.6f}", flush=True)
            elif cmd[0] == "ig":
                t = time.perf_counter()
                integrated_gradients(model, x, int(cmd[1]))
                print(f"ok {time.perf_counter() - t:.6f}", flush=True)
            elif cmd[0] == "save":
                np.save(cmd[1], cam.maps)
                print("ok " + ",".join(str(int(c)) for c in cam.classes), flush=True)
            elif cmd[0] == "quit":
                return
            else:
                print(f"err unknown command {cmd[0]!r}", flush=True)
        except Exception as e:  # noqa: BLE001 - reported to the driver
            print("err " + repr(e).replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
