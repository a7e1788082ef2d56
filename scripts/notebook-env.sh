#!/usr/bin/env bash
# Sets up everything the convlens notebooks need, and nothing else; re-running
# it is harmless (it only does what is missing or out of date):
#
#   - Jupyter from Debian's packages (notebook server, nbconvert, nbclient);
#   - the GoNB kernel, built from the version go.mod pins, goimports (GoNB
#     adds a cell's missing imports with it) and gopls (Tab completion and
#     Shift-Tab documentation in the kernel), at pinned versions, into
#     .cache/notebook/bin (ignored by git);
#   - a `go` in that folder, which the kernel runs instead of the
#     toolchain's: it passes everything through, except that when GoNB
#     creates a kernel's Go module (`go mod init gonb_...`, at kernel start
#     and on %reset) it also points the module at this checkout (require
#     convlens v0.0.0, replaced by this folder) and copies convlens' go.sum.
#     Every cell, whichever runs first after a restart, then builds against
#     this checkout and the versions its go.mod pins, and the kernel never
#     resolves convlens or GoMLX from the network;
#   - the kernel spec "gonb" in .cache/notebook/jupyter (a project-local
#     JUPYTER_DATA_DIR), whose environment carries the build settings of
#     scripts/env.sh (GOTOOLCHAIN, GOEXPERIMENT), GOMLX_BACKEND (default "go":
#     the pure-Go backend, offline; export GOMLX_BACKEND=xla before running
#     this to use XLA), a PATH with the folder above first, CONVLENS_ROOT
#     (this checkout) and CONVLENS_ECHARTS_JS, so charts draw offline;
#   - the git filter "convlens-notebook" (notebooks/.gitattributes applies
#     it), which strips outputs and execution counts when git reads a
#     notebook (scripts/notebook-strip.py): running the notebooks in Jupyter
#     leaves `git status` clean.
#
# `make notebook` runs it and then starts Jupyter; the notebook tests
# (notebooks/notebooks_test.go) run it too. Its last line on stdout is
#   JUPYTER_DATA_DIR=<dir>
# which is what `jupyter` needs in its environment to find the kernel.
#
# Environment: CONVLENS_NOTEBOOK_DIR overrides .cache/notebook;
# GOIMPORTS_VERSION and GOPLS_VERSION override the pinned versions.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=env.sh
source scripts/env.sh

say() { echo "notebook-env: $*" >&2; }

# Exact versions (the module proxy does not answer @latest for every module).
# goimports: GoNB runs it on every cell to add missing imports. gopls:
# v0.24.0 is the newest the proxy serves; it needs Go 1.27, which
# scripts/env.sh selects.
goimports_version=${GOIMPORTS_VERSION:-v0.50.0}
gopls_version=${GOPLS_VERSION:-v0.24.0}
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

# 3. goimports and gopls (GoNB starts gopls when it is on the kernel's PATH).
install_tool() { # name package version
	local stamp=$bin/$1.version
	if [ ! -x "$bin/$1" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$3" ]; then
		say "installing $1 $3"
		GOBIN=$bin go install "$2@$3"
		echo "$3" >"$stamp"
	fi
}
install_tool goimports golang.org/x/tools/cmd/goimports "$goimports_version"
install_tool gopls golang.org/x/tools/gopls "$gopls_version"

# 4. The kernel's `go` (see the top of this file). The real one is looked up
# on a PATH without this folder.
real_go=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$bin" | paste -sd: -) && command -v go)
sed -e "s|@GO@|$real_go|g" -e "s|@ROOT@|$root|g" >"$bin/go.tmp" <<'SHIM'
#!/usr/bin/env bash
# Written by scripts/notebook-env.sh: the go command of the convlens kernel.
# It runs @GO@, except that when GoNB creates the kernel's module
# (go mod init gonb_...) it also requires convlens from @ROOT@ and copies
# convlens' go.sum, so that cells build against the checkout and the
# versions its go.mod pins, whichever cell runs first.
if [ "${1-}" = mod ] && [ "${2-}" = init ] && [[ "${3-}" == gonb_* ]]; then
	"@GO@" "$@" || exit
	"@GO@" mod edit -require=github.com/convlens/convlens@v0.0.0 -replace=github.com/convlens/convlens=@ROOT@ || exit
	exec cp "@ROOT@/go.sum" go.sum
fi
exec "@GO@" "$@"
SHIM
chmod +x "$bin/go.tmp"
mv "$bin/go.tmp" "$bin/go"

# 5. The git filter that keeps outputs out of what git stores of a notebook.
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$root" config filter.convlens-notebook.clean "/usr/bin/python3 scripts/notebook-strip.py"
fi

# 6. echarts.min.js for offline charts (npm package echarts, Apache-2.0), if npm can get it.
echarts=${CONVLENS_ECHARTS_JS:-}
if [ -z "$echarts" ]; then
	if echarts=$(sh display/testdata/fetch_echarts.sh 2>/dev/null); then
		:
	else
		echarts=""
		say "no local echarts.min.js (npm unavailable?): charts will load echarts from the network"
	fi
fi

# 7. The kernel spec. `gonb --install` writes kernel.json with an empty
# environment; the build settings go in afterwards.
JUPYTER_DATA_DIR=$jupyter_dir "$bin/gonb" --install --force_deps --logtostderr 2>/dev/null
go_bin=$(dirname "$real_go")
KERNEL_JSON=$jupyter_dir/kernels/gonb/kernel.json \
	KERNEL_PATH="$bin:$go_bin:\${PATH}" \
	KERNEL_BACKEND="${GOMLX_BACKEND:-go}" \
	KERNEL_ECHARTS="$echarts" \
	KERNEL_ROOT="$root" \
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
    "CONVLENS_ROOT": os.environ["KERNEL_ROOT"],
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
say "kernel \"gonb\" ready in $jupyter_dir (GoNB $gonb_version, goimports $goimports_version, gopls $gopls_version, GOMLX_BACKEND=${GOMLX_BACKEND:-go})"
echo "JUPYTER_DATA_DIR=$jupyter_dir"
