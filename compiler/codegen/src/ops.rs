//! Kernels on typed buffers for the ops that are not fused `f32` loops: integer and
//! `bool` arithmetic, comparisons, `select`, `cast`, data movement, reductions of every
//! element type, `argmax`/`argmin`, `gather`/`scatter_add` and the random draws. Each
//! follows the interpreter's rule for its op (and [`dnnc_ir::scalar`]) exactly.

use dnnc_ir::scalar::{
    erf_f32, fit, floor_div, floor_mod, int_pow, max_f32, min_f32, rem_f32, sign_f32,
};
use dnnc_ir::{BinaryOp, DType, Dist, ReduceKind, UnaryOp};
use dnnc_tensor::Data;

use dnnc_ir::rng;
use dnnc_ir::scalar::{arg_extreme, int_range};

/// `(before, size, after)`: a shape viewed around one axis.
pub(crate) type Dims = (usize, usize, usize);

/// One kernel and its compile-time attributes; its operands and result are buffers.
pub(crate) enum Kernel {
    /// Elementwise unary op; the dtype is the result's (integers wrap into it).
    Unary(UnaryOp, DType),
    /// Elementwise binary op; the dtype is the result's.
    Binary(BinaryOp, DType),
    Select,
    Cast(DType),
    /// `out[i] = x[index[i]]` (transpose, broadcast, slice).
    Take(Vec<usize>),
    /// Operand `j` goes to `out[index[j][i]]`.
    Concat(Vec<Vec<usize>>),
    /// `out = fill`, then `out[index[i]] = x[i]`.
    Pad {
        fill: Data,
        index: Vec<usize>,
    },
    /// `out[index[i]] ⊕= x[i]` from the identity; the dtype is the result's.
    Reduce {
        kind: ReduceKind,
        dtype: DType,
        index: Vec<usize>,
        n: usize,
    },
    Arg {
        max: bool,
        dims: Dims,
    },
    /// `[batch, m, k, n]`.
    MatMul([usize; 4]),
    Gather(Dims),
    ScatterAdd {
        dims: Dims,
        dtype: DType,
        n: usize,
    },
    Random {
        dist: Dist,
        n: usize,
        salt: u64,
    },
}

fn bad(what: &str) -> String {
    format!("codegen: {what} of operands it does not take")
}

fn zip<T: Copy, U>(x: &[T], y: &[T], f: impl Fn(T, T) -> U) -> Vec<U> {
    x.iter().zip(y).map(|(&a, &b)| f(a, b)).collect()
}

fn take<T: Copy>(v: &[T], index: &[usize]) -> Vec<T> {
    index.iter().map(|&i| v[i]).collect()
}

fn put<T: Copy>(out: &mut [T], index: &[usize], v: &[T]) {
    for (&d, &a) in index.iter().zip(v) {
        out[d] = a;
    }
}

fn fold<T: Copy>(x: &[T], dst: &[usize], n: usize, init: T, f: impl Fn(T, T) -> T) -> Vec<T> {
    let mut out = vec![init; n];
    for (&d, &a) in dst.iter().zip(x) {
        out[d] = f(out[d], a);
    }
    out
}

fn select<T: Copy>(c: &[bool], a: &[T], b: &[T]) -> Vec<T> {
    c.iter()
        .zip(a.iter().zip(b))
        .map(|(&c, (&a, &b))| if c { a } else { b })
        .collect()
}

/// The integer indices in `t` as positions along an axis of `size` elements.
fn indices(t: &Data, size: usize) -> Result<Vec<usize>, String> {
    let Data::I64(v) = t else {
        return Err(bad("indices"));
    };
    v.iter()
        .map(|&i| match usize::try_from(i) {
            Ok(u) if u < size => Ok(u),
            _ => Err(format!(
                "codegen: index {i} is out of range for an axis of size {size}"
            )),
        })
        .collect()
}

/// For `(before, size, after)` and indices along the middle axis, the flat positions
/// they address, in row-major order of `[before, indices.., after]`.
fn positions((before, size, after): Dims, idx: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(before * idx.len() * after);
    for b in 0..before {
        for &i in idx {
            let base = (b * size + i) * after;
            out.extend(base..base + after);
        }
    }
    out
}

