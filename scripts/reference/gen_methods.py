#!/usr/bin/python3
"""Generates the reference maps of every gradcam method in testdata/methods/.

Run with Debian's interpreter (torch 1.13, python3-opencv, onnx):

    /usr/bin/python3 scripts/reference/gen_methods.py

Every formula is implemented here from its definition in PyTorch/NumPy,
independently of convlens and of pytorch-grad-cam (not installed). The model
is scripts/reference/gen_fixtures.py's "tinycnn", rebuilt with the same seeds; the
script checks that its logits on testdata/tinycnn/input.npy equal the
committed testdata/tinycnn/logits.npy (which come from the committed ONNX
file the Go tests run), so the references belong to that ONNX model.

Notation: A = layer activation [N,C,h,w], g = d score / d A, where the score
of image i is logits[i, c_i] (images are independent, so one backward pass of
the sum gives every image its own gradient). Reductions are in float64.

CAM family (raw signed map at layer resolution; "normalised" is
camref.normalise_single: ReLU, min-max, cv2 bilinear resize to 64x64,
min-max again):
  gradcam              w = mean_ij g; raw = sum_k w_k A_k
  hirescam             raw = sum_k g_k A_k
  gradcam-elementwise  raw = sum_k relu(g_k A_k)
  gradcam++            alpha = g^2 / (2 g^2 + (sum_ij A_k) g^3 + 1e-6), 0 where g == 0;
                       w = sum_ij alpha relu(g); raw = sum_k w_k A_k
  xgradcam             w = sum_ij g A / (sum_ij A + 1e-7); raw = sum_k w_k A_k
  layercam             raw = sum_k relu(g_k) A_k
  eigencam             X = A as [h*w, C], centred per channel; v = first right
                       singular vector (numpy SVD); raw = X v, sign flipped if
                       sum_ij raw * (sum_k A_k) < 0
  eigengradcam         the same with g*A in place of A
  scorecam             U_k = A_k resized to 64x64 (bilinear, align_corners=True),
                       M_k = (U_k - min) / (max - min + 1e-8) per image;
                       s_k = score(x * M_k); w = softmax_k(s); raw = sum_k w_k A_k
  ablationcam          y_k = score with channel k of the layer set to 0;
                       w_k = (y - y_k) / y; raw = sum_k w_k A_k

Input attributions (map at 64x64, "normalised" = ReLU + min-max, as the Go
package does when the map is already at input size):
  saliency             map = max_c |d score / d x|
  smoothgrad           S=4 points x + sigma*eps_s, sigma = 0.15*(max x - min x)
                       per image, eps from the SplitMix64/Box-Muller stream of
                       gradcam.NormalNoise (seed 7, laid out [S,N,3,64,64]);
                       map = max_c |mean_s gradient|
  integratedgradients  16 midpoint steps from baseline 0: alpha_s = (s+0.5)/16;
                       map = sum_c x * mean_s gradient(alpha_s x)
  guidedbackprop       gradient with every ReLU's backward replaced by
                       [x > 0] * relu(grad_out); map = max_c |.|
  guidedgradcam        guidedbackprop map * normalised Grad-CAM map at layer2

The manifest (testdata/methods/manifest.json) lists each reference with its
method, layer, target classes and options.

Mask methods (map at 64x64; "normalised" = ReLU + min-max), written with
their own manifest, testdata/methods/masks.json, by write_masks() (run
`gen_methods.py masks` to write only these, leaving the files above as they are):
  occlusion            Captum's Occlusion: a window x window square (all
                       channels) at starts 0, stride, 2 stride, ... (1 +
                       ceil((64 - window) / stride) per axis, cut at the
                       edge) set to the baseline; map = mean over the
                       windows covering a pixel of score(x) - score(x_p)
  rise                 RISE: mask p from the uniform stream U of
                       gradcam.Uniform (seed), j = p (s^2 + 2) + i: cells
                       U < keep (i < s^2, row-major), shift floor(U c)
                       rows (i = s^2) and columns (i = s^2 + 1), c =
                       ceil(64 / s); grid upsampled to (s+1) c bilinear
                       (align_corners=False), cropped at the shift;
                       map = sum_p softmax(model(x M_p))[class] M_p / (P keep)

Finer-CAM (raw at layer resolution, normalised as the CAM family), in
testdata/methods/finercam.json, written by write_finercam() (also with
`gen_methods.py masks`, as FullGrad below):
  finercam             comparison classes: np.argsort(|logits - logits[c]|)
                       positions 1..compare; p = softmax(logits) (with its
                       gradient); score = sum_i p_i (y_c - alpha y_i) /
                       (sum_i p_i + 1e-9); Grad-CAM of that score

FullGrad (map at 64x64, "normalised" = ReLU + min-max), in
testdata/methods/fullgrad.json, written by write_fullgrad():
  fullgrad             s(t) = per image and channel (t - min) / (max - min
                       + 1e-7), cv2 bilinear resize to 64x64; map =
                       sum_c s(|x dscore/dx|) + sum over the Conv2d with a
                       bias and every BatchNorm2d (bias beta - mean gamma /
                       sqrt(var + eps)) of sum_c s(|bias_c dscore/dout_c|)
"""

