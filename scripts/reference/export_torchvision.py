#!/usr/bin/python3
"""Exports random-weight torchvision CNNs to ONNX with Grad-CAM references.

    /usr/bin/python3 scripts/reference/export_torchvision.py --out DIR \\
        [--models resnet18,vgg11,mobilenet_v2,densenet121,efficientnet_b0] \\
        [--batch 1] [--no-check]

Needs Debian's python3-torch (1.13), python3-torchvision (0.14), python3-onnx
and python3-opencv. Runs on 2 CPU threads.

For each model NAME it writes into DIR:

  NAME.onnx               opset 13, input "input" [batch,3,224,224], output
                          "logits" [batch,1000], dynamic batch axis
  NAME.input.npy          float32 [B,3,224,224] seeded input batch
  NAME.logits.npy         float32 [B,1000] PyTorch logits for it
  NAME.LAYER.raw.npy      float32 [B,h,w] raw signed Grad-CAM map, top-1 class
  NAME.LAYER.weights.npy  float32 [B,K] Grad-CAM channel weights
  NAME.LAYER.norm.npy     float32 [B,224,224] normalised map (pytorch-grad-cam)
  NAME.LAYER.{raw,weights,norm}_onnx64.npy
                          the same three, computed through the exported ONNX
                          graph evaluated in float64 (unless --no-check)
  NAME.json               layer keys -> ONNX node output names, shapes, file
                          names, top-1 classes, ONNX op counts, check results

LAYER is "early" or "last" (see MODELS below for the node each one names).

Model preparation: torch.manual_seed(0) then the torchvision constructor
(random weights; no pretrained weights are available offline). Every
BatchNorm's running statistics are re-estimated (reset, momentum None, 10
train-mode passes of 8 random images, then eval()), otherwise the activations
of random-weight models vanish (~1e-9 at MobileNetV2's last block) and the
normalised maps are dominated by the 1e-7 epsilon. vgg11 has no BatchNorm.

Inputs: a smooth random field (7x7 normal values, std 1, bilinearly
upsampled to 224x224) plus pixel noise (std 0.5); the same seed for every
model, so NAME.input.npy is the same batch for all of them. BatchNorm is
calibrated on more images drawn from the same distribution.

Why two references: the ONNX export folds each Conv+BatchNorm into one Conv
whose weights are rounded to float32, so the ONNX graph is a slightly
different function. Activations and the last layer's maps agree to ~1e-6, but
a pre-activation within rounding distance of 0 can change sign (measured:
resnet18, one unit of layer3.1's second ReLU at 2e-7), which changes the
gradient reaching EARLIER layers; with the cancellation in the spatial mean
of the gradient (mean |dA| is ~17x max |w| at resnet18's layer1) the early
raw maps then differ by ~3e-4 relative. A float32 evaluation of the ONNX graph
(like convlens') matches the "onnx64" reference to ~1e-6 when it does not flip
such a unit itself; the PyTorch-model reference is what pytorch-grad-cam
would report on the original model. NAME.json records the measured
differences under "onnx_check_rel_err".

Grad-CAM (implemented in camref.py, same definitions as gen_fixtures.py):
  score   = sum_i logits[i, c_i], c_i = top-1 class of image i
  w[i,k]  = mean over (y,x) of dscore/dA[i,k,y,x]
  raw[i]  = sum_k w[i,k] A[i,k]                       (signed, no ReLU)
  norm[i] = ReLU; (x-min)/(1e-7+max); cv2.resize INTER_LINEAR to 224x224;
            (x-min)/(1e-7+max) again  (pytorch-grad-cam's single-layer result)

The activations A come from an explicit forward function per architecture
that returns the intermediate tensors (no module hooks), and it is checked to
reproduce the model's own logits. Unless --no-check is given, the exported
ONNX graph is then evaluated with a small torch interpreter
(camref.OnnxTorchRunner): the logits and the two named node outputs must
match the PyTorch tensors (relative error < 1e-4), and the raw Grad-CAM maps
computed through the ONNX graph must match the PyTorch ones to 2e-2 (see
below), which proves that each named ONNX node output is the tensor the
reference used.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import camref  # noqa: E402

SIZE = 224
INPUT_SEED = 1234
CALIB_SEED = 99
CALIB_PASSES, CALIB_BATCH = 10, 8


def make_images(n, gen, size=SIZE):
    low = F.interpolate(torch.randn(n, 3, 7, 7, generator=gen), size=(size, size),
                        mode="bilinear", align_corners=False)
    return low + 0.5 * torch.randn(n, 3, size, size, generator=gen)


# Explicit forward functions: (model, x) -> (logits, {"early": A1, "last": A2}).
# They mirror torchvision 0.14's forward() of each model.

def fwd_resnet(m, x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    early = m.layer1(x)
    last = m.layer4(m.layer3(m.layer2(early)))
    return m.fc(torch.flatten(m.avgpool(last), 1)), {"early": early, "last": last}


def _run_features(features, x, early_idx, last_idx):
    taps = {}
    for i, mod in enumerate(features):
        x = mod(x)
        if i == early_idx:
            taps["early"] = x
        if i == last_idx:
            taps["last"] = x
    return x, taps


def fwd_vgg(m, x):
    x, taps = _run_features(m.features, x, 4, 19)
    return m.classifier(torch.flatten(m.avgpool(x), 1)), taps


def fwd_mobilenet_v2(m, x):
    x, taps = _run_features(m.features, x, 3, 18)
    x = F.adaptive_avg_pool2d(x, (1, 1))
    return m.classifier(torch.flatten(x, 1)), taps


def fwd_densenet(m, x):
    taps = {}
    for name, mod in m.features.named_children():
        x = mod(x)
        if name == "denseblock1":
            taps["early"] = x
    taps["last"] = F.relu(x)  # torchvision: F.relu(features, inplace=True)
    x = F.adaptive_avg_pool2d(taps["last"], (1, 1))
    return m.classifier(torch.flatten(x, 1)), taps


def fwd_efficientnet(m, x):
    x, taps = _run_features(m.features, x, 2, 8)
    return m.classifier(torch.flatten(m.avgpool(x), 1)), taps


# Layer key -> (ONNX node output name, description). Read from the exported
# graphs (torch 1.13 names nodes after the module scope) and asserted.
MODELS = {
    "resnet18": (fwd_resnet, {
        "early": ("/layer1/layer1.1/relu_1/Relu_output_0",
                  "layer1 output: second call of layer1.1's reused ReLU, 64x56x56"),
        "last": ("/layer4/layer4.1/relu_1/Relu_output_0",
                 "layer4 output: second call of layer4.1's reused ReLU, 512x7x7"),
    }),
    "vgg11": (fwd_vgg, {
        "early": ("/features/features.4/Relu_output_0",
                  "features[4], ReLU after the second conv, 128x112x112"),
        "last": ("/features/features.19/Relu_output_0",
                 "features[19], ReLU after the last conv (before the last max-pool), 512x14x14"),
    }),
    "mobilenet_v2": (fwd_mobilenet_v2, {
        "early": ("/features/features.3/Add_output_0",
                  "features[3] output (inverted residual: residual Add), 24x56x56"),
        "last": ("/features/features.18/features.18.2/Clip_output_0",
                 "features[18] output: ReLU6 exported as Clip(0,6), 1280x7x7"),
    }),
    "densenet121": (fwd_densenet, {
        "early": ("/features/denseblock1/Concat_output_0",
                  "features.denseblock1 output (Concat of all its layers), 256x56x56"),
        "last": ("/Relu_output_0",
                 "F.relu(features) in DenseNet.forward, after features.norm5 "
                 "(a BatchNormalization node: not folded, it follows a Concat), 1024x7x7"),
    }),
    "efficientnet_b0": (fwd_efficientnet, {
        "early": ("/features/features.2/features.2.1/Add_output_0",
                  "features[2] output (second MBConv's residual Add; StochasticDepth "
                  "is the identity in eval), 24x56x56"),
        "last": ("/features/features.8/features.8.2/Mul_output_0",
                 "features[8] output: SiLU exported as x*Sigmoid(x) (Sigmoid + Mul), 1280x7x7"),
    }),
}


def prepare_model(name, size=SIZE):
    """The torchvision model NAME with seeded random weights and its BatchNorm
    statistics re-estimated on size x size images (see the module docstring),
    in eval mode; returns it and its number of BatchNorm layers."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    gcal = torch.Generator().manual_seed(CALIB_SEED)
    nbn = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if nbn:
        camref.calibrate_batchnorm(
            model, lambda i: make_images(CALIB_BATCH, gcal, size), passes=CALIB_PASSES)
    model.eval()
    return model, nbn


