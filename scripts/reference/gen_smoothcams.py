#!/usr/bin/python3
"""Reference maps of Smooth Grad-CAM++, KPCA-CAM, eigen_smooth and aug_smooth
on tinycnn, in testdata/methods/smoothcams.json and its .npy files.

Run with Debian's interpreter (torch 1.13, numpy, python3-opencv):

    /usr/bin/python3 scripts/reference/gen_smoothcams.py

The model, its layers, the targets ("top1" chosen on the image itself,
"classes147") and the noise stream are gen_methods.py's (imported from the
same folder); every formula below is written here from its definition in
torch/NumPy, in float64, not from convlens' Go code. A = layer activation
[N,C,h,w] of the image itself, g = d score / d A, score = logits[i, c_i].
"Normalised" maps are camref.normalise_single (ReLU, min-max, cv2 bilinear
resize to 64x64, min-max).

  smoothgradcam++  Smooth Grad-CAM++ (Omeiza et al., 2019): S copies
                   x + std * eps_s, eps the SplitMix64/Box-Muller stream of
                   gradcam.NormalNoise(seed) laid out [S,N,3,64,64] (as
                   SmoothGrad's); g_s the layer gradient at copy s;
                   D_p = mean_s g_s^p (p = 1, 2, 3);
                   alpha = D_2 / (2 D_2 + (sum_ab A) D_3 + 1e-6), 0 where D_2 == 0;
                   w = sum_ij alpha relu(D_1); raw = sum_k w_k A_k
  kpcacam          KPCA-CAM (pytorch-grad-cam's KPCA_CAM): X = A as [h*w, C]
                   centred per channel; kernel matrix K over the positions
                   (sklearn's kernels: sigmoid tanh(gamma x.y + 1), the
                   default; rbf exp(-gamma |x-y|^2); poly (gamma x.y + 1)^3;
                   linear x.y; cosine x.y / (|x| |y|)), gamma = 1/C unless
                   given; Kc = K double-centred; (lam, v) the eigenpair of
                   NumPy's eigh with the algebraically largest eigenvalue
                   (what KernelPCA(n_components=1).fit_transform keeps);
                   raw = v sqrt(lam), sign flipped if
                   sum_ij raw * (sum_k A_k) < 0 (EigenCAM's convention)
  kpcacam non-PSD  the same on a crafted activation [1,8,4,4] (found by
                   gradient ascent from a seeded start) whose sigmoid kernel
                   has a negative eigenvalue larger in magnitude than its
                   largest one, so power iteration on Kc would find the
                   wrong component; the Go test feeds it through a native
                   model whose layer is its input
  eigen_smooth     pytorch-grad-cam's: the map is the first principal
                   component (gen_methods.first_component: SVD, same sign
                   convention) of the per-channel terms instead of their
                   sum: w_k A_k (gradcam, ablationcam, smoothgradcam++),
                   g_k A_k (hirescam)
  aug_smooth       pytorch-grad-cam's forward_augmentation_smoothing with
                   ttach's HorizontalFlip x Multiply(0.9, 1, 1.1), in ttach's
                   order; the classes fixed from the image itself; each
                   copy's raw map flipped back at layer resolution and its
                   normalised map at 64x64; raw and normalised = the means
                   over the 6 copies
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import camref  # noqa: E402
import gen_fixtures  # noqa: E402
import gen_methods as gm  # noqa: E402

SIZE = gen_fixtures.SIZE
written = []


def save(name, arr):
    entry = gm.save(name, arr)
    written.append(name)
    return entry


# ---------------------------------------------------------------------------
# Smooth Grad-CAM++.

def smooth_moments(model, x, layer, classes, samples, std, seed, forward=None):
    """(A of the image itself, [D_1, D_2, D_3]) at layer, float64 torch;
    forward(model, x) returns the logits and the taps (default the tiny CNN's)."""
    forward = forward or gm.forward_taps
    noise = torch.from_numpy(gm.normal_noise(seed, samples * x.numel()).reshape(samples, *x.shape))
    _, taps = forward(model, x)
    a = taps[layer].detach().double()
    d = [torch.zeros_like(a) for _ in range(3)]
    for s in range(samples):
        logits, taps = forward(model, x + std * noise[s])
        g, = torch.autograd.grad(gm.scores_of(logits, classes).sum(), taps[layer])
        g = g.double()
        for p in range(3):
            d[p] += g ** (p + 1)
    return a, [v / samples for v in d]


def smoothgradcampp_weights(a, d1, d2, d3):
    sa = a.sum(dim=(2, 3), keepdim=True)
    alpha = d2 / (2 * d2 + sa * d3 + 1e-6)
    alpha = torch.where(d2 != 0, alpha, torch.zeros_like(alpha))
    return (alpha * torch.relu(d1)).sum(dim=(2, 3))


# ---------------------------------------------------------------------------
# KPCA-CAM.

def kernel_matrix(x, kernel, gamma):
    """sklearn.metrics.pairwise kernels of the rows of x [P,C], coef0 = 1, degree = 3."""
    dot = x @ x.T
    if kernel == "linear":
        return dot
    if kernel == "sigmoid":
        return np.tanh(gamma * dot + 1)
    if kernel == "poly":
        return (gamma * dot + 1) ** 3
    if kernel == "rbf":
        sq = (x * x).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * dot, 0)
        np.fill_diagonal(d2, 0)
        return np.exp(-gamma * d2)
    if kernel == "cosine":
        norm = np.sqrt((x * x).sum(1))
        norm[norm == 0] = 1
        xn = x / norm[:, None]
        return xn @ xn.T
    raise ValueError(kernel)


