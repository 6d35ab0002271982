"""Helpers for the end-to-end tests of `dnnc lsp`: paths, documents, results."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
MNIST_DATA = EXAMPLES / "data" / "mnist"

# Every request must be answered within this many seconds (debug build, 2 cores).
REQUEST_TIMEOUT = 15.0
# Diagnostics must be published within this many seconds of a change.
DIAGNOSTICS_TIMEOUT = 15.0


def _find_dnnc() -> str:
    env = os.environ.get("DNNC")
    if env:
        p = Path(env)
        if not p.is_absolute():
            for base in (Path.cwd(), ROOT):
                if (base / p).exists():
                    return str((base / p).resolve())
            return str((ROOT / p).resolve())
        return str(p)
    return str(ROOT / "target" / "debug" / "dnnc")


DNNC = _find_dnnc()


def lsp_unavailable_reason() -> str | None:
    if not os.access(DNNC, os.X_OK):
        return f"{DNNC} is not an executable; build it with `cargo build -p dnnc`"
    try:
        proc = subprocess.run(
            [DNNC, "lsp", "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return f"`{DNNC} lsp --help` did not finish within 30 s"
    if proc.returncode != 0:
        return (
            f"`{DNNC} lsp --help` failed with status {proc.returncode}: "
            f"{(proc.stdout + proc.stderr).strip()[:500]}"
        )
    return None


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


async def request(awaitable):
    """Awaits one request, failing the test if the server stalls."""
    return await asyncio.wait_for(awaitable, REQUEST_TIMEOUT)


MARKER = re.compile(r"\$(\d)")


def cursors(text: str) -> tuple[str, dict[int, types.Position]]:
    """Removes the markers `$0`..`$9` from `text`; returns it and their positions."""
    positions: dict[int, types.Position] = {}
    out = []
    line = col = 0
    i = 0
    while i < len(text):
        m = MARKER.match(text, i)
        if m:
            positions[int(m.group(1))] = types.Position(line=line, character=col)
            i = m.end()
            continue
        ch = text[i]
        out.append(ch)
        if ch == "\n":
            line += 1
            col = 0
        else:
            col += len(ch.encode("utf-16-le")) // 2
        i += 1
    return "".join(out), positions


def cursor(text: str) -> tuple[str, types.Position]:
    plain, positions = cursors(text)
    assert list(positions) == [0], "expected exactly one $0 marker"
    return plain, positions[0]


def find(text: str, needle: str, nth: int = 0, offset: int = 0) -> types.Position:
    """The position of the `nth` occurrence of `needle`, plus `offset` characters."""
    idx = -1
    for _ in range(nth + 1):
        idx = text.index(needle, idx + 1)
    idx += offset
    line = text.count("\n", 0, idx)
    col = idx - (text.rfind("\n", 0, idx) + 1)
    return types.Position(line=line, character=col)


def line_of(text: str, needle: str, nth: int = 0) -> int:
    return find(text, needle, nth).line


def uri_to_path(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", f"not a file URI: {uri}"
    return Path(unquote(parsed.path))


class Doc:
    """One open document: full-text sync, versions and diagnostics."""

    def __init__(self, client: LanguageClient, path: Path, text: str):
        self.client = client
        self.path = path
        self.uri = path.as_uri()
        self.text = text
        self.version = 0

    @property
    def ident(self) -> types.TextDocumentIdentifier:
        return types.TextDocumentIdentifier(uri=self.uri)

    def open(self) -> int:
        """Sends didOpen; returns the diagnostics mark to wait from."""
        mark = len(self.client.diagnostic_history)
        self.version = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=self.uri, language_id="dnn", version=self.version, text=self.text
                )
            )
        )
        return mark

    def change(self, text: str) -> int:
        """Sends didChange with the whole new text; returns the diagnostics mark."""
        mark = len(self.client.diagnostic_history)
        self.version += 1
        self.text = text
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return mark

    def close(self):
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=self.ident)
        )

    async def diagnostics(self, mark: int, until=None, settle: float = 0.3):
        """The diagnostics published for this document after `mark`.

        Waits for the first publication for this URI (and this version, when the
        server sends versions). With `until` (a predicate on the list), waits until a
        publication satisfies it; otherwise waits `settle` seconds more and returns
        the latest publication, in case the server publishes in stages.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DIAGNOSTICS_TIMEOUT
        found = None
        found_at = None
        while True:
            for p in self.client.diagnostic_history[mark:]:
                if p.uri != self.uri:
                    continue
                if p.version is not None and p.version != self.version:
                    continue
                found = list(p.diagnostics)
                if found_at is None:
                    found_at = loop.time()
                if until is not None and until(found):
                    return found
            server = self.client._server
            if server is not None and server.returncode is not None:
                pytest.fail(
                    f"`dnnc lsp` exited (status {server.returncode}) while waiting "
                    f"for diagnostics of {self.uri}"
                )
            now = loop.time()
            if found is not None and until is None and now - found_at >= settle:
                return found
            if now > deadline:
                if found is None:
                    pytest.fail(
                        f"no textDocument/publishDiagnostics for {self.uri} "
                        f"(version {self.version}) within {DIAGNOSTICS_TIMEOUT} s"
                    )
                pytest.fail(
                    f"the diagnostics for {self.uri} never satisfied the condition; "
                    f"last published: {[diag_summary(d) for d in found]}"
                )
            await asyncio.sleep(0.02)


