//! A guard in front of the JSON-RPC reader. tower-lsp-server's reader ends the session
//! at the first frame it cannot decode, and trusts `Content-Length`; this relay makes
//! sure that no bytes from a client can end, freeze or exhaust the server:
//!
//! - a body that is not a JSON-RPC message (not JSON, or `[]`, `null`, `42`, `{}`) is
//!   replaced by a harmless notification; one that carries a usable `id` but no method
//!   becomes a request of an unknown method, so the client gets an error for that id;
//! - a `Content-Length` that lies — larger than the body, smaller, negative, absurdly
//!   large — costs at most that one message: the relay finds where the next frame
//!   starts (the body's JSON ends, or the next `Content-Length` header begins) and goes
//!   on from there, instead of waiting for bytes that never come;
//! - headers and bodies are bounded ([`MAX_HEADER`], [`MAX_BODY`]), so garbage cannot
//!   grow the buffer without limit.
//!
//! It also records whether `shutdown` was requested, so that `exit` without it ends
//! the process with status 1, as the LSP specification asks.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest body accepted; larger ones are dropped.
const MAX_BODY: usize = 256 << 20;

/// The largest header block accepted.
const MAX_HEADER: usize = 64 << 10;

/// What replaces a frame that cannot be understood (ignored by the server: `$/`
/// notifications are optional).
const PLACEHOLDER: &[u8] = br#"{"jsonrpc":"2.0","method":"$/dnnc/invalidMessage"}"#;

/// How long a complete message whose `Content-Length` promises more waits for the
/// rest before it is taken as it is.
const LIE_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// The method a request without a usable method is renamed to: the server answers it
/// with "method not found", so the client's request does not hang.
const INVALID_REQUEST: &str = "dnnc/invalidRequest";

async fn forward(out: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> std::io::Result<()> {
    out.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await?;
    out.write_all(body).await?;
    out.flush().await
}

/// Where the next `Content-Length` header starts in `buf`, at or after `from`.
fn find_header(buf: &[u8], from: usize) -> Option<usize> {
    const KEY: &[u8] = b"content-length";
    if buf.len() < KEY.len() {
        return None;
    }
    (from..=buf.len() - KEY.len()).find(|&i| buf[i..i + KEY.len()].eq_ignore_ascii_case(KEY))
}

/// The end of the header block starting at 0 (the index after its blank line).
fn header_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The declared body length of a header block: `None` when absent or not a count.
fn declared_length(headers: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(headers).lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse::<usize>().ok()
        } else {
            None
        }
    })
}

/// The length of the complete JSON value `buf` starts with, if it does.
fn json_prefix(buf: &[u8]) -> Option<usize> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    match values.next() {
        Some(Ok(_)) => Some(values.byte_offset()),
        _ => None,
    }
}

/// Turns a body into what the server may safely read: the message itself, a request
/// of an unknown method for one without a method but with an id, or [`PLACEHOLDER`].
fn sanitize(body: &[u8], shutdown: &AtomicBool) -> Vec<u8> {
    let Ok(Value::Object(mut msg)) = serde_json::from_slice::<Value>(body) else {
        return PLACEHOLDER.to_vec();
    };
    let id_ok = match msg.get("id") {
        None => false,
        Some(id) => id.is_string() || id.is_i64() || id.is_u64(),
    };
    if msg.contains_key("id") && !id_ok {
        return PLACEHOLDER.to_vec();
    }
    msg.insert("jsonrpc".into(), Value::from("2.0"));
    match msg.get("method") {
        Some(Value::String(m)) => {
            if m == "shutdown" && id_ok {
                shutdown.store(true, Ordering::SeqCst);
            }
        }
        Some(_) if id_ok => {
            msg.insert("method".into(), Value::from(INVALID_REQUEST));
            msg.remove("params");
        }
        Some(_) => return PLACEHOLDER.to_vec(),
        None if id_ok && (msg.contains_key("result") || msg.contains_key("error")) => {}
        None if id_ok => {
            msg.insert("method".into(), Value::from(INVALID_REQUEST));
            msg.remove("params");
        }
        None => return PLACEHOLDER.to_vec(),
    }
    serde_json::to_vec(&Value::Object(msg)).unwrap_or_else(|_| PLACEHOLDER.to_vec())
}

