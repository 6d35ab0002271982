"""Fixtures for the end-to-end tests of `dnnc lsp` (helpers are in helpers.py).

The server is the real binary, started as a subprocess and driven over stdio by
pytest-lsp's client (pygls + lsprotocol), so these tests see exactly what an editor
sees. The binary is `$DNNC` (relative paths are tried against the current directory,
then the repository root), by default `<repo>/target/debug/dnnc`.

Every test gets a fresh server. Its teardown sends `shutdown` and `exit` and requires
the process to end with status 0, so a test after which the server crashed, hung or
left the protocol fails even if its own assertions passed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import (
    ClientServerConfig,
    LanguageClient,
    client_capabilities,
)
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from helpers import DNNC, REQUEST_TIMEOUT, ROOT, Doc, lsp_unavailable_reason


@pytest.fixture(scope="session", autouse=True)
def dnnc_has_lsp():
    """Fails every test with one clear message when the binary has no `lsp`."""
    reason = lsp_unavailable_reason()
    if reason:
        pytest.fail(reason, pytrace=False)


# --------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------


def _record_diagnostics(client: LanguageClient, params: types.PublishDiagnosticsParams):
    client.diagnostics[params.uri] = params.diagnostics
    client.diagnostic_history.append(params)


def make_client() -> LanguageClient:
    """pytest-lsp's test client, also keeping every publishDiagnostics in order."""
    client = LanguageClient(converter_factory=default_converter)
    client.diagnostic_history = []
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _record_diagnostics
    register_lsp_features(client, features)
    return client


SERVER = ClientServerConfig(server_command=[DNNC, "lsp"], client_factory=make_client)


async def _start(client: LanguageClient, capabilities: types.ClientCapabilities):
    params = types.InitializeParams(
        capabilities=capabilities,
        root_uri=ROOT.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=ROOT.as_uri(), name="dnnc")],
        client_info=types.ClientInfo(name="dnnc-e2e", version="1"),
    )
    result = await asyncio.wait_for(client.initialize_session(params), REQUEST_TIMEOUT)
    client.init_result = result
    return result


async def _stop(client: LanguageClient):
    """shutdown + exit, and the server must end with status 0."""
    server = client._server
    if server is None:
        return
    if server.returncode is None and client.error is None:
        await asyncio.wait_for(client.shutdown_async(None), REQUEST_TIMEOUT)
        client.exit(None)
        await asyncio.wait_for(server.wait(), REQUEST_TIMEOUT)
    assert client.error is None, f"the client saw a protocol error: {client.error}"
    assert server.returncode == 0, (
        f"`dnnc lsp` exited with status {server.returncode} (crash, or no clean shutdown/exit)"
    )


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):
    """A server initialised by a Neovim 0.11 client (markdown, inlay hints, ...)."""
    await _start(lsp_client, client_capabilities("neovim@v0.11.0"))
    yield
    await _stop(lsp_client)


@pytest_lsp.fixture(config=SERVER)
async def vscode_client(lsp_client: LanguageClient):
    """A server initialised with the capabilities of VS Code 1.65."""
    await _start(lsp_client, client_capabilities("visual-studio-code"))
    yield
    await _stop(lsp_client)


# --------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------


@pytest.fixture
def workdir():
    """A temporary directory for documents (and `dnnc check` copies of them)."""
    d = Path(tempfile.mkdtemp(prefix="dnnc-lsp-e2e-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def open_doc(client, workdir):
    """open_doc(name, text) -> (Doc, mark): writes the file, then sends didOpen."""

    def _open(name: str, text: str, directory: Path | None = None):
        path = (directory or workdir) / name
        if directory is None:
            path.write_text(text)
        doc = Doc(client, path, text)
        mark = doc.open()
        return doc, mark

    return _open