fn unary_f32(u: UnaryOp) -> Option<fn(f32) -> f32> {
    Some(match u {
        UnaryOp::Neg => |a| -a,
        UnaryOp::Exp => f32::exp,
        UnaryOp::Log => f32::ln,
        UnaryOp::Sqrt => f32::sqrt,
        UnaryOp::Rsqrt => |a| 1.0 / a.sqrt(),
        UnaryOp::Abs => f32::abs,
        UnaryOp::Sign => sign_f32,
        UnaryOp::Sin => f32::sin,
        UnaryOp::Cos => f32::cos,
        UnaryOp::Tanh => f32::tanh,
        UnaryOp::Erf => erf_f32,
        UnaryOp::Floor => f32::floor,
        UnaryOp::Ceil => f32::ceil,
        UnaryOp::Not => return None,
    })
}

fn unary_int(u: UnaryOp) -> Option<fn(i64) -> i64> {
    Some(match u {
        UnaryOp::Neg => i64::wrapping_neg,
        UnaryOp::Abs => i64::wrapping_abs,
        UnaryOp::Sign => i64::signum,
        _ => return None,
    })
}

fn binary(op: BinaryOp, dtype: DType, x: &Data, y: &Data) -> Result<Data, String> {
    use BinaryOp as B;
    Ok(match (x, y) {
        (Data::F32(x), Data::F32(y)) => match op {
            B::Add => Data::F32(zip(x, y, |a, b| a + b)),
            B::Sub => Data::F32(zip(x, y, |a, b| a - b)),
            B::Mul => Data::F32(zip(x, y, |a, b| a * b)),
            B::Div => Data::F32(zip(x, y, |a, b| a / b)),
            B::Pow => Data::F32(zip(x, y, f32::powf)),
            B::Max => Data::F32(zip(x, y, max_f32)),
            B::Min => Data::F32(zip(x, y, min_f32)),
            B::Rem => Data::F32(zip(x, y, rem_f32)),
            B::Lt => Data::Bool(zip(x, y, |a, b| a < b)),
            B::Le => Data::Bool(zip(x, y, |a, b| a <= b)),
            B::Gt => Data::Bool(zip(x, y, |a, b| a > b)),
            B::Ge => Data::Bool(zip(x, y, |a, b| a >= b)),
            B::Eq => Data::Bool(zip(x, y, |a, b| a == b)),
            B::Ne => Data::Bool(zip(x, y, |a, b| a != b)),
            B::And | B::Or => return Err(bad(op.name())),
        },
        (Data::I64(x), Data::I64(y)) => {
            if matches!(op, B::Div | B::Rem) && y.contains(&0) {
                return Err("codegen: integer division by zero".into());
            }
            if op == B::Pow && x.iter().zip(y).any(|(&a, &e)| a == 0 && e < 0) {
                return Err("codegen: integer 0 raised to a negative power".into());
            }
            let arith = |f: fn(i64, i64) -> i64| Data::I64(zip(x, y, |a, b| fit(dtype, f(a, b))));
            match op {
                B::Add => arith(i64::wrapping_add),
                B::Sub => arith(i64::wrapping_sub),
                B::Mul => arith(i64::wrapping_mul),
                B::Div => arith(floor_div),
                B::Pow => arith(int_pow),
                B::Max => arith(i64::max),
                B::Min => arith(i64::min),
                B::Rem => arith(floor_mod),
                B::Lt => Data::Bool(zip(x, y, |a, b| a < b)),
                B::Le => Data::Bool(zip(x, y, |a, b| a <= b)),
                B::Gt => Data::Bool(zip(x, y, |a, b| a > b)),
                B::Ge => Data::Bool(zip(x, y, |a, b| a >= b)),
                B::Eq => Data::Bool(zip(x, y, |a, b| a == b)),
                B::Ne => Data::Bool(zip(x, y, |a, b| a != b)),
                B::And | B::Or => return Err(bad(op.name())),
            }
        }
        (Data::Bool(x), Data::Bool(y)) => Data::Bool(match op {
            B::And => zip(x, y, |a, b| a & b),
            B::Or => zip(x, y, |a, b| a | b),
            B::Lt => zip(x, y, |a, b| !a & b),
            B::Le => zip(x, y, |a, b| !a | b),
            B::Gt => zip(x, y, |a, b| a & !b),
            B::Ge => zip(x, y, |a, b| a | !b),
            B::Eq => zip(x, y, |a, b| a == b),
            B::Ne => zip(x, y, |a, b| a != b),
            _ => return Err(bad(op.name())),
        }),
        _ => return Err(bad(op.name())),
    })
}