def kpca(act, kernel="sigmoid", gamma=None):
    """act [N,C,h,w] float64 numpy -> (maps [N,h,w], [(largest, smallest eigenvalue)])."""
    maps, eig = [], []
    for a in act:
        c, h, w = a.shape
        x = a.reshape(c, -1).T
        x = x - x.mean(axis=0)
        k = kernel_matrix(x, kernel, 1.0 / c if gamma is None else gamma)
        p = k.shape[0]
        one = np.full((p, p), 1.0 / p)
        kc = k - one @ k - k @ one + one @ k @ one
        vals, vecs = np.linalg.eigh(kc)  # ascending
        lam, v = vals[-1], vecs[:, -1]
        proj = v * np.sqrt(max(lam, 0.0))
        if np.sum(proj * a.sum(axis=0).reshape(-1)) < 0:
            proj = -proj
        maps.append(proj.reshape(h, w))
        eig.append((float(vals[-1]), float(vals[0])))
    return np.asarray(maps), eig


def sklearn_check(act, kernel, gamma, maps):
    """Max abs difference to sklearn's KernelPCA, up to its sign, or None without sklearn."""
    try:
        from sklearn.decomposition import KernelPCA
    except ImportError:
        return None
    err = 0.0
    for a, m in zip(act, maps):
        x = a.reshape(a.shape[0], -1).T
        x = x - x.mean(axis=0)
        t = KernelPCA(n_components=1, kernel=kernel, gamma=gamma).fit_transform(x)[:, 0]
        if np.dot(t, m.reshape(-1)) < 0:
            t = -t
        err = max(err, float(np.abs(t - m.reshape(-1)).max()))
    return err


def nonpsd_activation():
    """A [1,8,4,4] activation whose double-centred sigmoid kernel (gamma 1/8)
    has |smallest eigenvalue| > largest: gradient ascent on that ratio."""
    torch.manual_seed(0)
    x = (torch.randn(16, 8, dtype=torch.float64) * 2).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    one = torch.full((16, 16), 1.0 / 16, dtype=torch.float64)
    for _ in range(1500):
        xc = x - x.mean(0)
        k = torch.tanh(xc @ xc.T / 8 + 1)
        vals = torch.linalg.eigvalsh(k - one @ k - k @ one + one @ k @ one)
        loss = vals[0] / vals[-1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    # [P,C] -> [1,C,4,4]; rounded to float32, as the Go test feeds it.
    return x.detach().T.reshape(1, 8, 4, 4).float().numpy()


# ---------------------------------------------------------------------------
# The CAM family's per-channel terms, for eigen_smooth.

def terms(method, model, x, layer, classes, forward=None):
    a, g, logits = gm.layer_grads(model, x, layer, classes, forward)
    if method == "gradcam":
        return g.mean(dim=(2, 3))[:, :, None, None] * a
    if method == "hirescam":
        return g * a
    if method == "ablationcam":
        with torch.no_grad():
            y = gm.scores_of(logits, classes).double()
            yk = torch.zeros(a.shape[:2], dtype=torch.float64)
            for k in range(a.shape[1]):
                ab = a.float().clone()
                ab[:, k] = 0
                yk[:, k] = gm.scores_of(gm.forward_from(model, x, layer, ab), classes).double()
        return ((y[:, None] - yk) / y[:, None])[:, :, None, None] * a
    raise ValueError(method)


# ---------------------------------------------------------------------------
# aug_smooth.

AUGMENTATIONS = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]


def aug_gradcam(model, x, layer, classes, forward=None):
    raws, norms = [], []
    for flip, factor in AUGMENTATIONS:
        xa = x * factor
        if flip:
            xa = torch.flip(xa, dims=[3])
        a, g, _ = gm.layer_grads(model, xa, layer, classes, forward)
        raw = (g.mean(dim=(2, 3))[:, :, None, None] * a).sum(1).float().numpy()
        norm = camref.normalise_single(raw, tuple(x.shape[-2:]))
        if flip:
            raw, norm = raw[:, :, ::-1], norm[:, :, ::-1]
        raws.append(raw)
        norms.append(norm)
    return np.mean(np.float32(raws), axis=0), np.mean(np.float32(norms), axis=0)


# ---------------------------------------------------------------------------

SMOOTH = {"samples": 4, "std": 0.3, "seed": 5}
KPCA_CASES = [  # (layer, target, kernel, gamma); gamma None = 1/C
    ("layer2", "top1", "sigmoid", None),
    ("layer1", "top1", "sigmoid", None),
    ("layer2_conv2", "top1", "rbf", 0.02),
    ("layer2_conv2", "top1", "poly", None),
    ("layer2_conv2", "top1", "cosine", None),
    ("layer2_conv2", "top1", "linear", None),
]


