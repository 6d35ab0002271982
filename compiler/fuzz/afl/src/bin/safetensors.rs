//! AFL++ target `safetensors` (see `dnnc_fuzz::safetensors`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        dnnc_fuzz::safetensors(data);
    });
}
