#!/usr/bin/python3
"""Generate the reference data that display's tests compare against.

Run from anywhere with Debian's python3-opencv and python3-matplotlib:

    /usr/bin/python3 scripts/reference/gen_colormaps.py

It writes, into display/testdata/:

  <map>_opencv.txt      256 lines "R G B": cv2.applyColorMap on the grey
                        ramp 0..255 (jet, viridis, turbo), converted BGR->RGB.
  <map>_matplotlib.txt  256 lines "R G B": matplotlib's colormap sampled at
                        its 256 entries with bytes=True (viridis, turbo, gray).
  overlay_cases.json    small heat-map overlays computed the way
                        pytorch-grad-cam's show_cam_on_image does it (written
                        out below from its documented behaviour), after
                        resizing the map with cv2.resize (bilinear,
                        half-pixel centres) as its scale_cam_image does.

The versions used are recorded in versions.txt.
"""
import json
import os

import cv2
import matplotlib
import numpy as np
from matplotlib import colormaps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "display", "testdata")


def write_table(name, rgb):
    rgb = np.asarray(rgb, dtype=np.int64)
    assert rgb.shape == (256, 3), rgb.shape
    with open(os.path.join(OUT, name), "w") as f:
        for r, g, b in rgb:
            f.write(f"{r} {g} {b}\n")


ramp = np.arange(256, dtype=np.uint8).reshape(1, 256)
for name, code in [("jet", cv2.COLORMAP_JET),
                   ("viridis", cv2.COLORMAP_VIRIDIS),
                   ("turbo", cv2.COLORMAP_TURBO)]:
    bgr = cv2.applyColorMap(ramp, code)[0]
    write_table(f"{name}_opencv.txt", bgr[:, ::-1])

for name in ["viridis", "turbo", "gray"]:
    rgba = colormaps[name](np.arange(256), bytes=True)
    write_table(f"{name}_matplotlib.txt", rgba[:, :3])


def show_cam_on_image(img, mask, colormap, image_weight):
    """pytorch-grad-cam's show_cam_on_image(img, mask, use_rgb=True, ...),
    written from its documented steps: colour the mask with
    cv2.applyColorMap(uint8(255*mask)), blend in [0,1] float32 as
    (1-image_weight)*heatmap + image_weight*img, divide by the maximum,
    and return uint8(255*cam)."""
    heatmap = cv2.applyColorMap(np.uint8(255 * mask), colormap)
    heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
    heatmap = np.float32(heatmap) / 255
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


rng = np.random.default_rng(20240601)
cases = []
for (bw, bh, mw, mh, cmap, cmap_code, image_weight) in [
        (13, 9, 4, 3, "jet", cv2.COLORMAP_JET, 0.5),
        (16, 16, 16, 16, "jet", cv2.COLORMAP_JET, 0.5),
        (10, 14, 7, 5, "viridis", cv2.COLORMAP_VIRIDIS, 0.7),
        (11, 6, 3, 2, "turbo", cv2.COLORMAP_TURBO, 0.2)]:
    base = rng.integers(0, 256, size=(bh, bw, 3), dtype=np.uint8)
    mask = rng.random((mh, mw), dtype=np.float32)
    # Normalise like pytorch-grad-cam does, so values span [0, 1].
    mask = mask - mask.min()
    mask = mask / (1e-7 + mask.max())
    resized = cv2.resize(mask, (bw, bh))  # INTER_LINEAR
    img = np.float32(base) / 255
    out = show_cam_on_image(img, np.clip(resized, 0, 1), cmap_code,
                            image_weight)
    cases.append({
        "colormap": cmap,
        "alpha": 1 - image_weight,
        "base": {"width": bw, "height": bh,
                 "rgb": base.reshape(-1).tolist()},
        "map": {"width": mw, "height": mh,
                "values": [float(v) for v in mask.reshape(-1)]},
        "resized": [float(v) for v in resized.reshape(-1)],
        "overlay": out.reshape(-1).tolist(),
    })

with open(os.path.join(OUT, "overlay_cases.json"), "w") as f:
    json.dump(cases, f, separators=(",", ":"))
    f.write("\n")

with open(os.path.join(OUT, "versions.txt"), "w") as f:
    f.write(f"opencv {cv2.__version__}\nmatplotlib {matplotlib.__version__}\n"
            f"numpy {np.__version__}\n")