fn cast(to: DType, x: &Data) -> Data {
    match (x, to) {
        (Data::F32(x), DType::F32) => Data::F32(x.clone()),
        (Data::F32(x), DType::Bool) => Data::Bool(x.iter().map(|&a| a != 0.0).collect()),
        (Data::F32(x), _) => Data::I64(x.iter().map(|&a| fit(to, a as i64)).collect()),
        (Data::I64(x), DType::F32) => Data::F32(x.iter().map(|&a| a as f32).collect()),
        (Data::I64(x), DType::Bool) => Data::Bool(x.iter().map(|&a| a != 0).collect()),
        (Data::I64(x), _) => Data::I64(x.iter().map(|&a| fit(to, a)).collect()),
        (Data::Bool(x), DType::F32) => {
            Data::F32(x.iter().map(|&a| f32::from(u8::from(a))).collect())
        }
        (Data::Bool(x), DType::Bool) => Data::Bool(x.clone()),
        (Data::Bool(x), _) => Data::I64(x.iter().map(|&a| i64::from(a)).collect()),
    }
}

/// `out[i] = x[index[i]]` for any element type.
pub(crate) fn take_data(x: &Data, index: &[usize]) -> Data {
    match x {
        Data::F32(v) => Data::F32(take(v, index)),
        Data::I64(v) => Data::I64(take(v, index)),
        Data::Bool(v) => Data::Bool(take(v, index)),
    }
}

fn put_data(out: &mut Data, index: &[usize], x: &Data) -> Result<(), String> {
    match (out, x) {
        (Data::F32(o), Data::F32(v)) => put(o, index, v),
        (Data::I64(o), Data::I64(v)) => put(o, index, v),
        (Data::Bool(o), Data::Bool(v)) => put(o, index, v),
        _ => return Err(bad("a copy")),
    }
    Ok(())
}

