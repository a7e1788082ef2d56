#!/usr/bin/python3
"""PyTorch references of gradcam's newer methods and targets on a torchvision model.

    /usr/bin/python3 scripts/reference/gen_torchvision_methods.py --out DIR \\
        [--methods fullgrad,finercam,...] [--size 96] [--images 1]

Needs Debian's python3-torch (1.13), python3-torchvision (0.14), python3-onnx
and python3-opencv. Runs on 2 CPU threads, in 50-80 s on a shared 2-core
machine (most of it the 1024 passes of SS-CAM and IS-CAM). Used by
cmd/convlens/torchvision_methods_test.go (in CI, or with
CONVLENS_TORCHVISION_DIR: into its methods/ folder); never committed.

The model: torchvision's resnet18 with random weights (torch.manual_seed(0))
and its BatchNorm statistics re-estimated on SIZE x SIZE images, as
export_torchvision.py prepares it (prepare_model, make_images), exported to
ONNX opset 13 at SIZE x SIZE (96: layer4 is 512x3x3, layer3 256x6x6). The
input is IMAGES images from export_torchvision.py's image distribution and
seed; the Similarity target's reference embedding is the model's output (its
1000 logits) for one more image of another seed.

Every reference is an independent PyTorch/NumPy implementation of its
method's published formula on the PyTorch model (BatchNorm unfolded), the
functions gen_methods.py, gen_scorecams.py, gen_smoothcams.py and gen_targets.py check tinycnn
against, imported from them (see their docstrings for the formulas):

  fullgrad        gen_methods.fullgrad_map (bias layers: the model's
                  BatchNorm2d, which the export folds into the convolutions)
  finercam        gen_methods.finercam_raw at layer4 (and layer3)
  occlusion       gen_methods.occlusion_map (window 40, stride 30: 9
                  passes, overlapping, the last ones cut at the edge)
  rise            gen_methods.rise_map (64 masks, 7x7 grid, keep 0.5)
  sscam           gen_scorecams.sscam at layer3, 2 samples (512 passes)
  iscam           gen_scorecams.iscam at layer3, 2 samples (512 passes)
                  (at layer4, 512 channels, each would take 1024 passes:
                  27 s of the Go test for SS-CAM alone)
  fasterscorecam  gen_scorecams.fasterscorecam at layer4, 15 channels (the
                  15th largest variance is 1.107 times the 16th, a cut that
                  float32 rounding cannot move; asserted above 1.01)
  gradcam         with the targets Counterfactual(Top(1)) at layer3 (score:
                  minus the top-1 logit; at layer4 its map is negative
                  everywhere, blank once normalised) and Similarity at layer4
                  (gen_targets.similarity_score: the cosine similarity of the
                  logits to the reference's), gen_targets.gradcam hooking the
                  layer's module; with Builder.EigenSmooth at layer3
                  (gen_methods.first_component of gen_smoothcams.terms) and
                  Builder.AugSmooth at layer3 (gen_smoothcams.aug_gradcam:
                  the mean of the six copies' normalised maps)
  smoothgradcam++ gen_smoothcams.smooth_moments and smoothgradcampp_weights
                  at layer4, 4 samples, std 0.3, seed 5
  kpcacam         gen_smoothcams.kpca at layer3 (sigmoid kernel, gamma 1/C)

Normalised maps: camref.normalise_single (ReLU, min-max, cv2 bilinear resize
to SIZE, min-max again) for maps at a layer's resolution; gen_methods.
minmax_relu (ReLU, min-max) for maps at the input's (fullgrad, occlusion,
rise), as for tinycnn. convlens min-maxes those twice too (the resize between
is the identity), which moves them by up to 1e-7 / (max - min) of the ReLU'd
map: 1e-4 for RISE here, whose map spans 1.6e-3 to 2.6e-3.

ENTRIES below is the table of references, one per (method, options,
builder options, layer, target); --methods keeps the entries whose method
(or name) it lists. A method or a Builder option more is one entry more
(and, in the Go test, one case more in how it builds the method).

DIR/manifest.json: the model, input and reference-embedding files, the top-1
classes, the layers (key -> ONNX node output name), and "entries", each with
name, method, options, builder (Builder options; none yet), layer (key, or
null for methods that need none), onnx_layer, target ("top1",
"counterfactual_top1", "similarity"), classes, raw and normalised files, and
what the reference reports besides (Faster Score-CAM's kept channels and the
variance ratio at the cut).
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import camref  # noqa: E402
import export_torchvision as tv  # noqa: E402
import gen_methods as gm  # noqa: E402
import gen_scorecams as gs  # noqa: E402
import gen_smoothcams as gsm  # noqa: E402
import gen_targets as gt  # noqa: E402

MODEL = "resnet18"
REFERENCE_SEED = 4321  # the Similarity target's reference image

# Layer key -> (ONNX node output of the module's output, the module).
LAYERS = {
    "layer4": ("/layer4/layer4.1/relu_1/Relu_output_0", lambda m: m.layer4),
    "layer3": ("/layer3/layer3.1/relu_1/Relu_output_0", lambda m: m.layer3),
}


def forward_taps(m, x):
    """resnet18's logits and the outputs of layer3 and layer4, from its modules
    (torchvision 0.14's ResNet.forward)."""
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    l3 = m.layer3(m.layer2(m.layer1(x)))
    l4 = m.layer4(l3)
    return m.fc(torch.flatten(m.avgpool(l4), 1)), {"layer3": l3, "layer4": l4}


# ---------------------------------------------------------------------------
# The references: fn(ctx, layer, options) -> (raw [N,h,w] float32 numpy, info).
# ctx holds the model, the input x, the top-1 classes and the reference
# embedding.

def ref_fullgrad(ctx, _layer, _opts):
    raw, layers = gm.fullgrad_map(ctx["model"], ctx["x"], ctx["classes"])
    return raw, {"bias_layers": layers}


def ref_finercam(ctx, layer, opts):
    return gm.finercam_raw(ctx["model"], ctx["x"], layer, ctx["classes"], forward=forward_taps, **opts), {}


def ref_occlusion(ctx, _layer, opts):
    return gm.occlusion_map(ctx["model"], ctx["x"], ctx["classes"], **opts).float().numpy(), {}


def ref_rise(ctx, _layer, opts):
    return gm.rise_map(ctx["model"], ctx["x"], ctx["classes"], **opts).float().numpy(), {}


# Passes per model call of the Score-CAM variants' references (one pass a
# call costs ten times as much on 2 threads).
PASS_BATCH = 32


def scorecam_variant(fn):
    def ref(ctx, layer, opts):
        with torch.no_grad():
            _, acts = forward_taps(ctx["model"], ctx["x"])
            raw, info = fn(ctx["model"], ctx["x"], acts[layer], ctx["classes"], batch=PASS_BATCH, **opts)
        return raw.float().numpy(), info
    return ref


def gradcam_of(score):
    """Grad-CAM of score(ctx)(logits) [N] at the layer (gen_targets.gradcam)."""
    def ref(ctx, layer, _opts):
        raw, scores = gt.gradcam(ctx["model"], ctx["x"], score(ctx), module=LAYERS[layer][1](ctx["model"]))
        return raw, {"scores": [float(s) for s in scores]}
    return ref


def ref_smoothgradcampp(ctx, layer, opts):
    a, d = gsm.smooth_moments(ctx["model"], ctx["x"], layer, ctx["classes"], forward=forward_taps, **opts)
    return (gsm.smoothgradcampp_weights(a, *d)[:, :, None, None] * a).sum(1).float().numpy(), {}


def ref_kpcacam(ctx, layer, _opts):
    with torch.no_grad():
        _, acts = forward_taps(ctx["model"], ctx["x"])
    raw, eig = gsm.kpca(acts[layer].double().numpy())
    return raw, {"eigenvalues_largest_smallest": eig}


def ref_eigen_gradcam(ctx, layer, _opts):
    raw, _ = gm.first_component(gsm.terms("gradcam", ctx["model"], ctx["x"], layer, ctx["classes"], forward_taps).numpy())
    return raw, {}


def ref_aug_gradcam(ctx, layer, _opts):
    raw, norm = gsm.aug_gradcam(ctx["model"], ctx["x"], layer, ctx["classes"], forward_taps)
    return raw, {"normalised_map": norm}  # the mean of the copies' normalised maps


def counterfactual_top1(ctx):
    c = ctx["classes"]
    return lambda o: -o.gather(1, c.view(-1, 1)).squeeze(1)


def similarity(ctx):
    return gt.similarity_score(ctx["reference"])


# name, method, options, builder options, layer key (None: the method needs
# none), target, reference function.
ENTRIES = [
    ("fullgrad_top1", "fullgrad", {}, {}, None, "top1", ref_fullgrad),
    ("finercam_layer4_top1", "finercam", {"alpha": 1.0, "compare": 3}, {}, "layer4", "top1", ref_finercam),
    ("finercam_layer3_top1", "finercam", {"alpha": 0.6, "compare": 2}, {}, "layer3", "top1", ref_finercam),
    ("occlusion_top1", "occlusion", {"window": 40, "stride": 30, "baseline": 0.0}, {}, None, "top1", ref_occlusion),
    ("rise_top1", "rise", {"masks": 64, "grid": 7, "keep": 0.5, "seed": 3}, {}, None, "top1", ref_rise),
    ("sscam_layer3_top1", "sscam", {"samples": 2, "sigma": 2.0, "seed": 5}, {}, "layer3", "top1",
     scorecam_variant(gs.sscam)),
    ("iscam_layer3_top1", "iscam", {"samples": 2}, {}, "layer3", "top1", scorecam_variant(gs.iscam)),
    ("fasterscorecam_layer4_top1", "fasterscorecam", {"channels": 15}, {}, "layer4", "top1",
     scorecam_variant(gs.fasterscorecam)),
    ("gradcam_layer3_counterfactual_top1", "gradcam", {}, {}, "layer3", "counterfactual_top1",
     gradcam_of(counterfactual_top1)),
    ("gradcam_layer4_similarity", "gradcam", {}, {}, "layer4", "similarity", gradcam_of(similarity)),
    ("smoothgradcam++_layer4_top1", "smoothgradcam++", {"samples": 4, "std": 0.3, "seed": 5}, {}, "layer4", "top1",
     ref_smoothgradcampp),
    ("kpcacam_layer3_top1", "kpcacam", {}, {}, "layer3", "top1", ref_kpcacam),
    ("gradcam_layer3_eigen_top1", "gradcam", {}, {"eigen_smooth": True}, "layer3", "top1", ref_eigen_gradcam),
    ("gradcam_layer3_aug_top1", "gradcam", {}, {"aug_smooth": True}, "layer3", "top1", ref_aug_gradcam),
]
# Methods whose raw map is at the input's resolution (normalised without a resize).
INPUT_RESOLUTION = {"fullgrad", "occlusion", "rise"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--methods", default="",
                    help="comma-separated methods (or entry names) to write; default all: "
                         + ",".join(sorted({e[1] for e in ENTRIES})))
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--images", type=int, default=1)
    args = ap.parse_args()
    want = set(filter(None, args.methods.split(",")))
    known = {e[0] for e in ENTRIES} | {e[1] for e in ENTRIES}
    if want - known:
        sys.exit(f"unknown methods {sorted(want - known)}; known: {', '.join(sorted(known))}")
    entries = [e for e in ENTRIES if not want or e[0] in want or e[1] in want]

    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    size = args.size
    model, nbn = tv.prepare_model(MODEL, size)
    x = tv.make_images(args.images, torch.Generator().manual_seed(tv.INPUT_SEED), size)
    ref_image = tv.make_images(1, torch.Generator().manual_seed(REFERENCE_SEED), size)
    mp = camref.export_onnx(model, torch.zeros(1, 3, size, size), os.path.join(args.out, f"{MODEL}.onnx"))
    names = set(camref.node_output_names(mp))
    for key, (onnx_name, _) in LAYERS.items():
        assert onnx_name in names, (key, onnx_name)

    # The explicit forward is the model's, and the named ONNX node outputs are
    # its taps (the export's graph evaluated by camref's torch interpreter).
    logits, acts = forward_taps(model, x)
    with torch.no_grad():
        assert camref.rel_err(logits.detach(), model(x)) < 1e-5, "explicit forward != model.forward"
        env = camref.OnnxTorchRunner(mp).run(x, keep=[v[0] for v in LAYERS.values()])
        check = {"logits": camref.rel_err(env["logits"], logits.detach())}
        for key, (onnx_name, _) in LAYERS.items():
            check["act:" + key] = camref.rel_err(env[onnx_name], acts[key].detach())
        reference = model(ref_image)[0]
    for k, v in check.items():
        assert v < 1e-4, (k, v)
    classes = logits.argmax(dim=1)
    ctx = {"model": model, "x": x, "classes": classes, "reference": reference}

    def save(fname, arr):
        arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        np.save(os.path.join(args.out, fname), arr)
        return {"file": fname, "shape": list(arr.shape)}

    manifest = {
        "generator": "scripts/reference/gen_torchvision_methods.py",
        "model": MODEL, "onnx": f"{MODEL}.onnx", "size": size, "batchnorm_layers_calibrated": nbn,
        "input": save("input.npy", x.numpy()),
        "logits": save("logits.npy", logits.detach().numpy()),
        "top1": classes.tolist(),
        "similarity_reference": save("similarity_reference.npy", reference.numpy()),
        "onnx_check_rel_err": {k: float(f"{v:.1e}") for k, v in check.items()},
        "layers": {k: v[0] for k, v in LAYERS.items()},
        "entries": [],
    }
    print(f"{MODEL} {size}x{size}, {args.images} image(s), top-1 {classes.tolist()}, "
          f"ONNX check {manifest['onnx_check_rel_err']}, {time.time() - t0:.1f}s", flush=True)
    for name, method, opts, builder, layer, target, fn in entries:
        t1 = time.time()
        raw, info = fn(ctx, layer, opts)
        # Faster Score-CAM's channels must not hang on float32 rounding.
        assert min(info.get("variance_ratio_at_cut", [2])) > 1.01, (name, info)
        if "normalised_map" in info:
            norm = info.pop("normalised_map")
        elif method in INPUT_RESOLUTION:
            norm = gm.minmax_relu(raw)
        else:
            norm = camref.normalise_single(raw, (size, size))
        entry = {"name": name, "method": method, "options": opts, "builder": builder, "layer": layer,
                 "onnx_layer": LAYERS[layer][0] if layer else None, "target": target,
                 "classes": classes.tolist(),
                 "raw": save(f"{name}_raw.npy", raw), "normalised": save(f"{name}_norm.npy", norm)}
        entry.update(info)
        manifest["entries"].append(entry)
        print(f"  {name}: raw {list(raw.shape)} [{raw.min():.3g}, {raw.max():.3g}] "
              f"{time.time() - t1:.1f}s", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        f.write(camref.compact_json(manifest))
    print(f"{len(entries)} entries in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
