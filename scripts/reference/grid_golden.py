#!/usr/bin/python3
"""Writes the golden images of display/grid_test.go: display/testdata/grid_*.png.

Run from anywhere with Debian's python3 (NumPy, matplotlib):

    /usr/bin/python3 scripts/reference/grid_golden.py

The pictures are built here from the specification alone, not from the Go
code's output:

  * layout: the geometry documented in display/grid.go (margin 8, gap 6,
    label strip 15, title strip 22; columns ceil(sqrt(min(n, per_page))));
  * tile contents: each map min-max normalised on its own in float32, a
    constant map giving zeros; colour index floor(float32(255 * v)), as
    pytorch-grad-cam's np.uint8(255 * mask); enlarged by whole-factor pixel
    repetition (np.kron);
  * colours: grey is (i, i, i); viridis and turbo are matplotlib's own
    tables, rounded half-to-even to 8 bits as OpenCV's built-in tables are.

Text cannot be reproduced outside Go's font rasteriser, so the label and
title strips are painted magenta (255, 0, 255): the test skips those pixels
in the comparison and checks instead that the strips hold dark ink.
"""

import os
import struct
import zlib

import matplotlib
import numpy as np

MARGIN, GAP, LABEL_H, TITLE_H = 8, 6, 15, 22
PAPER = (255, 255, 255)
MASK = (255, 0, 255)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "display", "testdata")


def table(name):
    if name == "grey":
        return np.stack([np.arange(256)] * 3, axis=1).astype(np.uint8)
    colours = matplotlib.colormaps[name](np.arange(256))[:, :3]
    return np.round(colours * 255).astype(np.uint8)  # np.round is half-to-even


def normalise(m):
    m = m.astype(np.float32)
    lo, hi = m.min(), m.max()
    if hi == lo:
        return np.zeros_like(m)
    return (m - lo) / np.float32(hi - lo)


def tile(m, cmap, f):
    v = normalise(m)
    idx = np.floor(np.float32(255) * v).astype(np.int64).clip(0, 255)
    rgb = table(cmap)[idx]
    return np.kron(rgb, np.ones((f, f, 1), dtype=np.uint8))


def grid(maps, cmap, f, per_page, page, title):
    n = len(maps)
    cols = int(np.ceil(np.sqrt(min(n, per_page))))
    first, end = page * per_page, min((page + 1) * per_page, n)
    rows = (end - first + cols - 1) // cols
    th, tw = maps[0].shape[0] * f, maps[0].shape[1] * f
    top = MARGIN + (TITLE_H if title else 0)
    width = 2 * MARGIN + cols * tw + (cols - 1) * GAP
    height = top + rows * (LABEL_H + th) + (rows - 1) * GAP + MARGIN
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = PAPER
    if title:
        img[MARGIN:MARGIN + TITLE_H, MARGIN:width - MARGIN] = MASK
    for k in range(first, end):
        col, row = (k - first) % cols, (k - first) // cols
        x = MARGIN + col * (tw + GAP)
        y = top + row * (LABEL_H + th + GAP)
        img[y:y + LABEL_H, x:x + tw] = MASK
        img[y + LABEL_H:y + LABEL_H + th, x:x + tw] = tile(maps[k], cmap, f)
    return img


def write_png(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def five_maps():
    """The five 4x4 maps of TestFilterGridGolden, in the same order."""
    x = np.arange(4)[None, :].repeat(4, 0)
    y = np.arange(4)[:, None].repeat(4, 1)
    ramp = np.array([-1, 0, 1, 3], dtype=np.float32)[x]  # 0, 1/4, 1/2, 1
    tall = 1000 + 500 * y.astype(np.float32)  # 0, 1/3, 2/3, 1
    blank = np.zeros((4, 4), dtype=np.float32)  # constant: all zero
    checker = np.where((x + y) % 2 == 0, -2, -1).astype(np.float32)  # 0 / 1
    hot = np.full((4, 4), 0.1, dtype=np.float32)
    hot[1, 2] = 5  # row 1, column 2
    return [ramp, tall, blank, checker, hot]


def ten_maps():
    """The ten 2x2 maps of TestFilterGridPages: map k is [[k, k+1], [k+2, 2k+3]]."""
    return [np.array([[k, k + 1], [k + 2, 2 * k + 3]], dtype=np.float32) for k in range(10)]


if __name__ == "__main__":
    write_png(os.path.join(OUT, "grid_grey.png"), grid(five_maps(), "grey", 8, 64, 0, False))
    write_png(os.path.join(OUT, "grid_viridis.png"), grid(five_maps(), "viridis", 8, 64, 0, False))
    write_png(os.path.join(OUT, "grid_turbo_page2.png"), grid(ten_maps(), "turbo", 24, 4, 1, True))
