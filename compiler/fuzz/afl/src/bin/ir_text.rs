//! AFL++ target `ir_text` (see `dnnc_fuzz::ir_text`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        dnnc_fuzz::ir_text(data);
    });
}