def diag_summary(d: types.Diagnostic) -> str:
    r = d.range
    return (
        f"{d.code} sev={d.severity} {r.start.line}:{r.start.character}-"
        f"{r.end.line}:{r.end.character} {d.message!r}"
    )


def errors(diags) -> list[types.Diagnostic]:
    return [d for d in diags if d.severity == types.DiagnosticSeverity.Error]


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


def completion_items(result) -> list[types.CompletionItem]:
    if result is None:
        return []
    if isinstance(result, types.CompletionList):
        return list(result.items)
    return list(result)


def labels(items) -> set[str]:
    return {i.label for i in items}


def inserted_text(item: types.CompletionItem) -> str:
    te = item.text_edit
    if te is not None:
        return te.new_text
    if item.insert_text is not None:
        return item.insert_text
    return item.label


def markup_text(value) -> str:
    """Flattens hover contents / documentation to one string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(markup_text(v) for v in value)
    if isinstance(value, types.MarkupContent):
        return value.value
    if isinstance(value, types.MarkedStringWithLanguage):
        return f"```{value.language}\n{value.value}\n```"
    return str(value)


def locations(result) -> list[tuple[str, types.Range]]:
    """(uri, range) of a definition/references result: Location(s) or LocationLink(s)."""
    if result is None:
        return []
    if not isinstance(result, (list, tuple)):
        result = [result]
    out = []
    for loc in result:
        if isinstance(loc, types.LocationLink):
            out.append((loc.target_uri, loc.target_selection_range))
        else:
            out.append((loc.uri, loc.range))
    return out


def offset_of(text: str, pos: types.Position) -> int:
    """UTF-16 position -> index into `text`."""
    lines = text.split("\n")
    assert pos.line <= len(lines), f"position {pos} is past the end of the text"
    idx = sum(len(line) + 1 for line in lines[: pos.line])
    line = lines[pos.line] if pos.line < len(lines) else ""
    units = 0
    col = 0
    while units < pos.character and col < len(line):
        units += len(line[col].encode("utf-16-le")) // 2
        col += 1
    return idx + col


def apply_edits(text: str, edits) -> str:
    """Applies non-overlapping TextEdits (LSP semantics: all against the old text)."""
    spans = []
    for e in edits:
        start, end = offset_of(text, e.range.start), offset_of(text, e.range.end)
        assert start <= end, f"edit with reversed range: {e}"
        spans.append((start, end, e.new_text))
    spans.sort(key=lambda s: (s[0], s[1]))
    for a, b in zip(spans, spans[1:]):
        assert a[1] <= b[0], f"overlapping edits: {a} and {b}"
    out = []
    pos = 0
    for start, end, new in spans:
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def workspace_edits(edit: types.WorkspaceEdit) -> dict[str, list[types.TextEdit]]:
    """The text edits of a WorkspaceEdit, by URI (`changes` or `documentChanges`)."""
    out: dict[str, list] = {}
    if edit is None:
        return out
    for uri, edits in (edit.changes or {}).items():
        out.setdefault(uri, []).extend(edits)
    for dc in edit.document_changes or []:
        assert isinstance(dc, types.TextDocumentEdit), f"unexpected change: {dc}"
        out.setdefault(dc.text_document.uri, []).extend(dc.edits)
    return out


# --------------------------------------------------------------------------------------
# The command line, for comparison
# --------------------------------------------------------------------------------------


def dnnc_check_json(path: Path) -> list[dict]:
    """`dnnc check --message-format json PATH`: its diagnostics for PATH itself."""
    proc = subprocess.run(
        [DNNC, "check", "--message-format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def dnnc_has_fmt() -> bool:
    proc = subprocess.run([DNNC, "fmt", "--help"], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0


def dnnc_fmt(text: str, workdir: Path) -> str:
    """The text as `dnnc fmt FILE` formats it.

    Works with a formatter that rewrites the file in place and with one that prints
    the result to standard output.
    """
    path = workdir / "fmt_input.dnn"
    path.write_text(text)
    proc = subprocess.run([DNNC, "fmt", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"`dnnc fmt` failed: {proc.stdout}{proc.stderr}"
    after = path.read_text()
    if after != text:
        return after
    if proc.stdout:
        return proc.stdout
    return after


# --------------------------------------------------------------------------------------
# Documents used by several tests
# --------------------------------------------------------------------------------------

MNIST_PATH = EXAMPLES / "mnist_mlp.dnn"
MNIST = MNIST_PATH.read_text()

TINY = """\
use std::nn::Dense
use std::activations::relu

