//! The dnnc language server (`dnnc lsp`): the compiler's salsa database behind the
//! Language Server Protocol. Diagnostics as you type (the same as `dnnc check`),
//! completion, hover with inferred shapes, go to definition (also into the embedded
//! stdlib), references, rename, the outline, inlay hints with shapes, signature help
//! and formatting (the same as `dnnc fmt`).
//!
//! This is the only crate that knows LSP and JSON-RPC.

mod analysis;
mod completion;
mod server;
mod symbols;
mod text;
pub mod transport;

use tower_lsp_server::{LspService, Server};

/// Serves LSP on standard input and output until the client exits. Returns whether
/// the client asked for `shutdown` before it ended the session (the process's exit
/// status is 0 then, 1 otherwise, as the LSP specification asks).
pub fn run_stdio() -> std::io::Result<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = shutdown.clone();
    rt.block_on(async {
        let stdin = tokio::io::stdin();
        let (to_server, from_client) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            // When the client goes away, dropping `to_server` ends the server too.
            let _ = transport::relay(stdin, to_server, &seen).await;
        });
        let (service, socket) = LspService::new(server::Backend::new);
        Server::new(from_client, tokio::io::stdout(), socket)
            .serve(service)
            .await;
    });
    // The relay may still be blocked reading standard input; do not wait for it.
    rt.shutdown_background();
    Ok(shutdown.load(std::sync::atomic::Ordering::SeqCst))
}
