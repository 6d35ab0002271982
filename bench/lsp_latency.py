#!/usr/bin/env python3
"""Benchmark: completion latency of `dnnc lsp` while editing a ~5,000-line file.

This is a benchmark, not a test: it fails only if the server misbehaves (does not
start, reports errors in the valid file, answers completion with an error or with
nothing, crashes or does not shut down cleanly), never because it is slow. The goal
is a median under 50 ms for the release binary.

    python3 bench/lsp_latency.py                       # 21 timed edits
    python3 bench/lsp_latency.py --quick               # 5 timed edits (CI)
    python3 bench/lsp_latency.py --dnnc target/debug/dnnc --runs 51

What it does:
1. generates target/bench/lsp.dnn with bench/check_10k.py's generator (functions,
   residual blocks, stages, a model, the MNIST dataset by absolute path and a train
   block), about 5,000 lines;
2. starts `dnnc lsp`, speaking JSON-RPC over its stdin/stdout (standard library only,
   no LSP package), initializes it and opens the file; the first diagnostics must
   hold no error;
3. picks a residual block near the middle of the file and, for each run, changes one
   character in it (the digit of its `dropout(0.N)` rate; full-document sync, so the
   whole text is sent) and immediately asks for completion at the start of the
   block's last line in `forward`, where `x`, `scale`, `y` and `g` are in scope;
4. reports, in milliseconds (min / median / max):
   - `completion`: from sending the completion request to receiving its response;
   - `change->completion`: from sending didChange to receiving that response;
   - `change->diagnostics`: from sending didChange to the diagnostics of that
     version (or, when the server sends no version, the next diagnostics).
One untimed edit warms the server up first.
"""

import argparse
import importlib.util
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 120.0  # seconds to wait for any one response (debug builds are slow)


def fail(msg, server=None):
    print(f"lsp_latency.py: FAILED: {msg}", file=sys.stderr)
    if server is not None:
        tail = server.stderr_tail()
        if tail:
            print("--- dnnc lsp stderr (last lines) ---", file=sys.stderr)
            print(tail, file=sys.stderr)
        server.kill()
    sys.exit(1)


# ---------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------


