#!/usr/bin/python3
"""Exports one torchvision model at given ONNX opsets with a PyTorch Grad-CAM reference.

    /usr/bin/python3 scripts/reference/coverage_export.py --family NAME --opset K[,K...] --out DIR

Run by `go run ./coverage` (coverage/main.go), which loads each export in
convlens and compares its Grad-CAM with the reference. Needs Debian's
python3-torch (1.13), python3-torchvision (0.14), python3-onnx and
python3-opencv. Runs on 2 CPU threads.

The model is prepared as export_torchvision.py prepares its five (its
prepare_model: torch.manual_seed(0), random weights, BatchNorm statistics
re-estimated on its random images); vit_b_16's classifier, which torchvision
zero-initialises, gets random weights too. Input: 224x224, 299x299 for inception_v3.
The batch has two images: testdata/images/chelsea.png (the cat, resized with
cv2 INTER_AREA, ImageNet mean/std) and export_torchvision.py's seeded random
image (make_images, its INPUT_SEED).

For each opset K it writes into DIR:

  NAME-opsetK.onnx          torch.onnx.export at opset K, input "input"
                            [batch,3,S,S], output "logits", dynamic batch axis
  NAME-opsetK.input.npy     float32 [2,3,S,S]
  NAME-opsetK.logits.npy    float32 [2,1000] PyTorch logits
  NAME-opsetK.raw.npy       float32 [2,h,w] raw signed Grad-CAM map, top-1 class
  NAME-opsetK.weights.npy   float32 [2,C] Grad-CAM channel weights
  NAME-opsetK.norm.npy      float32 [2,S,S] normalised map (pytorch-grad-cam's)
  NAME-opsetK.json          what the files are; the target layer: its module path,
                            the ONNX node output convlens should explain, shapes

If torch cannot export the model at opset K, NAME-opsetK.json says so in
"export_error" and no other file of that opset is written.

Target layer: the family's usual Grad-CAM layer (TARGETS below), the output
of a module. Its ONNX name is read from the exported graph: torch 1.13 names
each node after its module scope ("/layer4/layer4.1/relu_1/Relu" for a node
inside resnet's layer4), so the layer is the output of the last node, in
graph order, whose name has the module's scope as prefix. Two families need
a reshape of the module's output into [N,C,h,w], as pytorch-grad-cam's
reshape_transform does: vit_b_16's tokens [N,197,768] lose the class token
and become [N,768,14,14]; swin_t's [N,7,7,768] is permuted channels-first.

Grad-CAM: a forward hook on the module takes its output A (after the
reshape) and hands the rest of the network a copy (or the inverse reshape),
so that in-place operations after the module (DenseNet's F.relu) cannot
change A; then camref.gradcam_raw and camref.normalise_single, the
definitions export_torchvision.py uses.
"""

import argparse
import io
import os
import sys
import time
import warnings

import cv2
import numpy as np
import onnx
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camref  # noqa: E402
import export_torchvision as tv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAT = os.path.join(ROOT, "testdata", "images", "chelsea.png")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tokens_to_map(a):
    """ViT tokens [N,1+h*w,C] -> patch tokens as a map [N,C,h,w]."""
    n, t, c = a.shape
    side = int(round((t - 1) ** 0.5))
    return a[:, 1:, :].reshape(n, side, side, c).permute(0, 3, 1, 2)


def tokens_back(a, out):
    n, c = a.shape[:2]
    return torch.cat([out[:, :1], a.permute(0, 2, 3, 1).reshape(n, -1, c)], dim=1)


# Reshape of a module's output to [N,C,h,w], and its inverse (map, output) -> output.
TRANSFORMS = {
    None: (lambda out: out, lambda a, out: a.clone()),
    "vit_tokens": (tokens_to_map, tokens_back),
    "channels_last": (lambda out: out.permute(0, 3, 1, 2), lambda a, out: a.permute(0, 2, 3, 1)),
}

