#!/usr/bin/env bash
# `make notebook`: set up the notebook environment (scripts/notebook-env.sh:
# Jupyter from Debian, the GoNB kernel go.mod pins, goimports and gopls, the
# kernel spec with convlens' build settings and its module pointed at this
# checkout, the git filter that keeps outputs out of commits) and start
# Jupyter on localhost in notebooks/. Re-running it is harmless.
#
# Environment: NOTEBOOK_PORT (default 8888); CONVLENS_MODEL, an ONNX model
# (a pretrained network, say) that notebooks 02 and 03 then explain instead
# of the committed test model; GOMLX_BACKEND (default go, the offline
# pure-Go backend; xla where its plugin can be had).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
env_line=$("$root/scripts/notebook-env.sh" | tail -n 1)
export "${env_line?}" # JUPYTER_DATA_DIR=...
args=(--no-browser --ip=127.0.0.1 --port="${NOTEBOOK_PORT:-8888}" --notebook-dir="$root/notebooks")
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
[ "$(id -u)" -eq 0 ] && args+=(--allow-root)
echo "starting Jupyter on http://127.0.0.1:${NOTEBOOK_PORT:-8888}/ (open the URL with the token it prints); pick the kernel \"Go (GoNB, convlens)\"" >&2
exec jupyter notebook "${args[@]}"
