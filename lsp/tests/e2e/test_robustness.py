"""Garbage, partial documents and huge lines must not crash or stall the server.

After each bad document the server must still answer requests (a result or a JSON-RPC
error, but within the timeout), and once the document is valid again it must give
correct answers. The fixture's teardown also requires a clean shutdown (status 0).
"""

import random

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from helpers import TINY, cursors, errors, find, markup_text, request


def garbage_documents() -> dict[str, str]:
    rng = random.Random(20240607)
    raw = bytes(rng.randrange(256) for _ in range(8192))
    half = len(TINY) // 2
    long_expr = "fn long(x: [B, 4]) -> [B, 4] {\n    x" + " + x" * 25_000 + "\n}\n"
    return {
        "random-utf8-replace": raw.decode("utf-8", errors="replace"),
        "random-latin1": raw.decode("latin-1"),  # every code point 0..255, NUL included
        "nuls": "\0" * 1000,
        "nuls-in-code": TINY.replace("relu(fc1(x))", "relu(\0fc1(x)\0)").replace(" ", "\0", 5),
        "long-line-of-x": "x" * 100_000,
        "long-line-of-code": TINY + long_expr,
        "long-comment-line": "// " + "é" * 100_000 + "\n" + TINY,
        "open-brackets": "model M { fn f(x: [B]) -> [B] { " + "([{" * 20_000,
        "close-brackets": ")]}" * 20_000 + "\n" + TINY,
        "unbalanced-mix": TINY.replace("{", "((").replace(")", "}]"),
        "truncated": TINY[:half],
        "truncated-in-token": TINY[: TINY.index("Dense(784") + 3],
        "only-use": "use std::",
        "only-keywords": "use layer model fn dataset train param let if else\n" * 50,
        "deep-nesting": "fn f(x: [B]) -> [B] { " + "(" * 5000 + "x" + ")" * 5000 + " }\n",
        "crlf-and-cr": TINY.replace("\n", "\r\n")[:200] + "\r\r\r" + TINY,
        "emoji-and-surrogates": "// 😀🙃 \U0001f600\n"
        + TINY.replace("x: [B, 784]", "x: [B, 7😀84]"),
        "empty": "",
    }


def probe_positions(text: str) -> list[types.Position]:
    lines = text.split("\n")
    last = len(lines) - 1
    mid = len(lines) // 2
    return [
        types.Position(line=0, character=0),
        types.Position(line=0, character=len(lines[0]) // 2),
        types.Position(line=mid, character=len(lines[mid])),
        types.Position(line=last, character=len(lines[last])),
        types.Position(line=last, character=len(lines[last]) + 50),  # past the line
        types.Position(line=last + 1000, character=3),  # past the document
    ]


async def answered(awaitable):
    """The request must get a response in time; a JSON-RPC error counts as one."""
    try:
        return await request(awaitable)
    except JsonRpcException:
        return None


async def probe(client, doc):
    for pos in probe_positions(doc.text):
        await answered(
            client.text_document_hover_async(
                types.HoverParams(text_document=doc.ident, position=pos)
            )
        )
        await answered(
            client.text_document_completion_async(
                types.CompletionParams(text_document=doc.ident, position=pos)
            )
        )
    await answered(
        client.text_document_document_symbol_async(
            types.DocumentSymbolParams(text_document=doc.ident)
        )
    )
    await answered(
        client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=doc.ident,
                options=types.FormattingOptions(tab_size=4, insert_spaces=True),
            )
        )
    )
    end = probe_positions(doc.text)[3]
    await answered(
        client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=doc.ident,
                range=types.Range(start=types.Position(line=0, character=0), end=end),
            )
        )
    )
    await answered(
        client.text_document_signature_help_async(
            types.SignatureHelpParams(text_document=doc.ident, position=end)
        )
    )


