//! AFL++ target `check_and_format` (see `dnnc_fuzz::check_and_format`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        dnnc_fuzz::check_and_format(data);
    });
}