impl Kernel {
    /// The result of the kernel on `args`. `out` is the result's buffer, overwritten.
    pub(crate) fn exec(&self, args: &[&Data], out: &mut Data) -> Result<(), String> {
        *out = match self {
            Kernel::Unary(u, dtype) => match (args[0], unary_f32(*u), unary_int(*u)) {
                (Data::F32(x), Some(f), _) => Data::F32(x.iter().map(|&a| f(a)).collect()),
                (Data::I64(x), _, Some(f)) => {
                    Data::I64(x.iter().map(|&a| fit(*dtype, f(a))).collect())
                }
                (Data::Bool(x), ..) if *u == UnaryOp::Not => {
                    Data::Bool(x.iter().map(|&a| !a).collect())
                }
                _ => return Err(bad(u.name())),
            },
            Kernel::Binary(op, dtype) => binary(*op, *dtype, args[0], args[1])?,
            Kernel::Select => {
                let Data::Bool(c) = args[0] else {
                    return Err(bad("select"));
                };
                match (args[1], args[2]) {
                    (Data::F32(a), Data::F32(b)) => Data::F32(select(c, a, b)),
                    (Data::I64(a), Data::I64(b)) => Data::I64(select(c, a, b)),
                    (Data::Bool(a), Data::Bool(b)) => Data::Bool(select(c, a, b)),
                    _ => return Err(bad("select")),
                }
            }
            Kernel::Cast(to) => cast(*to, args[0]),
            Kernel::Take(index) => take_data(args[0], index),
            Kernel::Concat(index) => {
                for (x, index) in args.iter().zip(index) {
                    put_data(out, index, x)?;
                }
                return Ok(());
            }
            Kernel::Pad { fill, index } => {
                let mut o = fill.clone();
                put_data(&mut o, index, args[0])?;
                o
            }
            Kernel::Reduce {
                kind,
                dtype,
                index,
                n,
            } => {
                let (dst, n, dtype) = (index.as_slice(), *n, *dtype);
                match (args[0], kind) {
                    (Data::F32(v), _) => {
                        let mut o = vec![0.0; n];
                        crate::kernels::reduce(*kind, v, dst, &mut o);
                        Data::F32(o)
                    }
                    (Data::I64(v), ReduceKind::Sum) => {
                        Data::I64(fold(v, dst, n, 0, |a, b| fit(dtype, a.wrapping_add(b))))
                    }
                    (Data::I64(v), ReduceKind::Max) => {
                        Data::I64(fold(v, dst, n, int_range(dtype).0, i64::max))
                    }
                    (Data::I64(v), ReduceKind::Min) => {
                        Data::I64(fold(v, dst, n, int_range(dtype).1, i64::min))
                    }
                    (Data::Bool(v), ReduceKind::Max) => {
                        Data::Bool(fold(v, dst, n, false, |a, b| a | b))
                    }
                    (Data::Bool(v), ReduceKind::Min) => {
                        Data::Bool(fold(v, dst, n, true, |a, b| a & b))
                    }
                    (Data::Bool(_), ReduceKind::Sum) => return Err(bad("reduce_sum")),
                }
            }
            Kernel::Arg { max, dims } => Data::I64(match (args[0], max) {
                (Data::F32(v), true) => arg_extreme(v, *dims, |a, best| {
                    !best.is_nan() && (a.is_nan() || a > best)
                }),
                (Data::F32(v), false) => arg_extreme(v, *dims, |a, best| {
                    !best.is_nan() && (a.is_nan() || a < best)
                }),
                (Data::I64(v), true) => arg_extreme(v, *dims, |a, best| a > best),
                (Data::I64(v), false) => arg_extreme(v, *dims, |a, best| a < best),
                (Data::Bool(v), true) => arg_extreme(v, *dims, |a, best| a & !best),
                (Data::Bool(v), false) => arg_extreme(v, *dims, |a, best| !a & best),
            }),
            Kernel::MatMul(dims) => {
                let (Data::F32(a), Data::F32(b), Data::F32(c)) = (args[0], args[1], &mut *out)
                else {
                    return Err(bad("matmul"));
                };
                crate::kernels::matmul(a, b, *dims, c);
                return Ok(());
            }
            Kernel::Gather(dims) => {
                let idx = indices(args[1], dims.1)?;
                take_data(args[0], &positions(*dims, &idx))
            }
            Kernel::ScatterAdd { dims, dtype, n } => {
                let idx = indices(args[1], dims.1)?;
                let dst = positions(*dims, &idx);
                match args[0] {
                    Data::F32(v) => {
                        let mut o = vec![0.0f32; *n];
                        dst.iter().zip(v).for_each(|(&d, &a)| o[d] += a);
                        Data::F32(o)
                    }
                    Data::I64(v) => {
                        let mut o = vec![0i64; *n];
                        dst.iter()
                            .zip(v)
                            .for_each(|(&d, &a)| o[d] = fit(*dtype, o[d].wrapping_add(a)));
                        Data::I64(o)
                    }
                    Data::Bool(v) => {
                        let mut o = vec![false; *n];
                        dst.iter().zip(v).for_each(|(&d, &a)| o[d] |= a);
                        Data::Bool(o)
                    }
                }
            }
            Kernel::Random { dist, n, salt } => {
                let key = match args[0] {
                    Data::I64(k) if !k.is_empty() => k[0],
                    _ => return Err(bad("random")),
                };
                let s = rng::stream(key, *salt);
                let n = *n as u64;
                match *dist {
                    Dist::Uniform { low, high } => {
                        Data::F32((0..n).map(|i| rng::uniform_at(s, i, low, high)).collect())
                    }
                    Dist::Normal { mean, std } => {
                        Data::F32((0..n).map(|i| rng::normal_at(s, i, mean, std)).collect())
                    }
                    Dist::Bernoulli => {
                        let Data::F32(p) = args[1] else {
                            return Err(bad("random_bernoulli"));
                        };
                        Data::Bool(
                            p.iter()
                                .zip(0..)
                                .map(|(&p, i)| rng::bernoulli_at(s, i, p))
                                .collect(),
                        )
                    }
                }
            }
        };
        Ok(())
    }
}