import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_fixtures  # noqa: E402  (camref sits in the same folder)
import camref  # noqa: E402

TESTDATA = os.path.normpath(os.path.join(HERE, "..", "..", "testdata"))
OUT = os.path.join(TESTDATA, "methods")
SIZE = gen_fixtures.SIZE
MASK = (1 << 64) - 1


# ---------------------------------------------------------------------------
# The noise stream of gradcam.NormalNoise.

def splitmix64(seed, j):
    """(j+1)-th output of SplitMix64 started at state seed; j is a uint64 array."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (j + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed, j):
    return ((splitmix64(seed, j) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def normal_noise(seed, n):
    i = np.arange(n, dtype=np.uint64)
    u1 = uniform(seed, np.uint64(2) * i)
    u2 = uniform(seed, np.uint64(2) * i + np.uint64(1))
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


# ---------------------------------------------------------------------------
# The model, and running it from a layer on.

def head(model, l2):
    return model.fc(torch.flatten(model.avgpool(l2), 1))


def forward_taps(model, x):
    """(logits, taps): gen_fixtures' taps plus "layer2_conv2", the signed
    output of layer2.0's second convolution (with its BatchNorm, which the
    ONNX export folds into the Conv node), before the residual Add; computed
    here from the block's modules, as BasicBlock.forward does."""
    stem = model.relu(model.bn1(model.conv1(x)))
    l1 = model.layer1(model.maxpool(stem))
    b = model.layer2[0]
    mid = b.relu(b.bn1(b.conv1(l1)))
    conv2 = b.bn2(b.conv2(mid))
    l2 = F.relu(conv2 + b.downsample(l1))
    return head(model, l2), {"layer1": l1, "layer2_mid": mid, "layer2_conv2": conv2, "layer2": l2}


def forward_from(model, x, layer, act):
    """Logits of x computed with the activation of `layer` replaced by act."""
    if layer == "layer2":
        return head(model, act)
    if layer == "layer2_conv2":
        l1 = model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))
        return head(model, F.relu(act + model.layer2[0].downsample(l1)))
    if layer == "layer1":
        return head(model, model.layer2(act))
    raise ValueError(layer)


def scores_of(logits, classes):
    return logits.gather(1, classes.view(-1, 1)).squeeze(1)


def layer_grads(model, x, layer, classes, forward=None):
    logits, acts = (forward or forward_taps)(model, x)
    a = acts[layer]
    g, = torch.autograd.grad(scores_of(logits, classes).sum(), a)
    return a.detach().double(), g.detach().double(), logits.detach()


# ---------------------------------------------------------------------------
# The CAM family.

