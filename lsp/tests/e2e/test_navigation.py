"""hover, definition, references, rename, documentSymbol, inlayHint, signatureHelp."""

import re

import pytest
from lsprotocol import types

from helpers import (
    BLOCKS,
    DENSE_SIGNATURE,
    MNIST,
    MNIST_PATH,
    SEQ,
    TINY,
    apply_edits,
    cursor,
    errors,
    find,
    line_of,
    locations,
    markup_text,
    offset_of,
    request,
    uri_to_path,
    workspace_edits,
)


async def hover(client, doc, pos):
    result = await request(
        client.text_document_hover_async(types.HoverParams(text_document=doc.ident, position=pos))
    )
    assert result is not None, f"no hover at {pos}"
    return result


def dnn_code_blocks(text: str) -> list[str]:
    return re.findall(r"```dnn\n(.*?)```", text, flags=re.S)


# --------------------------------------------------------------------------------------
# hover
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc_text, needle, offset, expected",
    [
        (TINY, "let h", 4, "f32[B, 256]"),  # the `let` name
        (TINY, "fc2(h)", 4, "f32[B, 256]"),  # a use of the binding
        (TINY, "fc1(x)", 4, "f32[B, 784]"),  # a use of the parameter
        (BLOCKS, "let y", 4, "f32[B, 16]"),
        (BLOCKS, "2.0 * x", 4, "f32[..S]"),  # an expression: `2.0 * x`
        (BLOCKS, "x + fc(x)", 2, "f32[B, dim]"),  # an expression: `x + fc(x)`
        (SEQ, "let (seq", 6, "f32[B, T, 256]"),  # the LSTM's sequence
        (SEQ, "let hs", 4, "f32[T, B, 16]"),  # a `scan`'s stacked states
        (SEQ, "h = zeros", 0, "f32[B, 16]"),  # the carried state
        (SEQ, "v + h", 0, "f32[B, 16]"),  # the step's slice inside the body
    ],
)
async def test_hover_shows_the_type(client, open_doc, doc_text, needle, offset, expected):
    doc, mark = open_doc("doc.dnn", doc_text)
    await doc.diagnostics(mark)
    result = await hover(client, doc, find(doc_text, needle, offset=offset))
    assert isinstance(result.contents, types.MarkupContent), result.contents
    assert result.contents.kind == types.MarkupKind.Markdown
    blocks = dnn_code_blocks(result.contents.value)
    assert any(expected in b for b in blocks), (
        f"no ```dnn block with {expected}: {result.contents.value!r}"
    )


@pytest.mark.parametrize(
    "doc_text, needle, offset, signature, docs",
    [
        (TINY, "Dense(784", 0, DENSE_SIGNATURE, "Fully connected layer"),
        (TINY, "use std::nn::Dense", 13, DENSE_SIGNATURE, "Fully connected layer"),
        (TINY, "relu(fc1", 1, r"relu(x: (f32)?[..S]) -> (f32)?[..S]", "Rectified linear unit"),
        (BLOCKS, "Block(16)", 0, "Block(dim: Int)", "A residual block of width"),
        (
            BLOCKS,
            "double(y)",
            2,
            r"double(x: (f32)?[..S]) -> (f32)?[..S]",
            "Scales its input by two",
        ),
    ],
)
async def test_hover_shows_signature_and_doc(
    client, open_doc, doc_text, needle, offset, signature, docs
):
    doc, mark = open_doc("doc.dnn", doc_text)
    await doc.diagnostics(mark)
    result = await hover(client, doc, find(doc_text, needle, offset=offset))
    text = markup_text(result.contents)
    # `signature` is literal text, except that `(f32)?` may be there or not
    pattern = re.escape(signature).replace(re.escape("(f32)?"), "(f32)?")
    assert re.search(pattern, text), text
    assert docs in text, text


async def test_hover_in_whitespace_or_comment_is_null_or_empty(client, open_doc):
    doc, mark = open_doc("tiny.dnn", TINY)
    await doc.diagnostics(mark)
    for pos in (types.Position(line=2, character=0), find(TINY, "two-layer")):
        result = await request(
            client.text_document_hover_async(
                types.HoverParams(text_document=doc.ident, position=pos)
            )
        )
        assert result is None or not markup_text(result.contents).strip().startswith("```dnn\nf32")


