//! AFL++ target `lower_and_run` (see `dnnc_fuzz::lower_and_run`).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        dnnc_fuzz::lower_and_run(data);
    });
}