def first_component(m):
    """m [N,C,h,w] float64 numpy -> projection [N,h,w] with the sign convention."""
    out = []
    gaps = []
    for mi in m:
        c, h, w = mi.shape
        x = mi.reshape(c, -1).T  # [P, C]
        x = x - x.mean(axis=0)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        proj = x @ vt[0]
        if np.sum(proj * mi.sum(axis=0).reshape(-1)) < 0:
            proj = -proj
        out.append(proj.reshape(h, w))
        gaps.append(float(s[1] ** 2 / s[0] ** 2) if len(s) > 1 else 0.0)
    return np.asarray(out), gaps


def cam_raw(method, model, x, layer, classes):
    a, g, logits = layer_grads(model, x, layer, classes)
    info = {}
    if method == "gradcam":
        w = g.mean(dim=(2, 3))
        raw = (w[:, :, None, None] * a).sum(1)
    elif method == "hirescam":
        raw = (g * a).sum(1)
    elif method == "gradcam-elementwise":
        raw = torch.relu(g * a).sum(1)
    elif method == "gradcam++":
        g2, g3 = g ** 2, g ** 3
        sa = a.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + sa * g3 + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        w = (alpha * torch.relu(g)).sum(dim=(2, 3))
        raw = (w[:, :, None, None] * a).sum(1)
    elif method == "xgradcam":
        sa = a.sum(dim=(2, 3), keepdim=True)
        w = (g * a / (sa + 1e-7)).sum(dim=(2, 3))
        raw = (w[:, :, None, None] * a).sum(1)
    elif method == "layercam":
        raw = (torch.relu(g) * a).sum(1)
    elif method in ("eigencam", "eigengradcam"):
        mat = a if method == "eigencam" else g * a
        raw, gaps = first_component(mat.numpy())
        raw = torch.from_numpy(raw)
        info["eigenvalue_ratio_2_to_1"] = [round(v, 4) for v in gaps]
    elif method == "scorecam":
        with torch.no_grad():
            up = F.interpolate(a.float(), size=(SIZE, SIZE), mode="bilinear", align_corners=True)
            lo = up.amin(dim=(2, 3), keepdim=True)
            hi = up.amax(dim=(2, 3), keepdim=True)
            masks = (up - lo) / (hi - lo + 1e-8)
            n, c = masks.shape[:2]
            s = torch.zeros(n, c, dtype=torch.float64)
            for i in range(n):
                xm = x[i:i + 1] * masks[i][:, None]  # [C,3,H,W]
                s[i] = model(xm)[:, classes[i]].double()
            w = torch.softmax(s, dim=1)
        raw = (w[:, :, None, None] * a).sum(1)
    elif method == "ablationcam":
        with torch.no_grad():
            n, c = a.shape[:2]
            y = scores_of(logits, classes).double()
            yk = torch.zeros(n, c, dtype=torch.float64)
            for k in range(c):
                ab = a.float().clone()
                ab[:, k] = 0
                yk[:, k] = scores_of(forward_from(model, x, layer, ab), classes).double()
            w = (y[:, None] - yk) / y[:, None]
        raw = (w[:, :, None, None] * a).sum(1)
    else:
        raise ValueError(method)
    return raw.float().numpy(), info


# ---------------------------------------------------------------------------
# Input attributions.

class GuidedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


class GuidedReLU(nn.Module):
    def forward(self, x):
        return GuidedReLUFn.apply(x)


def guided_grad(model, x, classes):
    """input_grad with every nn.ReLU module swapped for GuidedReLU (and back)."""
    swapped = []
    for mod in model.modules():
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(mod, name, GuidedReLU())
                swapped.append((mod, name, child))
    try:
        return input_grad(model, x, classes)
    finally:
        for mod, name, child in swapped:
            setattr(mod, name, child)


def input_grad(model, xs, classes):
    xs = xs.detach().clone().requires_grad_(True)
    g, = torch.autograd.grad(scores_of(model(xs), classes).sum(), xs)
    return g.double()