/// A tiny two-layer network.
model Tiny {
    fc1 = Dense(784, 256)
    fc2 = Dense(256, 10)

    fn forward(x: [B, 784]) -> [B, 10] {
        let h = relu(fc1(x))
        fc2(h)
    }
}
"""

BLOCKS = """\
use std::nn::Dense

/// A residual block of width `dim`.
layer Block(dim: Int) {
    fc = Dense(dim, dim)

    fn forward(x: [B, dim]) -> [B, dim] {
        x + fc(x)
    }
}

/// Scales its input by two.
fn double(x: [..S]) -> [..S] {
    2.0 * x
}

model Net {
    b1 = Block(16)
    b2 = Block(16)

    fn forward(x: [B, 16]) -> [B, 16] {
        let y = x |> b1 |> b2
        double(y)
    }
}
"""

DENSE_SIGNATURE = "Dense(inp: Int, out: Int, bias: Bool = true)"

# A recurrent model: shapes through `scan` and the LSTM layer.
SEQ = """\
use std::nn::LSTM

model Seq {
    lstm = LSTM(8, 256)
    param w: [16, 16] = zeros
    fn forward(x: [B, T, 8]) -> [B, T, 256] {
        let (seq, state) = lstm(x)
        seq
    }
    fn running(xs: [T, B, 16]) -> [T, B, 16] {
        let hs = scan(v in xs, h = zeros([B, 16])) {
            tanh(v + h @ w)
        }
        hs
    }
}
"""
STD_MODULES = {"nn", "activations", "losses", "regularization", "shape", "explain", "adversarial"}
TOP_LEVEL_KEYWORDS = {"use", "layer", "model", "fn", "dataset", "train"}
TRAIN_FIELDS = {
    "batch",
    "epochs",
    "loss",
    "optimizer",
    "schedule",
    "metrics",
    "early_stop",
    "checkpoint",
    "seed",
    "shuffle",
}
OPTIMIZERS = {"sgd", "adam", "adamw", "rmsprop"}
SCHEDULES = {"constant", "step", "exponential", "cosine"}


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def BIG_LINES(lines: int = 10_000) -> tuple[str, str]:
    """bench/check_10k.py's generated file (valid) and its one-error variant."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_10k", ROOT / "bench" / "check_10k.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate(lines)
