//! A guard in front of the JSON-RPC reader: frames whose body is not JSON (or whose
//! header is garbage) are replaced by a harmless notification, so that bad bytes from a
//! client can never end the session. tower-lsp-server's reader stops at the first
//! undecodable frame; this relay keeps the server alive instead.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest body accepted; larger ones are skipped.
const MAX_BODY: usize = 256 << 20;

/// What replaces a frame that cannot be understood (ignored by the server: `$/`
/// notifications are optional).
const PLACEHOLDER: &[u8] = br#"{"jsonrpc":"2.0","method":"$/dnnc/invalidMessage"}"#;

async fn forward(out: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> std::io::Result<()> {
    out.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await?;
    out.write_all(body).await?;
    out.flush().await
}

/// Copies frames from `input` to `output`, repairing what cannot be parsed, until EOF.
pub async fn relay(
    mut input: impl AsyncBufRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        // Headers up to a blank line.
        let mut length: Option<usize> = None;
        let mut saw_header = false;
        loop {
            line.clear();
            let n = input.read_until(b'\n', &mut line).await?;
            if n == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                if saw_header {
                    break;
                }
                continue;
            }
            saw_header = true;
            if let Some((k, v)) = text.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().ok();
                }
            }
        }
        let Some(len) = length else {
            // No usable length: nothing to read; tell the server something arrived.
            forward(&mut output, PLACEHOLDER).await?;
            continue;
        };
        if len > MAX_BODY {
            let mut rest = (&mut input).take(len as u64);
            tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
            forward(&mut output, PLACEHOLDER).await?;
            continue;
        }
        let mut body = vec![0u8; len];
        input.read_exact(&mut body).await?;
        if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
            forward(&mut output, &body).await?;
        } else {
            forward(&mut output, PLACEHOLDER).await?;
        }
    }
}
