#!/usr/bin/env bash
# Refuses a tree that tracks an executable binary or a file over 2 MB, other
# than committed data and weights (testdata/, datasets/, models/embedded/weights/).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
while IFS= read -r -d '' f; do
	[ -f "$f" ] || continue
	case "$(head -c 4 "$f" | od -An -tx1 | tr -d ' ')" in
	7f454c46 | 4d5a*) echo "check-tree: $f is an executable binary; remove it from git and build it instead" >&2; status=1 ;;
	esac
	case "$f" in testdata/* | datasets/* | models/embedded/weights/*) continue ;; esac
	if [ "$(stat -c %s "$f")" -gt $((2 << 20)) ]; then
		echo "check-tree: $f is over 2 MB; keep generated bulk out of git" >&2
		status=1
	fi
done < <(git ls-files -z)
exit $status