def input_map(method, model, x, classes):
    n = x.shape[0]
    if method == "saliency":
        return input_grad(model, x, classes).abs().amax(1)
    if method == "smoothgrad":
        s, sigma, seed = SMOOTHGRAD["samples"], SMOOTHGRAD["sigma"], SMOOTHGRAD["seed"]
        noise = torch.from_numpy(normal_noise(seed, s * x.numel()).reshape(s, *x.shape))
        rng = (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))) * sigma
        pts = (x[None] + rng[None, :, None, None, None] * noise).reshape(s * n, *x.shape[1:])
        g = input_grad(model, pts, classes.repeat(s)).reshape(s, *x.shape).mean(0)
        return g.abs().amax(1)
    if method == "integratedgradients":
        steps = IG["steps"]
        alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
        pts = (alphas[:, None, None, None, None] * x[None]).reshape(steps * n, *x.shape[1:])
        g = input_grad(model, pts, classes.repeat(steps)).reshape(steps, *x.shape).mean(0)
        return (x.double() * g).sum(1)
    if method == "guidedbackprop":
        return guided_grad(model, x, classes).abs().amax(1)
    if method == "guidedgradcam":
        gb = guided_grad(model, x, classes).abs().amax(1)
        raw, _ = cam_raw("gradcam", model, x, "layer2", classes)
        cam = camref.normalise_single(raw, (SIZE, SIZE))
        return gb * torch.from_numpy(cam).double()
    raise ValueError(method)


def minmax_relu(m):
    m = np.maximum(m, 0)
    out = []
    for img in m:
        img = img - img.min()
        out.append(img / (np.float32(camref.EPS) + img.max()))
    return np.asarray(out, dtype=np.float32)


# ---------------------------------------------------------------------------

CAM_METHODS = ["gradcam", "hirescam", "gradcam-elementwise", "gradcam++", "xgradcam",
               "layercam", "eigencam", "eigengradcam", "scorecam", "ablationcam"]
INPUT_METHODS = ["saliency", "smoothgrad", "integratedgradients", "guidedbackprop", "guidedgradcam"]
SMOOTHGRAD = {"samples": 4, "sigma": 0.15, "seed": 7}
IG = {"steps": 16, "baseline": 0.0}
# (layer, target, whether to store the normalised 64x64 maps too). At
# "layer2_conv2" the activation is signed and the gradient varies over
# positions and is not masked where A < 0, so no two methods coincide there.
# At "layer2" the head is linear, g is constant over positions and HiResCAM
# equals Grad-CAM; wherever A >= 0 (post-ReLU layers) or g = 0 where A < 0
# (a ReLU's input), gradcam-elementwise equals LayerCAM.
CASES = [("layer2_conv2", "top1", True), ("layer1", "classes147", False), ("layer2", "top1", False)]
LAYERS = {"layer1": "/layer1/layer1.0/relu_1/Relu_output_0",
          "layer2_conv2": "/layer2/layer2.0/conv2/Conv_output_0",
          "layer2": "/layer2/layer2.0/relu_1/Relu_output_0"}

written = []


def save(name, arr):
    arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
    np.save(os.path.join(OUT, name), arr)
    written.append(name)
    return {"file": name, "shape": list(arr.shape)}


