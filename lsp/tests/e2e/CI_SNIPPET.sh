# --- the language server, end to end: a real LSP client (pytest-lsp) drives `dnnc lsp` ---
# To paste into .ci/run after `cargo build -p dnnc` (which defines $dnnc and `step`).
# Also runs on its own from the repository root: `bash lsp/tests/e2e/CI_SNIPPET.sh`.
# Needs python3 with pip and PyPI (pytest, pytest-asyncio, pytest-lsp, pygls, lsprotocol).
dnnc=${dnnc:-target/debug/dnnc}
if ! declare -F step >/dev/null; then
    set -euo pipefail
    step() { echo; echo "==> $*"; }
fi

step "python3 -m pip install -r lsp/tests/e2e/requirements.txt"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    -r lsp/tests/e2e/requirements.txt

step "DNNC=$dnnc python3 -m pytest lsp/tests/e2e -q"
DNNC="$dnnc" python3 -m pytest lsp/tests/e2e -q -p no:cacheprovider

# benchmark (quick mode; not a test: it fails only if the server misbehaves, never
# because it is slow)
step "python3 bench/lsp_latency.py --quick --dnnc $dnnc"
python3 bench/lsp_latency.py --quick --dnnc "$dnnc"
