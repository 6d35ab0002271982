"""textDocument/formatting: the same text as `dnnc fmt`, no edits on syntax errors."""

import pytest
from lsprotocol import types

from helpers import TINY, apply_edits, dnnc_fmt, dnnc_has_fmt, errors, request

MESSY = """\
use   std::nn::Dense
use std::activations::relu
/// A tiny two-layer network.
model Tiny{
fc1=Dense(784,256)
      fc2 = Dense( 256 ,10 )
  fn forward(x:[B,784])->[B,10]{
let h=relu(fc1(x))
        fc2( h )
}
}
"""

OPTIONS = types.FormattingOptions(tab_size=4, insert_spaces=True)


async def format_doc(client, doc):
    result = await request(
        client.text_document_formatting_async(
            types.DocumentFormattingParams(text_document=doc.ident, options=OPTIONS)
        )
    )
    return result or []


async def test_formatting_a_messy_document(client, open_doc, workdir):
    doc, mark = open_doc("messy.dnn", MESSY)
    assert errors(await doc.diagnostics(mark)) == [], "MESSY must be a valid file"
    edits = await format_doc(client, doc)
    assert edits, "no edits for a badly formatted file"
    formatted = apply_edits(MESSY, edits)

    lines = formatted.split("\n")
    for expected in (
        "use std::nn::Dense",
        "model Tiny {",
        "    fc1 = Dense(784, 256)",
        "    fc2 = Dense(256, 10)",
        "    fn forward(x: [B, 784]) -> [B, 10] {",
        "        let h = relu(fc1(x))",
        "        fc2(h)",
    ):
        assert expected in lines, f"{expected!r} not in:\n{formatted}"
    assert all(line == line.rstrip() for line in lines), "trailing whitespace"
    assert formatted.endswith("}\n")

    if dnnc_has_fmt():
        assert formatted == dnnc_fmt(MESSY, workdir), "differs from `dnnc fmt`"

    # Formatting is idempotent, and the formatted file is still valid.
    mark = doc.change(formatted)
    assert errors(await doc.diagnostics(mark)) == []
    again = apply_edits(formatted, await format_doc(client, doc))
    assert again == formatted


async def test_formatting_matches_dnnc_fmt_on_the_examples(client, open_doc, workdir):
    if not dnnc_has_fmt():
        pytest.skip("this dnnc has no `fmt` command to compare with")
    from helpers import EXAMPLES

    for path in sorted(EXAMPLES.glob("*.dnn")):
        text = path.read_text()
        doc, mark = open_doc(path.name, text, directory=path.parent)
        formatted = apply_edits(text, await format_doc(client, doc))
        assert formatted == dnnc_fmt(text, workdir), f"{path.name}: differs from `dnnc fmt`"


async def test_formatting_a_well_formatted_document_changes_nothing(client, open_doc):
    doc, mark = open_doc("tiny.dnn", TINY)
    assert apply_edits(TINY, await format_doc(client, doc)) == TINY


@pytest.mark.parametrize(
    "broken",
    [
        MESSY.replace("relu(fc1(x))", "relu(fc1(x)"),  # unbalanced
        MESSY.replace("fc2( h )", "fc2( h ) +"),  # dangling operator
        MESSY + "/* never closed\n",
    ],
    ids=["unbalanced", "dangling-operator", "unterminated-comment"],
)
async def test_no_edits_for_a_file_with_syntax_errors(client, open_doc, broken):
    doc, mark = open_doc("broken.dnn", broken)
    edits = await format_doc(client, doc)
    assert edits == [], f"formatting a file with syntax errors returned {len(edits)} edits"