def tiny_model():
    """The tiny CNN rebuilt in torch (gen_fixtures.build_model), eval mode,
    its input and logits, checked against testdata/tinycnn/logits.npy;
    returns (model, x, logits, the fixture's logits, their relative error)."""
    model = gen_fixtures.build_model()
    model.eval()
    x = torch.from_numpy(np.load(os.path.join(TESTDATA, "tinycnn", "input.npy")))
    want = np.load(os.path.join(TESTDATA, "tinycnn", "logits.npy"))
    with torch.no_grad():
        logits = model(x)
    err = camref.rel_err(logits.numpy(), want)
    assert err < 1e-5, f"rebuilt model's logits differ from tinycnn/logits.npy by {err:.2e}"
    return model, x, logits, want, err


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    model, x, logits, want, err = tiny_model()
    man = json.load(open(os.path.join(TESTDATA, "tinycnn", "manifest.json")))
    for k in ("layer1", "layer2"):
        assert LAYERS[k] == man["layers"][k]["onnx_output"], k
    taps_logits, _ = forward_taps(model, x)
    assert camref.rel_err(taps_logits.detach().numpy(), want) < 1e-5
    targets = {"top1": logits.argmax(1), "classes147": torch.tensor([1, 4, 7])}

    manifest = {
        "generator": "scripts/reference/gen_methods.py",
        "model": "../tinycnn/model.onnx", "input": "../tinycnn/input.npy",
        "logits_check_rel_err": float(f"{err:.1e}"),
        "layers": LAYERS,
        "smoothgrad": SMOOTHGRAD, "integratedgradients": IG,
        "cam": [], "input": [],
    }
    for layer, tkey, store_norm in CASES:
        classes = targets[tkey]
        for method in CAM_METHODS:
            raw, info = cam_raw(method, model, x, layer, classes)
            entry = {"method": method, "layer": layer, "target": tkey, "classes": classes.tolist(),
                     "raw": save(f"{method}_{layer}_{tkey}_raw.npy", raw)}
            if store_norm:
                entry["normalised"] = save(f"{method}_{layer}_{tkey}_norm.npy",
                                           camref.normalise_single(raw, (SIZE, SIZE)))
            entry.update(info)
            manifest["cam"].append(entry)
    # One signed map: HiResCAM at layer2_conv2 with the ReLU off, scaled by max |.|
    # before and after the resize (what gradcam does with ReLU(false)).
    raw, _ = cam_raw("hirescam", model, x, "layer2_conv2", targets["top1"])
    signed = []
    for img in raw:
        img = img / (np.float32(camref.EPS) + np.abs(img).max())
        import cv2
        img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        signed.append(img / (np.float32(camref.EPS) + np.abs(img).max()))
    manifest["signed"] = {"method": "hirescam", "layer": "layer2_conv2", "target": "top1",
                          "normalised": save("hirescam_layer2_conv2_top1_signed.npy", np.asarray(signed))}

    classes = targets["top1"]
    for method in INPUT_METHODS:
        m = input_map(method, model, x, classes).float().numpy()
        manifest["input"].append({
            "method": method, "target": "top1", "classes": classes.tolist(),
            "raw_max": [float(v) for v in m.reshape(m.shape[0], -1).max(1)],
            "normalised": save(f"{method}_top1_norm.npy", minmax_relu(m)),
        })
    # Integrated Gradients' completeness, for the record.
    with torch.no_grad():
        base = scores_of(model(torch.zeros_like(x)), classes)
    manifest["integratedgradients"]["score_minus_baseline_score"] = [
        float(v) for v in (scores_of(logits, classes) - base)]

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    written.append("manifest.json")
    write_masks(model, x, targets)
    write_finercam(model, x, targets)
    write_fullgrad(model, x, targets)
    total = 0
    for name in written:
        p = os.path.join(OUT, name)
        total += os.path.getsize(p)
        with open(p, "rb") as f:
            print(f"{hashlib.sha256(f.read()).hexdigest()[:16]} {os.path.getsize(p):8d} {name}")
    print(f"{len(written)} files, {total} bytes; logits check {err:.1e}")


# ---------------------------------------------------------------------------
# Mask methods.

OCCLUSION_CASES = [("top1", {"window": 12, "stride": 10, "baseline": 0.0}),
                   ("classes147", {"window": 16, "stride": 8, "baseline": 0.5})]
RISE_CASES = [("top1", {"masks": 64, "grid": 5, "keep": 0.5, "seed": 3}),
              ("classes147", {"masks": 48, "grid": 7, "keep": 0.3, "seed": 11})]