# --------------------------------------------------------------------------------------
# definition
# --------------------------------------------------------------------------------------


async def definition(client, doc, pos):
    result = await request(
        client.text_document_definition_async(
            types.DefinitionParams(text_document=doc.ident, position=pos)
        )
    )
    return locations(result)


@pytest.mark.parametrize("needle, offset", [("Dense(784", 2), ("use std::nn::Dense", 14)])
async def test_definition_of_dense_is_in_the_std_library(client, open_doc, needle, offset):
    doc, mark = open_doc("tiny.dnn", TINY)
    await doc.diagnostics(mark)
    locs = await definition(client, doc, find(TINY, needle, offset=offset))
    assert len(locs) == 1, locs
    uri, rng = locs[0]
    assert uri.endswith("std/nn.dnn"), uri
    path = uri_to_path(uri)
    assert path.is_file(), f"{path} does not exist"
    # The user's own copy: not in a directory others share or may write.
    import os
    import stat
    import tempfile

    assert not str(path).startswith(tempfile.gettempdir() + "/dnnc-0"), path
    assert path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0, oct(
        path.stat().st_mode
    )
    assert path.parent.parent.stat().st_mode & 0o077 == 0, oct(path.parent.parent.stat().st_mode)
    assert path.stat().st_uid == os.getuid()
    lines = path.read_text().split("\n")
    covered = lines[rng.start.line : rng.end.line + 1]
    assert any("layer Dense(" in line or line.strip().startswith("Dense") for line in covered) or (
        "Dense" in lines[rng.start.line]
    ), f"{uri} {rng} covers {covered!r}"


@pytest.mark.parametrize(
    "doc_text, needle, offset, target",
    [
        (TINY, "fc2(h)", 4, "let h"),
        (TINY, "fc1(x)", 0, "fc1 = Dense"),
        (TINY, "fc1(x)", 4, "fn forward(x"),
        (BLOCKS, "Block(16)", 0, "layer Block"),
        (BLOCKS, "double(y)", 0, "fn double"),
        (BLOCKS, "double(y)", 7, "let y"),
    ],
)
async def test_definition_in_the_file(client, open_doc, doc_text, needle, offset, target):
    doc, mark = open_doc("doc.dnn", doc_text)
    await doc.diagnostics(mark)
    locs = await definition(client, doc, find(doc_text, needle, offset=offset))
    assert len(locs) == 1, locs
    uri, rng = locs[0]
    assert uri == doc.uri
    want = line_of(doc_text, target)
    assert rng.start.line <= want <= rng.end.line, f"{rng} does not cover line {want}"


# --------------------------------------------------------------------------------------
# references and rename
# --------------------------------------------------------------------------------------


def word_ranges(text: str, word: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(rf"\b{re.escape(word)}\b", text)]


@pytest.mark.parametrize("include_declaration", [True, False])
async def test_references_of_a_layer(client, open_doc, include_declaration):
    doc, mark = open_doc("blocks.dnn", BLOCKS)
    await doc.diagnostics(mark)
    result = await request(
        client.text_document_references_async(
            types.ReferenceParams(
                text_document=doc.ident,
                position=find(BLOCKS, "Block(16)", nth=1, offset=2),
                context=types.ReferenceContext(include_declaration=include_declaration),
            )
        )
    )
    locs = locations(result)
    assert all(uri == doc.uri for uri, _ in locs), locs
    spans = sorted((offset_of(BLOCKS, r.start), offset_of(BLOCKS, r.end)) for _, r in locs)
    for a, b in spans:
        assert BLOCKS[a:b] == "Block", f"a reference covers {BLOCKS[a:b]!r}"
    expected = word_ranges(BLOCKS, "Block")  # declaration, b1, b2
    if not include_declaration:
        expected = expected[1:]
    assert spans == expected