# Family -> (module path, transform). A path atom "-1" indexes a Sequential.
TARGETS = {
    "alexnet": ("features.-1", None),
    "vgg16": ("features.-1", None),
    "vgg16_bn": ("features.-1", None),
    "resnet18": ("layer4", None),
    "resnet50": ("layer4", None),
    "resnext50_32x4d": ("layer4", None),
    "wide_resnet50_2": ("layer4", None),
    "densenet121": ("features.-1", None),
    "mobilenet_v2": ("features.-1", None),
    "mobilenet_v3_small": ("features.-1", None),
    "mobilenet_v3_large": ("features.-1", None),
    "efficientnet_b0": ("features.-1", None),
    "efficientnet_v2_s": ("features.-1", None),
    "shufflenet_v2_x1_0": ("conv5", None),
    "inception_v3": ("Mixed_7c", None),
    "googlenet": ("inception5b", None),
    "squeezenet1_1": ("features.-1", None),
    "mnasnet1_0": ("layers.-1", None),  # MNASNet calls its feature stack "layers"
    "regnet_y_400mf": ("trunk_output", None),
    "regnet_x_400mf": ("trunk_output", None),
    "convnext_tiny": ("features.-1", None),
    "vit_b_16": ("encoder.layers.-1.ln_1", "vit_tokens"),
    "swin_t": ("features.-1", "channels_last"),
}


# torchvision zero-initialises ViT's classifier: every logit would be 0 and
# every gradient too. Such a head gets PyTorch's default Linear initialisation.
ZERO_HEADS = {"vit_b_16": "heads.head"}


def input_size(family):
    return 299 if family == "inception_v3" else tv.SIZE


def resolve(model, path):
    """The module at path, and its qualified name in model.named_modules()."""
    mod = model
    for atom in path.split("."):
        mod = mod[int(atom)] if atom.lstrip("-").isdigit() else getattr(mod, atom)
    names = {id(m): n for n, m in model.named_modules()}
    return mod, names[id(mod)]


def scope_prefix(qualified):
    """torch 1.13's node-name prefix for the nodes inside a module.

    Each level of the scope is the module's qualified name from its last
    non-numeric atom on ("layer4.1" for layer4.1, "mlp.3" for
    features.7.1.mlp.3), as torch.onnx.utils._unqualified_variable_name does.
    """
    atoms = qualified.split(".")
    parts = []
    for i in range(1, len(atoms) + 1):
        j = i - 1
        while j > 0 and atoms[j].isdigit():
            j -= 1
        parts.append(".".join(atoms[j:i]))
    return "/" + "/".join(parts) + "/"


def scope_output(mp, prefix):
    """(node name, output name) of the last non-Constant node under prefix, or None."""
    last = None
    for n in mp.graph.node:
        if n.name.startswith(prefix) and n.op_type != "Constant":
            last = n
    return None if last is None else (last.name, last.output[0])


def value_shape(mp, name):
    """The shape ONNX shape inference gives a value (dims as ints or names), or None."""
    try:
        inferred = onnx.shape_inference.infer_shapes(mp)
    except Exception:  # noqa: BLE001 - the shape is informative only
        return None
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        if v.name == name and v.type.tensor_type.HasField("shape"):
            return [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                    for d in v.type.tensor_type.shape.dim]
    return None


