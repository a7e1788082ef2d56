#!/usr/bin/env bash
# Installs the Debian packages the tests use as independent references and real
# parts: NumPy (reads what convlens writes), PyTorch and ONNX (regenerate the
# reference fixtures), Chromium (renders pages and charts headless).
# Installs only what is missing, so re-running it is cheap.
set -euo pipefail
pkgs=(python3-numpy python3-torch python3-onnx chromium fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