/// A buffered reader of the client's bytes.
struct Input<R> {
    reader: R,
    buf: Vec<u8>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> Input<R> {
    /// Reads more bytes within `wait`; `None` when none came in time.
    async fn fill_within(&mut self, wait: std::time::Duration) -> std::io::Result<Option<bool>> {
        match tokio::time::timeout(wait, self.fill()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Reads more bytes; `false` at the end of the input.
    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 64 << 10];
        let n = self.reader.read(&mut chunk).await?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    /// The next header block's declared length, with the block consumed; skips bytes
    /// before a `Content-Length`. `Ok(None)` at the end of the input.
    async fn headers(&mut self) -> std::io::Result<Option<Option<usize>>> {
        loop {
            match find_header(&self.buf, 0) {
                Some(start) => {
                    self.buf.drain(..start);
                    if let Some(end) = header_end(&self.buf) {
                        let length = declared_length(&self.buf[..end]);
                        self.buf.drain(..end);
                        return Ok(Some(length));
                    }
                    if self.buf.len() > MAX_HEADER {
                        // Not a header after all: look for the next one.
                        self.buf.drain(..1);
                        continue;
                    }
                }
                None => {
                    // Keep only what could be the start of a header.
                    let keep = self.buf.len().min(16);
                    self.buf.drain(..self.buf.len() - keep);
                }
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The body after a header block that declared `length`. A length that does not
    /// match the bytes — the body's JSON ends and the next header starts before it,
    /// or there is no usable length — is recovered from. `Ok(None)` at the end of the
    /// input.
    async fn body(&mut self, length: Option<usize>) -> std::io::Result<Option<Vec<u8>>> {
        let length = length.filter(|&l| l <= MAX_BODY);
        loop {
            if let Some(l) = length {
                if self.buf.len() >= l {
                    let body: Vec<u8> = self.buf.drain(..l).collect();
                    if serde_json::from_slice::<Value>(&body).is_ok() {
                        return Ok(Some(body));
                    }
                    // Too short a length: the rest of the body is skipped as garbage
                    // before the next header. Too long a length whose extra bytes
                    // hold the next frame: give them back.
                    if let Some(end) = json_prefix(&body) {
                        if let Some(next) = find_header(&body, end) {
                            let rest = body[next..].to_vec();
                            self.buf.splice(..0, rest);
                            return Ok(Some(body[..end].to_vec()));
                        }
                    }
                    return Ok(Some(body));
                }
            }
            // The next frame has begun before the declared length (or there is no
            // length): the body is what precedes it.
            if let Some(next) = find_header(&self.buf, 1) {
                let end = json_prefix(&self.buf[..next]).unwrap_or(next);
                let body = self.buf[..end].to_vec();
                let complete =
                    end == next || self.buf[end..next].iter().all(u8::is_ascii_whitespace);
                if length.is_none() || complete {
                    self.buf.drain(..next);
                    return Ok(Some(body));
                }
            } else if length.is_none() {
                if let Some(end) = json_prefix(&self.buf) {
                    return Ok(Some(self.buf.drain(..end).collect()));
                }
                if self.buf.len() > MAX_BODY {
                    self.buf.clear();
                    return Ok(Some(Vec::new()));
                }
            } else if let Some(end) = json_prefix(&self.buf) {
                // A whole message is here but the length asks for more: a client
                // that lied and now waits for the answer. Give it a moment, then take
                // the message as it is.
                if self.buf[end..].iter().all(u8::is_ascii_whitespace) {
                    match self.fill_within(LIE_WAIT).await? {
                        Some(true) => continue,
                        Some(false) => return Ok(None),
                        None => {
                            let body = self.buf[..end].to_vec();
                            self.buf.clear();
                            return Ok(Some(body));
                        }
                    }
                }
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

/// Copies frames from `input` to `output`, repairing what cannot be parsed, until the
/// input ends. Sets `shutdown` when the client requests `shutdown`.
pub async fn relay(
    input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
    shutdown: &AtomicBool,
) -> std::io::Result<()> {
    let mut input = Input {
        reader: input,
        buf: Vec::new(),
        eof: false,
    };
    while let Some(length) = input.headers().await? {
        let Some(body) = input.body(length).await? else {
            return Ok(());
        };
        forward(&mut output, &sanitize(&body, shutdown)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8], length: &str) -> Vec<u8> {
        let mut v = format!("Content-Length: {length}\r\n\r\n").into_bytes();
        v.extend_from_slice(body);
        v
    }

    /// Runs the relay over `input` and returns the bodies it forwarded.
    fn relayed(input: Vec<u8>) -> (Vec<String>, bool) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let shutdown = AtomicBool::new(false);
        let mut out = Vec::new();
        rt.block_on(relay(&input[..], &mut out, &shutdown)).unwrap();
        let mut bodies = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let end = header_end(rest).unwrap();
            let n = declared_length(&rest[..end]).unwrap();
            bodies.push(String::from_utf8(rest[end..end + n].to_vec()).unwrap());
            rest = &rest[end + n..];
        }
        (bodies, shutdown.load(Ordering::SeqCst))
    }

    const PING: &[u8] = br#"{"jsonrpc":"2.0","id":7,"method":"shutdown"}"#;

    #[test]
    fn valid_messages_pass_and_shutdown_is_seen() {
        let (bodies, shutdown) = relayed(frame(PING, &PING.len().to_string()));
        assert_eq!(bodies.len(), 1);
        assert!(bodies[0].contains("\"shutdown\""));
        assert!(shutdown);
    }

    #[test]
    fn json_that_is_not_a_message_becomes_a_placeholder() {
        for bad in [&b"[]"[..], b"null", b"42", b"{}", b"\"x\"", b"{\"id\":{}}"] {
            let mut input = frame(bad, &bad.len().to_string());
            input.extend(frame(PING, &PING.len().to_string()));
            let (bodies, _) = relayed(input);
            assert_eq!(bodies.len(), 2, "{}", String::from_utf8_lossy(bad));
            assert!(bodies[0].contains("invalidMessage"), "{bodies:?}");
            assert!(bodies[1].contains("shutdown"));
        }
        // A request without a method still gets an answer: it becomes an unknown one.
        let body = br#"{"id":3,"params":1}"#;
        let (bodies, _) = relayed(frame(body, &body.len().to_string()));
        assert!(bodies[0].contains(INVALID_REQUEST) && bodies[0].contains("\"id\":3"));
    }

    #[test]
    fn lying_lengths_cost_one_message_at_most() {
        for length in ["100000", "-5", "4611686018427387904", "abc", "3"] {
            let mut input = frame(PING, length);
            input.extend(frame(PING, &PING.len().to_string()));
            let (bodies, shutdown) = relayed(input);
            let passed = bodies.iter().filter(|b| b.contains("shutdown")).count();
            assert!(passed >= 1, "length {length}: {bodies:?}");
            assert!(shutdown, "length {length}");
        }
        // A body cut short by its length: the rest is skipped, the next frame read.
        let mut input = frame(
            br#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#,
            "10",
        );
        input.extend(frame(PING, &PING.len().to_string()));
        let (bodies, _) = relayed(input);
        assert!(bodies.last().unwrap().contains("shutdown"), "{bodies:?}");
    }

    #[test]
    fn garbage_without_headers_is_skipped() {
        let mut input = b"hello\r\n\r\n\0\0\xff garbage".to_vec();
        input.extend(frame(PING, &PING.len().to_string()));
        let (bodies, _) = relayed(input);
        assert_eq!(bodies.len(), 1);
        assert!(bodies[0].contains("shutdown"));
    }
}