@pytest.mark.parametrize(
    "doc_text, needle, offset, old, new",
    [
        (BLOCKS, "layer Block", 6, "Block", "Unit"),  # from the declaration
        (BLOCKS, "Block(16)", 3, "Block", "Unit"),  # from a use
        (BLOCKS, "double(y)", 1, "double", "twice"),  # a function
        (TINY, "let h", 4, "h", "hidden"),  # a `let` binding
        (TINY, "fc1 = Dense", 1, "fc1", "first"),  # a sub-layer binding
        (BLOCKS, "fn forward(x: [B, dim])", 11, "x", "inp"),  # a parameter (in Block only)
    ],
)
async def test_rename(client, open_doc, doc_text, needle, offset, old, new):
    doc, mark = open_doc("doc.dnn", doc_text)
    await doc.diagnostics(mark)
    pos = find(doc_text, needle, offset=offset)
    edit = await request(
        client.text_document_rename_async(
            types.RenameParams(text_document=doc.ident, position=pos, new_name=new)
        )
    )
    by_uri = workspace_edits(edit)
    assert set(by_uri) == {doc.uri}, f"rename touches {sorted(by_uri)}"
    renamed = apply_edits(doc_text, by_uri[doc.uri])

    if old == "x":
        # Only Block's parameter: the `x` of `double` and of Net's `forward` stay.
        start = doc_text.index("layer Block")
        end = doc_text.index("\n}\n", start)
        expected = doc_text[:start] + re.sub(r"\bx\b", new, doc_text[start:end]) + doc_text[end:]
    else:
        expected = re.sub(rf"\b{old}\b", new, doc_text)
    assert renamed == expected

    mark = doc.change(renamed)
    diags = await doc.diagnostics(mark, until=lambda ds: not errors(ds))
    assert errors(diags) == []


# --------------------------------------------------------------------------------------
# documentSymbol
# --------------------------------------------------------------------------------------


async def document_symbols(client, doc):
    result = await request(
        client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=doc.ident)
        )
    )
    assert result, "no document symbols"
    assert all(isinstance(s, types.DocumentSymbol) for s in result), (
        "the client supports hierarchical symbols; expected DocumentSymbol[]"
    )
    return result


def contains(outer: types.Range, inner: types.Range) -> bool:
    def key(p):
        return (p.line, p.character)

    return key(outer.start) <= key(inner.start) and key(inner.end) <= key(outer.end)


def check_ranges(symbols):
    for s in symbols:
        assert contains(s.range, s.selection_range), f"{s.name}: selection outside range"
        for c in s.children or []:
            assert contains(s.range, c.range), f"{c.name} is outside {s.name}"
        check_ranges(s.children or [])


async def test_document_symbols_of_the_mnist_example(client, open_doc):
    doc, mark = open_doc(MNIST_PATH.name, MNIST, directory=MNIST_PATH.parent)
    await doc.diagnostics(mark)
    symbols = await document_symbols(client, doc)
    check_ranges(symbols)
    by_name = {s.name: s for s in symbols}

    mlp = by_name.get("Mlp")
    assert mlp is not None, sorted(by_name)
    assert {c.name for c in mlp.children or []} >= {"fc1", "fc2", "head", "forward"}
    assert "mnist" in by_name, sorted(by_name)
    train_line = line_of(MNIST, "train Mlp(")
    train = [s for s in symbols if s.range.start.line <= train_line <= s.range.end.line]
    assert train and train[0] not in (mlp, by_name["mnist"]), "no symbol for the train block"


async def test_document_symbols_of_layers_and_functions(client, open_doc):
    doc, mark = open_doc("blocks.dnn", BLOCKS)
    await doc.diagnostics(mark)
    symbols = await document_symbols(client, doc)
    check_ranges(symbols)
    by_name = {s.name: s for s in symbols}
    assert {"Block", "double", "Net"} <= set(by_name), sorted(by_name)
    assert {c.name for c in by_name["Block"].children or []} >= {"fc", "forward"}
    assert {c.name for c in by_name["Net"].children or []} >= {"b1", "b2", "forward"}
    assert by_name["double"].kind == types.SymbolKind.Function
    for s in symbols:
        sel = s.selection_range
        line = BLOCKS.split("\n")[sel.start.line]
        assert line[sel.start.character : sel.end.character] == s.name, (
            f"selection range of {s.name} covers {line[sel.start.character : sel.end.character]!r}"
        )