def occlusion_map(model, x, classes, window, stride, baseline):
    n, _, h, w = x.shape
    with torch.no_grad():
        y = scores_of(model(x), classes).double()
        total = torch.zeros(n, h, w, dtype=torch.float64)
        count = torch.zeros(h, w, dtype=torch.float64)
        starts_y = [i * stride for i in range(1 + int(np.ceil((h - window) / stride)))]
        starts_x = [i * stride for i in range(1 + int(np.ceil((w - window) / stride)))]
        for y0 in starts_y:
            for x0 in starts_x:
                occ = x.clone()
                occ[:, :, y0:y0 + window, x0:x0 + window] = baseline
                diff = y - scores_of(model(occ), classes).double()
                total[:, y0:y0 + window, x0:x0 + window] += diff[:, None, None]
                count[y0:y0 + window, x0:x0 + window] += 1
    return total / count


def rise_masks(h, w, masks, grid, keep, seed):
    s = grid
    ch, cw = -(-h // s), -(-w // s)
    out = np.zeros((masks, h, w), dtype=np.float32)
    for p in range(masks):
        j = np.arange(s * s + 2, dtype=np.uint64) + np.uint64(p * (s * s + 2))
        u = uniform(seed, j)
        cells = (u[:s * s] < keep).astype(np.float32).reshape(1, 1, s, s)
        dy, dx = int(np.floor(u[s * s] * ch)), int(np.floor(u[s * s + 1] * cw))
        up = F.interpolate(torch.from_numpy(cells), size=((s + 1) * ch, (s + 1) * cw),
                           mode="bilinear", align_corners=False)[0, 0].numpy()
        out[p] = up[dy:dy + h, dx:dx + w]
    return out


def rise_map(model, x, classes, masks, grid, keep, seed):
    n, _, h, w = x.shape
    m = torch.from_numpy(rise_masks(h, w, masks, grid, keep, seed))
    sal = torch.zeros(n, h, w, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):
            prob = torch.softmax(model(x[i:i + 1] * m[:, None]), dim=1)[:, classes[i]].double()
            sal[i] = (prob[:, None, None] * m.double()).sum(0) / (masks * keep)
    return sal


def write_masks(model, x, targets):
    manifest = {"generator": "scripts/reference/gen_methods.py (write_masks)",
                "model": "../tinycnn/model.onnx", "input": "../tinycnn/input.npy", "masks": []}
    for method, cases, fn in (("occlusion", OCCLUSION_CASES, occlusion_map), ("rise", RISE_CASES, rise_map)):
        for tkey, opts in cases:
            classes = targets[tkey]
            raw = fn(model, x, classes, **opts).float().numpy()
            manifest["masks"].append({
                "method": method, "target": tkey, "classes": classes.tolist(), "options": opts,
                "raw": save(f"{method}_{tkey}_raw.npy", raw),
                "normalised": save(f"{method}_{tkey}_norm.npy", minmax_relu(raw)),
            })
    with open(os.path.join(OUT, "masks.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    written.append("masks.json")


FINER_CASES = [("layer2_conv2", "top1", {"alpha": 1.0, "compare": 3}, True),
               ("layer1", "classes147", {"alpha": 0.6, "compare": 2}, False)]


def finercam_raw(model, x, layer, classes, alpha, compare, forward=None):
    """Finer-CAM's raw map at `layer`; forward(model, x) -> (logits, taps by
    layer name) gives the activations (default: tinycnn's forward_taps)."""
    logits, acts = (forward or forward_taps)(model, x)
    a = acts[layer]
    ld = logits.detach().numpy()
    prob = torch.softmax(logits, dim=1)
    total = 0
    for i in range(x.shape[0]):
        c = int(classes[i])
        order = np.argsort(np.abs(ld[i] - ld[i, c]), kind="stable")
        assert order[0] == c
        comp = [int(j) for j in order[1:compare + 1]]
        num = sum(prob[i, j] * (logits[i, c] - alpha * logits[i, j]) for j in comp)
        den = sum(prob[i, j] for j in comp)
        total = total + num / (den + 1e-9)
    g, = torch.autograd.grad(total, a)
    a, g = a.detach().double(), g.detach().double()
    w = g.mean(dim=(2, 3))
    return (w[:, :, None, None] * a).sum(1).float().numpy()


def fullgrad_map(model, x, classes):
    """FullGrad as pytorch-grad-cam defines it, from the modules: the layers
    with a bias are the Conv2d with a bias and every BatchNorm2d, whose bias
    is beta - mean gamma / sqrt(var + eps)."""
    layers = [m for m in model.modules()
              if (isinstance(m, nn.Conv2d) and m.bias is not None) or isinstance(m, nn.BatchNorm2d)]
    outs = []

    def keep(_m, _i, o):
        # The model's ReLUs are in place: hand them a copy, so that o stays
        # the layer's output z and its gradient is d score / d z.
        outs.append(o)
        return o.clone()
    hooks = [m.register_forward_hook(keep) for m in layers]
    try:
        xs = x.detach().clone().requires_grad_(True)
        score = scores_of(model(xs), classes).sum()
        grads = torch.autograd.grad(score, [xs] + outs)
    finally:
        for h in hooks:
            h.remove()
    import cv2

    height, width = x.shape[-2:]

    def scale(t):  # [N,C,h,w] numpy: min-max each channel of each image, then resize to the input's size
        t = t - t.min(axis=(2, 3), keepdims=True)
        t = t / (np.float32(1e-7) + t.max(axis=(2, 3), keepdims=True))
        return np.asarray([[cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in img] for img in t],
                          dtype=np.float32)

    total = scale(np.abs(grads[0].numpy() * x.numpy()).astype(np.float32)).sum(1)
    for m, g in zip(layers, grads[1:]):
        if isinstance(m, nn.BatchNorm2d):
            bias = (m.bias - m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps)).detach()
        else:
            bias = m.bias.detach()
        total = total + scale(np.abs(bias.numpy()[None, :, None, None] * g.numpy()).astype(np.float32)).sum(1)
    return total, len(layers)


def write_fullgrad(model, x, targets):
    manifest = {"generator": "scripts/reference/gen_methods.py (write_fullgrad)",
                "model": "../tinycnn/model.onnx", "input": "../tinycnn/input.npy", "fullgrad": []}
    for tkey in ("top1", "classes147"):
        classes = targets[tkey]
        raw, layers = fullgrad_map(model, x, classes)
        manifest["fullgrad"].append({
            "method": "fullgrad", "target": tkey, "classes": classes.tolist(), "bias_layers": layers,
            "raw": save(f"fullgrad_{tkey}_raw.npy", raw),
            "normalised": save(f"fullgrad_{tkey}_norm.npy", minmax_relu(raw)),
        })
    with open(os.path.join(OUT, "fullgrad.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    written.append("fullgrad.json")


def write_finercam(model, x, targets):
    manifest = {"generator": "scripts/reference/gen_methods.py (write_finercam)",
                "model": "../tinycnn/model.onnx", "input": "../tinycnn/input.npy", "layers": LAYERS, "finercam": []}
    for layer, tkey, opts, store_norm in FINER_CASES:
        classes = targets[tkey]
        raw = finercam_raw(model, x, layer, classes, **opts)
        entry = {"method": "finercam", "layer": layer, "target": tkey, "classes": classes.tolist(), "options": opts,
                 "raw": save(f"finercam_{layer}_{tkey}_raw.npy", raw)}
        if store_norm:
            entry["normalised"] = save(f"finercam_{layer}_{tkey}_norm.npy", camref.normalise_single(raw, (SIZE, SIZE)))
        manifest["finercam"].append(entry)
    with open(os.path.join(OUT, "finercam.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    written.append("finercam.json")


def main_masks():
    torch.set_num_threads(1)
    model, x, logits, want, err = tiny_model()
    targets = {"top1": logits.argmax(1), "classes147": torch.tensor([1, 4, 7])}
    write_masks(model, x, targets)
    write_finercam(model, x, targets)
    write_fullgrad(model, x, targets)
    for name in written:
        p = os.path.join(OUT, name)
        with open(p, "rb") as f:
            print(f"{hashlib.sha256(f.read()).hexdigest()[:16]} {os.path.getsize(p):8d} {name}")


if __name__ == "__main__":
    if sys.argv[1:] == ["masks"]:
        main_masks()
    else:
        main()
