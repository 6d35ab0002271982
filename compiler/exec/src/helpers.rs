//! The scalar functions fused loops call for ops Cranelift has no instruction for.
//!
//! The JIT links loops to these addresses; static libraries export them under the
//! names in [`table`] (`dnnc-capi` defines the `#[no_mangle]` symbols), which is how
//! object files refer to them.

pub extern "C" fn exp(x: f32) -> f32 {
    x.exp()
}
pub extern "C" fn log(x: f32) -> f32 {
    x.ln()
}
pub extern "C" fn sin(x: f32) -> f32 {
    x.sin()
}
pub extern "C" fn cos(x: f32) -> f32 {
    x.cos()
}
pub extern "C" fn tanh(x: f32) -> f32 {
    x.tanh()
}
pub extern "C" fn erf(x: f32) -> f32 {
    dnnc_ir::scalar::erf_f32(x)
}
pub extern "C" fn sign(x: f32) -> f32 {
    dnnc_ir::scalar::sign_f32(x)
}
pub extern "C" fn pow(x: f32, y: f32) -> f32 {
    x.powf(y)
}

/// Every helper: symbol name, address, number of `f32` arguments.
pub fn table() -> [(&'static str, *const u8, usize); 8] {
    [
        ("dnnc_exp", exp as *const u8, 1),
        ("dnnc_log", log as *const u8, 1),
        ("dnnc_sin", sin as *const u8, 1),
        ("dnnc_cos", cos as *const u8, 1),
        ("dnnc_tanh", tanh as *const u8, 1),
        ("dnnc_erf", erf as *const u8, 1),
        ("dnnc_sign", sign as *const u8, 1),
        ("dnnc_pow", pow as *const u8, 2),
    ]
}
