"""Hostile clients over raw stdio: messages that are JSON but not JSON-RPC, lying
`Content-Length` headers, URIs naming devices and FIFOs, and `exit` without `shutdown`.

These bypass pygls (which would refuse to send such bytes): each test talks to a fresh
`dnnc lsp` through its pipes. After every bad input the server must still answer the
next request, and the exit status must follow the specification: 0 after `shutdown`
then `exit`, 1 for `exit` alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from helpers import DNNC, REQUEST_TIMEOUT, ROOT


class RawServer:
    """`dnnc lsp` driven with hand-made frames."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.buf = b""

    @classmethod
    async def start(cls) -> "RawServer":
        proc = await asyncio.create_subprocess_exec(
            DNNC,
            "lsp",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return cls(proc)

    async def send_raw(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def send(self, message, length: str | None = None) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        header = f"Content-Length: {length if length is not None else len(body)}\r\n\r\n"
        await self.send_raw(header.encode() + body)

    async def _read_message(self) -> dict:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                headers = self.buf[:end].decode()
                length = next(
                    int(line.split(":")[1])
                    for line in headers.split("\r\n")
                    if line.lower().startswith("content-length")
                )
                if len(self.buf) >= end + 4 + length:
                    body = self.buf[end + 4 : end + 4 + length]
                    self.buf = self.buf[end + 4 + length :]
                    return json.loads(body)
            chunk = await self.proc.stdout.read(65536)
            if not chunk:
                raise EOFError("the server closed its output")
            self.buf += chunk

    async def response(self, msg_id) -> dict:
        """The response to request `msg_id` (notifications in between are skipped)."""

        async def wait():
            while True:
                msg = await self._read_message()
                if msg.get("id") == msg_id and "method" not in msg:
                    return msg

        return await asyncio.wait_for(wait(), REQUEST_TIMEOUT)

    async def request(self, msg_id, method, params=None, length: str | None = None) -> dict:
        msg = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg, length)
        return await self.response(msg_id)

    async def initialize(self) -> None:
        r = await self.request(
            0, "initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {}}
        )
        assert "result" in r, r
        await self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

    async def status(self) -> int:
        return await asyncio.wait_for(self.proc.wait(), REQUEST_TIMEOUT)

    async def shutdown_and_exit(self) -> int:
        r = await self.request(9999, "shutdown")
        assert r.get("result", "missing") is None, r
        await self.send({"jsonrpc": "2.0", "method": "exit"})
        return await self.status()


async def test_exit_without_shutdown_ends_with_status_1():
    server = await RawServer.start()
    await server.initialize()
    await server.send({"jsonrpc": "2.0", "method": "exit"})
    assert await server.status() == 1


async def test_exit_after_shutdown_ends_with_status_0():
    server = await RawServer.start()
    await server.initialize()
    assert await server.shutdown_and_exit() == 0


async def test_json_that_is_not_a_message_does_not_end_the_session():
    server = await RawServer.start()
    await server.initialize()
    for i, body in enumerate([b"[]", b"null", b"42", b"{}", b'"text"', b'{"id": {}}']):
        await server.send(body)
        r = await server.request(100 + i, "textDocument/documentSymbol",
                                 {"textDocument": {"uri": "file:///nonexistent.dnn"}})
        assert "result" in r or "error" in r, r
    # A request without a method still gets an answer for its id.
    await server.send({"jsonrpc": "2.0", "id": 77, "params": {}})
    r = await server.response(77)
    assert "error" in r, r
    assert await server.shutdown_and_exit() == 0


async def test_lying_content_lengths_cost_one_message_at_most():
    server = await RawServer.start()
    await server.initialize()
    params = {"textDocument": {"uri": "file:///nonexistent.dnn"}}
    # Longer than the body: the message is still answered once the client waits.
    r = await server.request(1, "textDocument/documentSymbol", params, length="100000")
    assert "result" in r or "error" in r, r
    # Negative, absurd, garbage: the next message is read normally.
    for i, length in enumerate(["-5", "4611686018427387904", "many"]):
        await server.send({"jsonrpc": "2.0", "method": "$/ping"}, length=length)
        r = await server.request(10 + i, "textDocument/documentSymbol", params)
        assert "result" in r or "error" in r, r
    assert await server.shutdown_and_exit() == 0


async def test_uris_naming_devices_and_fifos_are_not_read():
    server = await RawServer.start()
    await server.initialize()
    with tempfile.TemporaryDirectory() as d:
        fifo = Path(d) / "pipe.dnn"
        os.mkfifo(fifo)
        for i, uri in enumerate(["file:///dev/zero", fifo.as_uri(), "file:///dev/urandom"]):
            pos = {"line": 0, "character": 0}
            r = await server.request(
                20 + i, "textDocument/hover", {"textDocument": {"uri": uri}, "position": pos}
            )
            assert r.get("result") is None, r
    assert await server.shutdown_and_exit() == 0