async def check_still_works(client, doc):
    mark = doc.change(TINY)
    diags = await doc.diagnostics(mark, until=lambda ds: not errors(ds))
    assert errors(diags) == []
    result = await request(
        client.text_document_hover_async(
            types.HoverParams(text_document=doc.ident, position=find(TINY, "let h", offset=4))
        )
    )
    assert result is not None and "f32[B, 256]" in markup_text(result.contents)


async def test_garbage_documents(client, open_doc):
    doc, mark = open_doc("garbage.dnn", TINY)
    await doc.diagnostics(mark)
    for name, text in garbage_documents().items():
        mark = doc.change(text)
        # diagnostics for garbage are published too (the file does not parse)
        await doc.diagnostics(mark, settle=0.0)
        await probe(client, doc)
    await check_still_works(client, doc)


async def test_garbage_opened_directly(client, open_doc):
    """didOpen (not didChange) of a garbage document, then other documents work."""
    docs = garbage_documents()
    for name in ("random-latin1", "long-line-of-x", "open-brackets"):
        doc, mark = open_doc(f"{name}.dnn", docs[name])
        await doc.diagnostics(mark, settle=0.0)
        await probe(client, doc)
        doc.close()
    doc, mark = open_doc("tiny.dnn", TINY)
    await check_still_works(client, doc)


async def test_typing_the_file_character_by_character(client, open_doc):
    """Every prefix of a file is a partial document; completion is asked as one types."""
    doc, mark = open_doc("typing.dnn", "")
    await doc.diagnostics(mark, settle=0.0)
    for i in range(1, len(TINY) + 1):
        doc.change(TINY[:i])
        if i % 7 == 0 or TINY[i - 1] in ".:(, ":
            lines = TINY[:i].split("\n")
            pos = types.Position(line=len(lines) - 1, character=len(lines[-1]))
            await answered(
                client.text_document_completion_async(
                    types.CompletionParams(text_document=doc.ident, position=pos)
                )
            )
    await check_still_works(client, doc)


async def test_a_burst_of_changes_without_waiting(client, open_doc):
    """200 changes in a row: the last version's diagnostics must come out right."""
    broken = TINY.replace("fc2 = Dense(256, 10)", "fc2 = Dense(128, 10)")
    doc, mark = open_doc("burst.dnn", TINY)
    for i in range(200):
        mark = doc.change(broken if i % 2 == 0 else TINY + f"// {i}\n")
    mark = doc.change(broken)
    diags = await doc.diagnostics(mark, until=lambda ds: any(d.code == "E0303" for d in ds))
    assert [d.code for d in errors(diags)] == ["E0303"]
    await check_still_works(client, doc)


async def test_non_ascii_positions_are_utf16(vscode_client, workdir):
    """With UTF-16 positions (what VS Code uses), columns after an emoji are right."""
    from helpers import Doc

    marked = TINY.replace(
        "        let h = relu(fc1(x))", "        /* 😀 é */ let $0h = relu(fc1(x))"
    )
    text, positions = cursors(marked)
    path = workdir / "emoji.dnn"
    path.write_text(text)
    doc = Doc(vscode_client, path, text)
    mark = doc.open()
    assert errors(await doc.diagnostics(mark)) == []
    result = await request(
        vscode_client.text_document_hover_async(
            types.HoverParams(text_document=doc.ident, position=positions[0])
        )
    )
    assert result is not None and "f32[B, 256]" in markup_text(result.contents)

    broken = text.replace("relu(fc1(x))", "relu(fc1(x)) + undefined_name")
    mark = doc.change(broken)
    diags = await doc.diagnostics(mark, until=lambda ds: any(d.code == "E0103" for d in ds))
    d = next(d for d in diags if d.code == "E0103")
    line = broken.split("\n")[d.range.start.line]
    assert "undefined_name" in line, d
    utf16 = len(line[: line.index("undefined_name")].encode("utf-16-le")) // 2
    assert d.range.start.character == utf16, f"{d.range.start.character} != {utf16} (UTF-16)"
