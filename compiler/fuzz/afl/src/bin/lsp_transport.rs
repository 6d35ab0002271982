//! AFL++ target `lsp_transport` (see `dnnc_fuzz::lsp_transport`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        dnnc_fuzz::lsp_transport(data);
    });
}