def export_one(name, out_dir, batch, check):
    t0 = time.time()
    fwd, layers = MODELS[name]
    model, nbn = prepare_model(name)
    t_calib = time.time() - t0

    x = make_images(batch, torch.Generator().manual_seed(INPUT_SEED))
    onnx_path = os.path.join(out_dir, f"{name}.onnx")
    mp = camref.export_onnx(model, torch.zeros(1, 3, SIZE, SIZE), onnx_path)
    names = set(camref.node_output_names(mp))
    for key, (onnx_name, _) in layers.items():
        assert onnx_name in names, (name, key, onnx_name)
    t_export = time.time() - t0 - t_calib

    logits, acts = fwd(model, x)
    with torch.no_grad():
        direct = model(x)
    assert camref.rel_err(logits.detach(), direct) < 1e-5, "explicit forward != model.forward"
    classes = logits.argmax(dim=1)
    keys = list(layers)
    refs = camref.gradcam_raw(logits, [acts[k] for k in keys], classes)

    files = {}

    def save(fname, arr, dtype=np.float32):
        arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
        np.save(os.path.join(out_dir, fname), arr)
        files[fname] = list(arr.shape)
        return {"file": fname, "shape": list(arr.shape)}

    info = {
        "model": name,
        "generator": "scripts/reference/export_torchvision.py",
        "onnx": {"file": f"{name}.onnx", "opset": 13, "input_name": "input",
                 "output_name": "logits", "input_shape": ["batch", 3, SIZE, SIZE],
                 "ops": camref.op_histogram(mp), "bytes": os.path.getsize(onnx_path)},
        "batchnorm_layers_calibrated": nbn,
        "input": save(f"{name}.input.npy", x.numpy()),
        "logits": save(f"{name}.logits.npy", logits.detach().numpy()),
        "top1": classes.tolist(),
        "top1_logit": [float(v) for v in logits.detach().max(dim=1).values],
        "top1_margin": [float(v) for v in (lambda t: t[:, 0] - t[:, 1])(
            torch.topk(logits.detach(), 2, dim=1).values)],
        "target": "top1",
        "layers": {},
    }
    for key, (raw, w) in zip(keys, refs):
        onnx_name, desc = layers[key]
        info["layers"][key] = {
            "onnx_output": onnx_name,
            "description": desc,
            "activation_shape": list(acts[key].shape),
            "activation_abs_mean": float(acts[key].detach().abs().mean()),
            "raw": save(f"{name}.{key}.raw.npy", raw),
            "weights": save(f"{name}.{key}.weights.npy", w),
            "normalised": save(f"{name}.{key}.norm.npy", camref.normalise_single(raw, (SIZE, SIZE))),
            "raw_max": [float(v) for v in raw.reshape(batch, -1).max(axis=1)],
            "raw_min": [float(v) for v in raw.reshape(batch, -1).min(axis=1)],
        }
    t_ref = time.time() - t0 - t_calib - t_export

    if check:
        # The exported graph is not bit-for-bit the PyTorch model: Conv+BN are
        # folded into one Conv with float32-rounded weights. Evaluate it in
        # float32 and in float64; save the float64 Grad-CAM of the ONNX graph
        # as a second reference ("onnx64"). See the module docstring.
        onames = [layers[k][0] for k in keys]
        env = camref.OnnxTorchRunner(mp).run(x, keep=onames)
        env64 = camref.OnnxTorchRunner(mp, torch.float64).run(x, keep=onames)
        via = camref.gradcam_raw(env["logits"], [env[n] for n in onames], classes)
        via64 = camref.gradcam_raw(env64["logits"], [env64[n] for n in onames], classes)
        errs = {"logits": camref.rel_err(env["logits"].detach(), logits.detach())}
        for key, (raw, _), (raw32, _), (raw64, w64) in zip(keys, refs, via, via64):
            errs["act:" + key] = camref.rel_err(env[layers[key][0]].detach(), acts[key].detach())
            errs["raw_pytorch_vs_onnx64:" + key] = camref.rel_err(raw, raw64)
            errs["raw_onnx32_vs_onnx64:" + key] = camref.rel_err(raw32, raw64)
            norm64 = camref.normalise_single(raw64, (SIZE, SIZE))
            # Normalised maps lie in [0,1]: these are max absolute differences.
            errs["norm_pytorch_vs_onnx64:" + key] = float(np.max(np.abs(
                camref.normalise_single(raw, (SIZE, SIZE)) - norm64)))
            errs["norm_onnx32_vs_onnx64:" + key] = float(np.max(np.abs(
                camref.normalise_single(raw32, (SIZE, SIZE)) - norm64)))
            li = info["layers"][key]
            li["raw_onnx64"] = save(f"{name}.{key}.raw_onnx64.npy", raw64)
            li["weights_onnx64"] = save(f"{name}.{key}.weights_onnx64.npy", w64)
            li["normalised_onnx64"] = save(f"{name}.{key}.norm_onnx64.npy", norm64)
        # Same tensors (a wrong node would be off by O(1)); the raw maps may
        # differ by up to ~1e-3 (ReLU sign flips of near-zero units, see above).
        for k, v in errs.items():
            assert v < (1e-4 if k.startswith(("logits", "act")) else 5e-2), (name, k, v)
        assert info["top1"] == env64["logits"].argmax(dim=1).tolist()
        info["onnx_check_rel_err"] = {k: float(f"{v:.1e}") for k, v in errs.items()}
    t_check = time.time() - t0 - t_calib - t_export - t_ref

    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        f.write(camref.compact_json(info))
    total = time.time() - t0
    print(f"{name}: top1 {classes.tolist()}, {os.path.getsize(onnx_path) / 1e6:.1f} MB onnx, "
          f"calib {t_calib:.1f}s export {t_export:.1f}s ref {t_ref:.1f}s check {t_check:.1f}s "
          f"total {total:.1f}s", flush=True)
    for key in keys:
        li = info["layers"][key]
        print(f"  {key:5s} {li['onnx_output']}  act {li['activation_shape']} "
              f"|A| {li['activation_abs_mean']:.3g} raw [{min(li['raw_min']):.3g}, "
              f"{max(li['raw_max']):.3g}]", flush=True)
    if check:
        print(f"  ONNX-graph check: {info['onnx_check_rel_err']}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--no-check", action="store_true",
                    help="skip evaluating the ONNX graph with the torch interpreter")
    args = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    for name in args.models.split(","):
        if name not in MODELS:
            sys.exit(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        export_one(name, args.out, args.batch, not args.no_check)
    print(f"all done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
