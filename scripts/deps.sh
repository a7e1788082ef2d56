#!/usr/bin/env bash
# Installs the Debian packages the tests use as independent references and real
# parts: NumPy (reads what convlens writes), OpenCV (resizing reference),
# PyTorch, torchvision and ONNX (export reference models and regenerate the
# reference fixtures), Chromium (renders pages and charts headless, prints
# reports to PDF), poppler-utils (pdfinfo, pdftoppm: checks the printed
# report), Jupyter (executes the notebooks; scripts/notebook-env.sh sets up
# the GoNB kernel), chromium-driver and python3-selenium (drive Chromium
# through the notebooks in the browser test, notebooks/browser_test.go), and
# echarts from npm for offline charts.
# Installs only what is missing, so re-running it is cheap.
set -euo pipefail
# shellcheck source=apt.sh
source "$(dirname "$0")/apt.sh"
apt_install python3-numpy python3-opencv python3-torch python3-torchvision python3-onnx chromium chromium-driver fonts-dejavu-core \
	poppler-utils jupyter-notebook jupyter-nbconvert python3-nbclient python3-ipykernel python3-selenium
# A local echarts.min.js (npm package echarts, Apache-2.0) so chart pages draw offline.
sh "$(dirname "$0")/../display/testdata/fetch_echarts.sh" >/dev/null
