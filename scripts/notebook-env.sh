#!/usr/bin/env bash
# Sets up everything the convlens notebooks need, and nothing else; re-running
# it is harmless (it only does what is missing or out of date):
#
#   - Jupyter from Debian's packages (notebook server, nbconvert, nbclient);
#   - the GoNB kernel, built from the version go.mod pins, and goimports,
#     both into .cache/notebook/bin (ignored by git);
#   - the kernel spec "gonb" in .cache/notebook/jupyter (a project-local
#     JUPYTER_DATA_DIR), whose environment carries the build settings of
#     scripts/env.sh (GOTOOLCHAIN, GOEXPERIMENT), GOMLX_BACKEND (default "go":
#     the pure-Go backend, offline; export GOMLX_BACKEND=xla before running
#     this to use XLA), a PATH with goimports, and CONVLENS_ECHARTS_JS so
#     charts draw offline.
#
# `make notebook` runs it and then starts Jupyter; the notebook tests
# (notebooks/notebooks_test.go) run it too. Its last line on stdout is
#   JUPYTER_DATA_DIR=<dir>
# which is what `jupyter` needs in its environment to find the kernel.
#
# Environment: CONVLENS_NOTEBOOK_DIR overrides .cache/notebook;
# GOIMPORTS_VERSION overrides the pinned goimports version.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=env.sh
source scripts/env.sh

say() { echo "notebook-env: $*" >&2; }

# goimports: an exact version (the module proxy does not answer @latest for
# every module); GoNB runs it on every cell to add missing imports.
goimports_version=${GOIMPORTS_VERSION:-v0.50.0}
dir=${CONVLENS_NOTEBOOK_DIR:-$root/.cache/notebook}
bin=$dir/bin
jupyter_dir=$dir/jupyter
mkdir -p "$bin" "$jupyter_dir"

# 1. Jupyter, from Debian.
# shellcheck source=apt.sh
source scripts/apt.sh
apt_install jupyter-notebook jupyter-nbconvert python3-nbclient python3-ipykernel

# 2. GoNB at the version go.mod pins. It is built in a scratch module (GoNB's
# own dependencies are not in convlens' go.sum); `go install gonb@version`
# would do the same but fails on proxies that refuse the version list.
gonb_version=$(go list -m -f '{{.Version}}' github.com/janpfeifer/gonb)
stamp=$bin/gonb.version
if [ ! -x "$bin/gonb" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$gonb_version" ]; then
	say "building GoNB $gonb_version"
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT
	(
		cd "$scratch"
		go mod init convlens-notebook-tools >/dev/null 2>&1
		go mod edit -require="github.com/janpfeifer/gonb@$gonb_version"
		GOFLAGS=-mod=mod go build -o "$bin/gonb.tmp" github.com/janpfeifer/gonb
	)
	mv "$bin/gonb.tmp" "$bin/gonb"
	echo "$gonb_version" >"$stamp"
fi

# 3. goimports.
stamp=$bin/goimports.version
if [ ! -x "$bin/goimports" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$goimports_version" ]; then
	say "installing goimports $goimports_version"
	GOBIN=$bin go install "golang.org/x/tools/cmd/goimports@$goimports_version"
	echo "$goimports_version" >"$stamp"
fi

# 4. echarts.min.js for offline charts (npm package echarts, Apache-2.0), if npm can get it.
echarts=${CONVLENS_ECHARTS_JS:-}
if [ -z "$echarts" ]; then
	if echarts=$(sh display/testdata/fetch_echarts.sh 2>/dev/null); then
		:
	else
		echarts=""
		say "no local echarts.min.js (npm unavailable?): charts will load echarts from the network"
	fi
fi

# 5. The kernel spec. `gonb --install` writes kernel.json with an empty
# environment; the build settings go in afterwards.
JUPYTER_DATA_DIR=$jupyter_dir "$bin/gonb" --install --force_deps --logtostderr 2>/dev/null
go_bin=$(dirname "$(command -v go)")
KERNEL_JSON=$jupyter_dir/kernels/gonb/kernel.json \
	KERNEL_PATH="$bin:$go_bin:\${PATH}" \
	KERNEL_BACKEND="${GOMLX_BACKEND:-go}" \
	KERNEL_ECHARTS="$echarts" \
	/usr/bin/python3 - <<'EOF'
import json, os
path = os.environ["KERNEL_JSON"]
with open(path) as f:
    spec = json.load(f)
env = {
    "GOTOOLCHAIN": os.environ["GOTOOLCHAIN"],
    "GOEXPERIMENT": os.environ["GOEXPERIMENT"],
    "GOMLX_BACKEND": os.environ["KERNEL_BACKEND"],
    "PATH": os.environ["KERNEL_PATH"],
    "CONVLENS_NOTEBOOK_KERNEL": "1",
}
if os.environ["KERNEL_ECHARTS"]:
    env["CONVLENS_ECHARTS_JS"] = os.environ["KERNEL_ECHARTS"]
spec["env"] = env
spec["display_name"] = "Go (GoNB, convlens)"
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(spec, f, indent=1)
    f.write("\n")
os.replace(tmp, path)
EOF
say "kernel \"gonb\" ready in $jupyter_dir (GoNB $gonb_version, goimports $goimports_version, GOMLX_BACKEND=${GOMLX_BACKEND:-go})"
echo "JUPYTER_DATA_DIR=$jupyter_dir"
