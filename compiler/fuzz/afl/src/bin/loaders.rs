//! AFL++ target `loaders` (see `dnnc_fuzz::loaders`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        dnnc_fuzz::loaders(data);
    });
}