def main():
    torch.set_num_threads(1)
    model, x, logits, _, err = gm.tiny_model()
    targets = {"top1": logits.argmax(1), "classes147": torch.tensor([1, 4, 7])}
    norm = lambda raw: camref.normalise_single(np.asarray(raw, dtype=np.float32), (SIZE, SIZE))  # noqa: E731
    man = {"generator": "scripts/reference/gen_smoothcams.py",
           "model": "../tinycnn/model.onnx", "input": "../tinycnn/input.npy", "layers": gm.LAYERS,
           "smoothgradcam++": [], "kpcacam": [], "eigen_smooth": [], "aug_smooth": []}

    # Smooth Grad-CAM++, plain and with eigen_smooth.
    for layer, tkey, store_norm, eigen in [("layer2_conv2", "top1", True, False), ("layer1", "classes147", False, False),
                                           ("layer2_conv2", "top1", False, True)]:
        classes = targets[tkey]
        a, d = smooth_moments(model, x, layer, classes, **SMOOTH)
        wa = smoothgradcampp_weights(a, *d)[:, :, None, None] * a
        raw = gm.first_component(wa.numpy())[0] if eigen else wa.sum(1).numpy()
        suffix = "_eigen" if eigen else ""
        entry = {"layer": layer, "target": tkey, "classes": classes.tolist(), "options": SMOOTH, "eigen_smooth": eigen,
                 "raw": save(f"smoothgradcam++{suffix}_{layer}_{tkey}_raw.npy", raw)}
        if store_norm:
            entry["normalised"] = save(f"smoothgradcam++_{layer}_{tkey}_norm.npy", norm(raw))
        man["smoothgradcam++"].append(entry)

    # KPCA-CAM.
    for layer, tkey, kernel, gamma in KPCA_CASES:
        _, taps = gm.forward_taps(model, x)
        act = taps[layer].detach().double().numpy()
        raw, eig = kpca(act, kernel, gamma)
        entry = {"layer": layer, "target": tkey, "classes": targets[tkey].tolist(),
                 "options": {"kernel": kernel, "gamma": 0.0 if gamma is None else gamma},
                 "eigenvalues_largest_smallest": [[round(v, 5) for v in e] for e in eig],
                 "sklearn_max_abs_diff": sklearn_check(act, kernel, gamma, raw),
                 "raw": save(f"kpcacam_{kernel}_{layer}_{tkey}_raw.npy", raw)}
        man["kpcacam"].append(entry)
    act = nonpsd_activation()
    raw, eig = kpca(act.astype(np.float64))
    assert -eig[0][1] > eig[0][0], eig
    man["kpcacam_nonpsd"] = {"options": {"kernel": "sigmoid", "gamma": 0.0},
                             "eigenvalues_largest_smallest": [[round(v, 5) for v in e] for e in eig],
                             "sklearn_max_abs_diff": sklearn_check(act.astype(np.float64), "sigmoid", None, raw),
                             "activation": save("kpcacam_nonpsd_act.npy", act),
                             "raw": save("kpcacam_nonpsd_raw.npy", raw)}

    # eigen_smooth.
    for method, layer, tkey, store_norm in [("gradcam", "layer2_conv2", "top1", True), ("gradcam", "layer1", "classes147", False),
                                            ("hirescam", "layer2_conv2", "top1", False), ("hirescam", "layer1", "classes147", False),
                                            ("ablationcam", "layer2", "top1", False)]:
        classes = targets[tkey]
        raw, _ = gm.first_component(terms(method, model, x, layer, classes).numpy())
        entry = {"method": method, "layer": layer, "target": tkey, "classes": classes.tolist(),
                 "raw": save(f"eigen_{method}_{layer}_{tkey}_raw.npy", raw)}
        if store_norm:
            entry["normalised"] = save(f"eigen_{method}_{layer}_{tkey}_norm.npy", norm(raw))
        man["eigen_smooth"].append(entry)

    # aug_smooth.
    for layer, tkey, store_norm in [("layer2_conv2", "top1", True), ("layer1", "classes147", False)]:
        classes = targets[tkey]
        raw, nm = aug_gradcam(model, x, layer, classes)
        entry = {"method": "gradcam", "layer": layer, "target": tkey, "classes": classes.tolist(),
                 "raw": save(f"aug_gradcam_{layer}_{tkey}_raw.npy", raw)}
        if store_norm:
            entry["normalised"] = save(f"aug_gradcam_{layer}_{tkey}_norm.npy", nm)
        man["aug_smooth"].append(entry)

    with open(os.path.join(gm.OUT, "smoothcams.json"), "w") as f:
        f.write(camref.compact_json(man))
    total = sum(os.path.getsize(os.path.join(gm.OUT, n)) for n in written)
    print(f"{len(written)} .npy files, {total} bytes; non-PSD eigenvalues {eig}")


if __name__ == "__main__":
    main()
