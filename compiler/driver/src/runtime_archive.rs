//! The runtime archive `dnnc compile` bundles into static libraries, embedded in the
//! binary by `build.rs` (empty when built with `DNNC_EMBED_RUNTIME=0`).

/// The bytes of `libdnnc_capi.a`, if this `dnnc` was built with them.
pub fn embedded() -> Option<&'static [u8]> {
    static ARCHIVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libdnnc_capi.a"));
    Some(ARCHIVE).filter(|a| !a.is_empty())
}
