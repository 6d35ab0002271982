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

use tower_lsp_server::{LspService, Server};

/// Serves LSP on standard input and output until the client exits.
pub fn run_stdio() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (stdin, stdout) = (tokio::io::stdin(), tokio::io::stdout());
        let (service, socket) = LspService::new(server::Backend::new);
        Server::new(stdin, stdout, socket).serve(service).await;
    });
    Ok(())
}