def make_batch(size):
    cat = cv2.cvtColor(cv2.imread(CAT, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    cat = cv2.resize(cat, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    cat = (cat - np.float32(MEAN)) / np.float32(STD)
    cat = torch.from_numpy(cat.transpose(2, 0, 1).copy())[None]
    seeded = tv.make_images(1, torch.Generator().manual_seed(tv.INPUT_SEED), size)
    return torch.cat([cat, seeded])


def reference(model, x, module, transform):
    """Logits, activation A [N,C,h,w] and the Grad-CAM (raw, weights) at module's output."""
    fwd, back = TRANSFORMS[transform]
    taps = []

    def hook(_, __, out):
        a = fwd(out)
        taps.append(a)
        return back(a, out)

    handle = module.register_forward_hook(hook)
    try:
        logits = model(x)
    finally:
        handle.remove()
    classes = logits.argmax(dim=1)
    (raw, w), = camref.gradcam_raw(logits, taps, classes)
    return logits.detach(), taps[0].detach(), classes, raw, w


def export(model, size, opset, path):
    """Exports at opset; returns the ModelProto and the checker's complaint, or "" if none."""
    f = io.BytesIO()
    torch.onnx.export(model, torch.zeros(1, 3, size, size), f, opset_version=opset,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    data = f.getvalue()
    with open(path, "wb") as out:
        out.write(data)
    mp = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(mp)
    except onnx.checker.ValidationError as e:
        return mp, str(e)
    return mp, ""


def export_family(family, opsets, out_dir):
    t0 = time.time()
    path, transform = TARGETS[family]
    size = input_size(family)
    model, nbn = tv.prepare_model(family, size)
    if family in ZERO_HEADS:
        torch.manual_seed(1)
        resolve(model, ZERO_HEADS[family])[0].reset_parameters()
    module, qualified = resolve(model, path)
    x = make_batch(size)
    logits, act, classes, raw, w = reference(model, x, module, transform)
    norm = camref.normalise_single(raw, (size, size))
    t_ref = time.time() - t0
    top2 = torch.topk(logits, 2, dim=1).values

    for opset in opsets:
        t1 = time.time()
        stem = f"{family}-opset{opset}"
        info = {
            "family": family,
            "opset": opset,
            "generator": "scripts/reference/coverage_export.py",
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        }
        onnx_path = os.path.join(out_dir, stem + ".onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mp, checker = export(model, size, opset, onnx_path)
        except Exception as e:  # noqa: BLE001 - torch's refusal is the result
            if os.path.exists(onnx_path):
                os.remove(onnx_path)
            info["export_error"] = f"{type(e).__name__}: {e}".strip()
            write_json(out_dir, stem, info)
            print(f"{stem}: export failed: {info['export_error'].splitlines()[0]}", flush=True)
            continue

        def save(suffix, arr):
            fname = f"{stem}.{suffix}.npy"
            arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
            np.save(os.path.join(out_dir, fname), arr)
            return {"file": fname, "shape": list(arr.shape)}

        found = scope_output(mp, scope_prefix(qualified))
        node, output = found or (None, None)
        info.update({
            "onnx": {"file": stem + ".onnx", "input_name": "input", "output_name": "logits",
                     "input_shape": ["batch", 3, size, size], "ops": camref.op_histogram(mp),
                     "bytes": os.path.getsize(onnx_path)},
            "batchnorm_layers_calibrated": nbn,
            "images": ["testdata/images/chelsea.png", f"make_images seed {tv.INPUT_SEED}"],
            "input": save("input", x.numpy()),
            "logits": save("logits", logits.numpy()),
            "top1": classes.tolist(),
            "top1_margin": [float(v) for v in top2[:, 0] - top2[:, 1]],
            "layer": {
                "module": qualified,
                "module_path": path,
                "transform": transform,
                "onnx_node": node,
                "onnx_output": output,
                "onnx_output_shape": value_shape(mp, output) if output else None,
                "activation_shape": list(act.shape),
                "activation_abs_mean": float(act.abs().mean()),
                "raw": save("raw", raw),
                "weights": save("weights", w),
                "normalised": save("norm", norm),
            },
        })
        if checker:
            info["onnx_checker_error"] = checker
        if output is None:
            info["layer_error"] = f"no ONNX node under scope {scope_prefix(qualified)}"
        write_json(out_dir, stem, info)
        print(f"{stem}: {info['onnx']['bytes'] / 1e6:.1f} MB, layer {qualified} -> "
              f"{info['layer']['onnx_output']} {list(act.shape)}, top1 {classes.tolist()}, "
              f"ref {t_ref:.1f}s export {time.time() - t1:.1f}s", flush=True)


def write_json(out_dir, stem, info):
    with open(os.path.join(out_dir, stem + ".json"), "w") as f:
        f.write(camref.compact_json(info))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", required=True, choices=sorted(TARGETS))
    ap.add_argument("--opset", required=True, help="ONNX opset, or several comma-separated")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    export_family(args.family, [int(v) for v in args.opset.split(",")], args.out)


if __name__ == "__main__":
    main()