def load_generator():
    path = os.path.join(ROOT, "bench", "check_10k.py")
    spec = importlib.util.spec_from_file_location("check_10k", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pick_target(text):
    """The edit site and completion position in a residual block near the middle.

    Returns (digit_offset, completion_line, completion_character): the offset of the
    digit N in the block's `dropout(0.N)`, and the position of the first non-blank
    character of the block's last `forward` line (`x + scale * y * g`).
    """
    needle = "|> dropout(0."
    sites = []
    start = 0
    while True:
        i = text.find(needle, start)
        if i < 0:
            break
        sites.append(i)
        start = i + 1
    if not sites:
        fail("the generated file has no `dropout(0.N)` to edit")
    site = sites[len(sites) // 2]
    digit = site + len(needle)
    if not text[digit].isdigit():
        fail(f"unexpected text at the edit site: {text[site : site + 30]!r}")
    last = text.find("x + scale * y * g", digit)
    if last < 0 or text.find("\n}\n", digit) < last:
        fail("the block around the edit site does not have the expected shape")
    line = text.count("\n", 0, last)
    character = last - (text.rfind("\n", 0, last) + 1)
    return digit, line, character


# ---------------------------------------------------------------------------------
# JSON-RPC over stdio
# ---------------------------------------------------------------------------------


class Server:
    def __init__(self, cmd):
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr_file
        )
        self.messages = queue.Queue()
        self.next_id = 0
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.pending = []  # messages received while waiting for something else

    def _read(self):
        out = self.proc.stdout
        try:
            while True:
                headers = {}
                while True:
                    line = out.readline()
                    if not line:
                        self.messages.put((time.perf_counter(), None))
                        return
                    line = line.strip()
                    if not line:
                        break
                    key, _, value = line.decode("ascii").partition(":")
                    headers[key.strip().lower()] = value.strip()
                length = int(headers["content-length"])
                body = out.read(length)
                now = time.perf_counter()
                self.messages.put((now, json.loads(body)))
        except Exception as e:  # a malformed frame: report it to the main thread
            self.messages.put((time.perf_counter(), {"__error__": repr(e)}))

    def send(self, msg):
        body = json.dumps(msg).encode("utf-8")
        data = b"Content-Length: %d\r\n\r\n" % len(body) + body
        with self.lock:
            t = time.perf_counter()
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        return t

    def request(self, method, params):
        self.next_id += 1
        rid = self.next_id
        t = self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid, t

    def notify(self, method, params):
        return self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def _answer_server_request(self, msg):
        """The server may ask the client things; answer them plainly."""
        result = None
        if msg["method"] == "workspace/configuration":
            result = [None for _ in msg.get("params", {}).get("items", [])]
        self.send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    def wait_for(self, predicate, what):
        """Waits for a message satisfying `predicate`; returns (time, message)."""
        for i, (t, msg) in enumerate(self.pending):
            if predicate(msg):
                del self.pending[i]
                return t, msg
        deadline = time.perf_counter() + TIMEOUT
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                fail(f"no {what} within {TIMEOUT:.0f} s", self)
            try:
                t, msg = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if msg is None:
                code = self.proc.wait()
                fail(
                    f"the server closed its output (exit status {code}) while waiting for {what}",
                    self,
                )
            if "__error__" in msg:
                fail(f"malformed message from the server: {msg['__error__']}", self)
            if "method" in msg and "id" in msg:
                self._answer_server_request(msg)
                continue
            if predicate(msg):
                return t, msg
            self.pending.append((t, msg))
            del self.pending[:-1000]

    def response(self, rid, what):
        t, msg = self.wait_for(lambda m: m.get("id") == rid and "method" not in m, what)
        if "error" in msg:
            fail(f"{what} failed: {msg['error']}", self)
        return t, msg.get("result")

    def stderr_tail(self):
        try:
            self.stderr_file.seek(0)
            data = self.stderr_file.read().decode("utf-8", "replace")
        except Exception:
            return ""
        return "\n".join(data.splitlines()[-30:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def is_diagnostics(uri, version=None):
    def pred(msg):
        if msg.get("method") != "textDocument/publishDiagnostics":
            return False
        p = msg.get("params", {})
        if p.get("uri") != uri:
            return False
        v = p.get("version")
        return version is None or v is None or v == version

    return pred


def completion_labels(result):
    if result is None:
        return []
    items = result.get("items", []) if isinstance(result, dict) else result
    return [i.get("label") for i in items]


# ---------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------


def has_lsp(exe):
    try:
        proc = subprocess.run(
            [exe, "lsp", "--help"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def default_dnnc():
    release = os.path.join(ROOT, "target", "release", "dnnc")
    debug = os.path.join(ROOT, "target", "debug", "dnnc")
    if os.path.exists(release):
        if has_lsp(release):
            return release
        print(f"note: {release} has no `lsp` command (stale build?); using the debug build")
    return debug


def summary(name, values):
    if not values:
        return f"{name:<22} (none)"
    return (
        f"{name:<22} min {min(values):8.1f}  median {statistics.median(values):8.1f}  "
        f"max {max(values):8.1f}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--dnnc",
        default=None,
        help="the dnnc binary (default: target/release/dnnc if it exists, else target/debug/dnnc)",
    )
    ap.add_argument("--runs", type=int, default=None, help="timed edits (default 21)")
    ap.add_argument("--quick", action="store_true", help="5 timed edits, for CI")
    ap.add_argument("--lines", type=int, default=5_000, help="approximate file size")
    ap.add_argument(
        "--out",
        default=os.path.join(ROOT, "target", "bench"),
        help="where to write the generated file (default target/bench)",
    )
    args = ap.parse_args()

    dnnc = os.path.abspath(args.dnnc or default_dnnc())
    runs = args.runs if args.runs is not None else (5 if args.quick else 21)
    if runs < 1:
        ap.error("--runs must be at least 1")
    if not os.access(dnnc, os.X_OK):
        fail(f"{dnnc} is not an executable; build it first with `cargo build -p dnnc`")
    if not has_lsp(dnnc):
        fail(f"`{dnnc} lsp --help` fails: this dnnc has no language server")

    text, _ = load_generator().generate(args.lines)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.abspath(os.path.join(args.out, "lsp.dnn"))
    with open(path, "w", newline="\n") as f:
        f.write(text)
    uri = "file://" + path
    digit, cline, cchar = pick_target(text)
    print(f"dnnc:      {dnnc}")
    shown = os.path.relpath(path, ROOT)
    print(
        f"generated: {shown if not shown.startswith('..') else path} "
        f"({text.count(chr(10))} lines, {len(text)} bytes)"
    )
    print(
        f"edit:      line {text.count(chr(10), 0, digit) + 1}; completion at line "
        f"{cline + 1}, column {cchar + 1}"
    )

    server = Server([dnnc, "lsp"])
    t0 = time.perf_counter()
    rid, _ = server.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": "file://" + ROOT,
            "capabilities": {
                "textDocument": {
                    "synchronization": {"dynamicRegistration": False},
                    "completion": {"completionItem": {"snippetSupport": False}},
                    "publishDiagnostics": {"versionSupport": True},
                },
            },
            "clientInfo": {"name": "lsp_latency.py"},
        },
    )
    _, init = server.response(rid, "the initialize response")
    server.notify("initialized", {})
    t1 = time.perf_counter()
    print(f"initialize: {(t1 - t0) * 1000:.1f} ms")

    version = 1
    t_open = server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "dnn", "version": version, "text": text}},
    )
    t_diag, msg = server.wait_for(is_diagnostics(uri, version), "the first diagnostics")
    errs = [d for d in msg["params"]["diagnostics"] if d.get("severity", 1) == 1]
    if errs:
        fail(f"the valid file has {len(errs)} error diagnostics, the first: {errs[0]}", server)
    print(f"open->diagnostics: {(t_diag - t_open) * 1000:.1f} ms (no errors)")

    position = {"line": cline, "character": cchar}
    completion_ms, change_ms, diag_ms = [], [], []
    unversioned = False
    for run in range(runs + 1):  # run 0 warms up
        version += 1
        new_digit = str(int(text[digit]) % 9 + 1)  # always a different digit, 1-9
        text = text[:digit] + new_digit + text[digit + 1 :]
        t_change = server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": text}],
            },
        )
        rid, t_req = server.request(
            "textDocument/completion",
            {
                "textDocument": {"uri": uri},
                "position": position,
                "context": {"triggerKind": 1},
            },
        )
        t_resp, result = server.response(rid, f"the completion response (run {run})")
        got = completion_labels(result)
        if not got:
            fail(f"completion returned nothing at line {cline + 1}", server)
        missing = {"x", "scale"} - set(got)
        if missing:
            fail(f"completion misses {sorted(missing)} (in scope at the position)", server)
        t_d, msg = server.wait_for(
            is_diagnostics(uri, version), f"diagnostics of version {version}"
        )
        if run == 0:
            continue
        completion_ms.append((t_resp - t_req) * 1000)
        change_ms.append((t_resp - t_change) * 1000)
        diag_ms.append((t_d - t_change) * 1000)
        if msg["params"].get("version") != version:
            unversioned = True

    rid, _ = server.request("shutdown", None)
    server.response(rid, "the shutdown response")
    server.notify("exit", None)
    try:
        code = server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        fail("the server did not exit within 10 s of `exit`", server)
    if code != 0:
        fail(f"the server exited with status {code} after shutdown/exit", server)

    print(f"runs:      {runs}")
    print("latency ms:")
    print("  " + summary("completion", completion_ms))
    print("  " + summary("change->completion", change_ms))
    print("  " + summary("change->diagnostics", diag_ms))
    if unversioned:
        print(
            "  (the server publishes diagnostics without a version: change->diagnostics is "
            "the first publication after the change)"
        )
    med = statistics.median(completion_ms)
    goal = "meets" if med < 50 else "misses"
    print(
        f"goal:      median completion under 50 ms (release build): {goal} "
        f"({med:.1f} ms, {os.path.basename(os.path.dirname(dnnc))} build)"
    )


if __name__ == "__main__":
    main()
