//! The scalar functions fused loops call for ops that have neither an instruction in
//! Cranelift or LLVM nor a program in `dnnc_ir::vmath` (exp, log, tanh and erf have one):
//! [`Helper`] names each one. The JIT links loops to [`Helper::address`];
//! static libraries export them under [`Helper::symbol`] (`dnnc-capi` defines the
//! `#[no_mangle]` symbols), which is how object files refer to them. Each computes
//! what [`dnnc_ir::scalar`] defines, so compiled loops agree with the interpreter.

/// Defines [`Helper`] and its table from one list, so that the table is sized and
/// ordered by the definition itself.
macro_rules! helpers {
    ($($name:ident => $symbol:literal, $arity:literal, $f:path;)*) => {
        /// A Rust function compiled loops call.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Helper {
            $($name,)*
        }

        impl Helper {
            /// Every helper, in the order of the definition.
            pub const ALL: &'static [Helper] = &[$(Helper::$name,)*];

            /// The symbol a static library exports the helper under.
            pub fn symbol(self) -> &'static str {
                match self {
                    $(Helper::$name => $symbol,)*
                }
            }

            /// How many `f32` arguments it takes.
            pub fn arity(self) -> usize {
                match self {
                    $(Helper::$name => $arity,)*
                }
            }

            /// The function's address in this process.
            pub fn address(self) -> *const u8 {
                match self {
                    $(Helper::$name => $f as *const u8,)*
                }
            }
        }
    };
}

helpers! {
    Sin => "dnnc_sin", 1, sin;
    Cos => "dnnc_cos", 1, cos;
    Pow => "dnnc_pow", 2, pow;
}

pub extern "C" fn sin(x: f32) -> f32 {
    x.sin()
}
pub extern "C" fn cos(x: f32) -> f32 {
    x.cos()
}
pub extern "C" fn pow(x: f32, y: f32) -> f32 {
    x.powf(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_distinct_and_helpers_compute_the_scalar_rules() {
        let mut symbols: Vec<&str> = Helper::ALL.iter().map(|h| h.symbol()).collect();
        symbols.sort_unstable();
        symbols.dedup();
        assert_eq!(symbols.len(), Helper::ALL.len());
        assert_eq!(pow(2.0, 0.5), 2f32.powf(0.5));
    }
}
