#!/usr/bin/python3
"""Strips a Jupyter notebook to what is committed: its cells' sources and
metadata, without outputs, execution counts or the per-run metadata Jupyter
adds, written in Jupyter's own format (sorted keys, one-space indent).

  notebook-strip.py < in.ipynb > out.ipynb   (the git filter "convlens-notebook")
  notebook-strip.py FILE...                  (rewrites the files in place)
  notebook-strip.py --check FILE...          (exit 1, naming them, if any would change)

scripts/notebook-env.sh registers it as the clean filter that
notebooks/.gitattributes applies to the notebooks, so that running them in
Jupyter (which saves outputs into the file) leaves `git status` clean, and
notebooks/notebooks_test.go checks that committed notebooks are stripped.
"""
import json
import sys

# Cell metadata Jupyter writes while a notebook is used, not part of it.
RUN_METADATA = ("execution", "collapsed", "jupyter", "ExecuteTime")


def strip(text):
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        meta = cell.get("metadata", {})
        for key in RUN_METADATA:
            meta.pop(key, None)
        if "attachments" in cell and not cell["attachments"]:
            del cell["attachments"]
    meta = nb.get("metadata", {})
    meta.pop("widgets", None)
    # The kernel rewrites its language's details (the Go version and build
    # flags among them) whenever it starts: keep only the language's name.
    if "language_info" in meta:
        meta["language_info"] = {"name": meta["language_info"].get("name", "go")}
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main(args):
    check = args[:1] == ["--check"]
    if check:
        args = args[1:]
    if not args:
        sys.stdout.write(strip(sys.stdin.read()))
        return 0
    changed = []
    for path in args:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        out = strip(text)
        if out != text:
            changed.append(path)
            if not check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(out)
    if check and changed:
        print("not stripped (run scripts/notebook-strip.py on them): " + " ".join(changed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