# --------------------------------------------------------------------------------------
# inlayHint
# --------------------------------------------------------------------------------------


def hint_label(h: types.InlayHint) -> str:
    if isinstance(h.label, str):
        return h.label
    return "".join(part.value for part in h.label)


async def inlay_hints(client, doc, text):
    lines = text.split("\n")
    result = await request(
        client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=doc.ident,
                range=types.Range(
                    start=types.Position(line=0, character=0),
                    end=types.Position(line=len(lines) - 1, character=len(lines[-1])),
                ),
            )
        )
    )
    return result or []


async def test_inlay_hints_show_shapes(client, open_doc):
    doc, mark = open_doc("tiny.dnn", TINY)
    await doc.diagnostics(mark)
    hints = await inlay_hints(client, doc, TINY)
    after_h = find(TINY, "let h", offset=5)
    at_h = [h for h in hints if h.position == after_h]
    assert at_h, f"no hint after `let h`; hints: {[(h.position, hint_label(h)) for h in hints]}"
    assert hint_label(at_h[0]).strip() == ": f32[B, 256]", hint_label(at_h[0])
    for binding in ("fc1 = Dense", "fc2 = Dense"):
        line = line_of(TINY, binding)
        assert any(h.position.line == line for h in hints), f"no hint on the `{binding}` line"


async def test_inlay_hints_of_a_range(client, open_doc):
    """Only hints inside the requested range are returned."""
    doc, mark = open_doc("blocks.dnn", BLOCKS)
    await doc.diagnostics(mark)
    line = line_of(BLOCKS, "let y")
    result = await request(
        client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=doc.ident,
                range=types.Range(
                    start=types.Position(line=line, character=0),
                    end=types.Position(line=line + 1, character=0),
                ),
            )
        )
    )
    hints = result or []
    assert [hint_label(h).strip() for h in hints if h.position.line == line] == [": f32[B, 16]"]
    assert all(line <= h.position.line <= line + 1 for h in hints), hints


# --------------------------------------------------------------------------------------
# signatureHelp
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, active",
    [
        ("Dense($0784, 256)", 0),
        ("Dense(784, $0256)", 1),
        ("Dense(784,$0 256)", 1),
        ("Dense(784, 256, $0)", 2),
        ("Dense(784, 256, bias = $0false)", 2),
        ("Dense(784, $0", 1),  # not closed yet
    ],
)
async def test_signature_help_in_a_dense_call(client, open_doc, call, active):
    marked = TINY.replace("fc1 = Dense(784, 256)", f"fc1 = {call}")
    text, pos = cursor(marked)
    doc, mark = open_doc("tiny.dnn", text)
    result = await request(
        client.text_document_signature_help_async(
            types.SignatureHelpParams(text_document=doc.ident, position=pos)
        )
    )
    assert result is not None and result.signatures, "no signature help"
    sig = result.signatures[result.active_signature or 0]
    assert sig.label == DENSE_SIGNATURE
    params = []
    for p in sig.parameters or []:
        if isinstance(p.label, str):
            params.append(p.label)
        else:
            params.append(sig.label[p.label[0] : p.label[1]])
    assert params == ["inp: Int", "out: Int", "bias: Bool = true"], params
    got = sig.active_parameter if sig.active_parameter is not None else result.active_parameter
    assert got == active


@pytest.mark.parametrize(
    "needle, offset",
    [
        ("hidden: Int = 256", 0),  # the declaration
        ("Dense(784, hidden)", 11),  # a use in the layer
        ("Mlp(hidden = 256)", 4),  # a named argument in the train block
    ],
)
async def test_hover_on_a_hyperparameter(client, open_doc, needle, offset):
    doc, mark = open_doc("mnist_mlp.dnn", MNIST, directory=MNIST_PATH.parent)
    await doc.diagnostics(mark)
    result = await hover(client, doc, find(MNIST, needle, offset=offset))
    text = markup_text(result.contents)
    assert "hidden: Int = 256" in text, text
