"""textDocument/publishDiagnostics: the same diagnostics as `dnnc check`."""

import pytest
from lsprotocol import types

from helpers import (
    BIG_LINES,
    EXAMPLES,
    MNIST,
    MNIST_PATH,
    TINY,
    diag_summary,
    dnnc_check_json,
    errors,
    line_of,
    replace_once,
)

SHAPE_CODES = {"E0300", "E0303"}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.dnn")), ids=lambda p: p.name)
async def test_examples_have_no_errors(open_doc, path):
    doc, mark = open_doc(path.name, path.read_text(), directory=path.parent)
    diags = await doc.diagnostics(mark)
    assert errors(diags) == [], [diag_summary(d) for d in diags]


async def test_edit_introduces_and_fixes_a_shape_error(open_doc):
    doc, mark = open_doc(MNIST_PATH.name, MNIST, directory=MNIST_PATH.parent)
    assert errors(await doc.diagnostics(mark)) == []

    broken = replace_once(MNIST, "fc2  = Dense(hidden, hidden)", "fc2  = Dense(hidden + 1, hidden)")
    mark = doc.change(broken)
    diags = await doc.diagnostics(mark, until=lambda ds: any(d.code in SHAPE_CODES for d in ds))
    shape = [d for d in diags if d.code in SHAPE_CODES]
    assert len(shape) == 1, [diag_summary(d) for d in diags]
    d = shape[0]
    # The pipeline in `forward` is where `fc2` receives `[B, hidden]`.
    assert d.range.start.line == line_of(broken, "x |> fc1 |> relu"), diag_summary(d)
    assert d.severity == types.DiagnosticSeverity.Error
    assert d.source == "dnnc"
    assert d.message and d.message[0] == d.message[0].lower(), d.message
    assert not d.message.endswith("."), d.message

    mark = doc.change(MNIST)
    diags = await doc.diagnostics(mark, until=lambda ds: not errors(ds))
    assert errors(diags) == []


async def test_matmul_error_is_e0300_at_the_operator(open_doc):
    text = """\
/// `W` has its axes the wrong way round.
layer Bad(inp: Int, out: Int) {
    param W: [out, inp] = glorot_uniform

    fn forward(x: [B, inp]) -> [B, out] {
        x @ W
    }
}

model Net {
    l = Bad(3, 4)
    fn forward(x: [B, 3]) -> [B, 4] { l(x) }
}
"""
    doc, mark = open_doc("matmul.dnn", text)
    diags = await doc.diagnostics(mark, until=lambda ds: any(d.code == "E0300" for d in ds))
    d = next(d for d in diags if d.code == "E0300")
    assert d.range.start.line == line_of(text, "x @ W"), diag_summary(d)
    assert d.source == "dnnc" and d.severity == types.DiagnosticSeverity.Error


VARIANTS = {
    # a shape error in a sub-layer binding's use
    "shape": lambda t: replace_once(t, "fc2 = Dense(256, 10)", "fc2 = Dense(128, 10)"),
    # an unknown name
    "unknown-name": lambda t: replace_once(t, "relu(fc1(x))", "rulu(fc1(x))"),
    # an import of something that does not exist
    "bad-import": lambda t: replace_once(
        t, "use std::activations::relu", "use std::activations::{relu, relux}"
    ),
    # a syntax error: the declaration is skipped, the others are still checked
    "syntax": lambda t: replace_once(t, "let h = relu(fc1(x))", "let h = relu(fc1(x)"),
    "syntax-and-shape": lambda t: replace_once(
        replace_once(t, "fc2 = Dense(256, 10)", "fc2 = Dense(128, 10)"),
        "/// A tiny",
        "fn oops(x: [B]) -> [B] { x + }\n\n/// A tiny",
    ),
    "unterminated-comment": lambda t: t + "/* never closed\n",
    "unterminated-string": lambda t: t + 'dataset d { train = (x: csv("oops) }\n',
    "control-byte": lambda t: t + "\x01\n",
}


def cli_summary(d: dict) -> tuple:
    sev = {"error": 1, "warning": 2}[d["severity"]]
    return (
        d["code"],
        sev,
        (d["line"] - 1, d["column"] - 1),
        (d["end_line"] - 1, d["end_column"] - 1),
        d["message"],
    )


def lsp_summary(d: types.Diagnostic) -> tuple:
    """Like cli_summary; the message's first line is the CLI's message (the server may
    add the primary label, notes and help on further lines)."""
    r = d.range
    return (
        d.code,
        int(d.severity),
        (r.start.line, r.start.character),
        (r.end.line, r.end.character),
        d.message.split("\n")[0],
    )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_diagnostics_match_dnnc_check(open_doc, workdir, variant):
    """Code, severity, primary span and message equal `dnnc check`'s, file by file."""
    text = VARIANTS[variant](TINY)
    path = workdir / f"{variant}.dnn"
    path.write_text(text)
    expected = sorted(cli_summary(d) for d in dnnc_check_json(path) if d["file"] == str(path))
    assert expected, f"`dnnc check` finds no error in the {variant} variant"

    doc, mark = open_doc(path.name, text)
    diags = await doc.diagnostics(
        mark, until=lambda ds: sorted(lsp_summary(d) for d in ds) == expected
    )
    for d in diags:
        assert d.source == "dnnc", diag_summary(d)


async def test_huge_file(open_doc):
    """A 10,000-line file: diagnostics in time, and one error found at its line."""
    text, error_text = BIG_LINES()
    doc, mark = open_doc("big.dnn", text)
    diags = await doc.diagnostics(mark)
    assert errors(diags) == [], [diag_summary(d) for d in diags[:5]]

    mark = doc.change(error_text)
    diags = await doc.diagnostics(mark, until=lambda ds: len(errors(ds)) == 1)
    (d,) = errors(diags)
    # The broken block is the one whose `down` maps `hidden` to `hidden`.
    bad = error_text.index("down = Dense(hidden, hidden)")
    start = error_text.rfind("\nlayer ", 0, bad)
    end = error_text.index("\n}\n", bad)
    first, last = error_text.count("\n", 0, start) + 1, error_text.count("\n", 0, end) + 1
    assert first <= d.range.start.line <= last, diag_summary(d)
