"""initialize, the advertised capabilities, unknown methods, shutdown and exit."""

import asyncio
import concurrent.futures
import json

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcMethodNotFound

from helpers import REQUEST_TIMEOUT, TINY, errors, find, markup_text, request


def trigger_characters(provider) -> set[str]:
    return set(provider.trigger_characters or [])


async def test_initialize_advertises_the_features(client):
    caps = client.init_result.capabilities

    sync = caps.text_document_sync
    if isinstance(sync, types.TextDocumentSyncOptions):
        assert sync.open_close, "the server must want didOpen/didClose"
        sync = sync.change
    assert sync == types.TextDocumentSyncKind.Full, f"expected full sync, got {sync}"

    assert caps.completion_provider is not None
    assert trigger_characters(caps.completion_provider) >= {".", ":", "(", ","}
    # Not space: Neovim 0.11's autotrigger would complete after every word.
    assert " " not in trigger_characters(caps.completion_provider)
    assert caps.signature_help_provider is not None
    assert trigger_characters(caps.signature_help_provider) >= {"(", ","}

    for name in (
        "hover_provider",
        "definition_provider",
        "references_provider",
        "rename_provider",
        "document_symbol_provider",
        "inlay_hint_provider",
        "document_formatting_provider",
    ):
        assert getattr(caps, name), f"{name} is not advertised"

    encoding = caps.position_encoding
    assert encoding in (None, "utf-8", "utf-16", "utf-32"), encoding


async def test_vscode_client(vscode_client, workdir):
    """A client that offers only UTF-16 positions and no inlay hints works too."""
    from helpers import Doc

    caps = vscode_client.init_result.capabilities
    assert caps.position_encoding in (None, types.PositionEncodingKind.Utf16)
    path = workdir / "tiny.dnn"
    path.write_text(TINY)
    doc = Doc(vscode_client, path, TINY)
    mark = doc.open()
    assert errors(await doc.diagnostics(mark)) == []
    hover = await request(
        vscode_client.text_document_hover_async(
            types.HoverParams(text_document=doc.ident, position=find(TINY, "let h", offset=4))
        )
    )
    assert hover is not None and "f32[B, 256]" in markup_text(hover.contents)


async def test_unknown_request_is_an_error_and_the_server_goes_on(client, open_doc):
    with pytest.raises(JsonRpcMethodNotFound):
        await request(client.protocol.send_request_async("dnnc/noSuchMethod", {"a": 1}))
    with pytest.raises(JsonRpcException):
        await request(client.protocol.send_request_async("textDocument/noSuchThing", {}))

    # Unknown notifications (with and without `$/`) are ignored without a reply.
    client.protocol.notify("$/noSuchNotification", {"x": [1, 2, 3]})
    client.protocol.notify("dnnc/noSuchNotification", None)
    # Cancelling a request that does not exist is harmless.
    client.protocol.notify("$/cancelRequest", types.CancelParams(id=987654))

    # A request about a document that was never opened gets an answer (null or error).
    try:
        await request(
            client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri="file:///nowhere/x.dnn"),
                    position=types.Position(line=0, character=0),
                )
            )
        )
    except JsonRpcException:
        pass

    doc, mark = open_doc("tiny.dnn", TINY)
    assert errors(await doc.diagnostics(mark)) == []
    hover = await request(
        client.text_document_hover_async(
            types.HoverParams(text_document=doc.ident, position=find(TINY, "let h", offset=4))
        )
    )
    assert hover is not None and "f32[B, 256]" in markup_text(hover.contents)


async def test_shutdown_and_exit(client, open_doc):
    doc, mark = open_doc("tiny.dnn", TINY)
    await doc.diagnostics(mark)
    doc.close()

    result = await request(client.shutdown_async(None))
    assert result is None
    client.exit(None)
    server = client._server
    await asyncio.wait_for(server.wait(), REQUEST_TIMEOUT)
    assert server.returncode == 0, (
        f"exit after shutdown must give status 0, got {server.returncode}"
    )


async def send_raw(client, message) -> None:
    """Writes one frame to the server's stdin, bypassing pygls' typed serialisation."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await client._server.stdin.drain()


async def raw_request(client, msg_id, method, params):
    """A request with arbitrary (possibly invalid) params; returns its result."""
    fut = concurrent.futures.Future()
    client.protocol._request_futures[msg_id] = fut
    await send_raw(client, {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return await request(asyncio.wrap_future(fut))


async def test_invalid_params_are_an_error_and_the_server_goes_on(client, open_doc):
    doc, mark = open_doc("tiny.dnn", TINY)
    assert errors(await doc.diagnostics(mark)) == []
    for i, params in enumerate(
        (
            {"textDocument": {"uri": doc.uri}},  # no position
            {"textDocument": {"uri": doc.uri}, "position": {"line": "zero", "character": 0}},
            {"textDocument": {"uri": doc.uri}, "position": {"line": -1, "character": 0}},
            [1, 2, 3],
        )
    ):
        with pytest.raises(JsonRpcException):
            await raw_request(client, f"bad-{i}", "textDocument/hover", params)
    # Notifications with bad params must be dropped, not end the session.
    await send_raw(
        client,
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {"textDocument": {"uri": doc.uri}},
        },
    )
    await send_raw(
        client, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"nonsense": True}}
    )

    hover = await request(
        client.text_document_hover_async(
            types.HoverParams(text_document=doc.ident, position=find(TINY, "let h", offset=4))
        )
    )
    assert hover is not None and "f32[B, 256]" in markup_text(hover.contents)


async def test_malformed_json_body_does_not_end_the_session(client, open_doc):
    """A frame whose body is not JSON: the server may answer with a parse error (which
    the client logs and ignores) but must go on reading the next messages."""
    await send_raw(
        client, b'{"jsonrpc": "2.0", "id": 99999, "method": "textDocument/hover", "params": {'
    )
    await asyncio.sleep(0.5)
    code = client._server.returncode
    assert code is None, f"`dnnc lsp` exited (status {code}) after a frame that is not JSON"

    doc, mark = open_doc("tiny.dnn", TINY)
    assert errors(await doc.diagnostics(mark)) == []
    hover = await request(
        client.text_document_hover_async(
            types.HoverParams(text_document=doc.ident, position=find(TINY, "let h", offset=4))
        )
    )
    assert hover is not None and "f32[B, 256]" in markup_text(hover.contents)
