//! Kernels on typed buffers for the ops that are not fused `f32` loops or matrix
//! products: arithmetic of every element type, comparisons, `select`, `cast`, data
//! movement, reductions, `argmax`/`argmin`, `gather`/`scatter_add` and the random
//! draws. What an elementwise op, a cast or a reduction computes is
//! [`dnnc_ir::elementwise`]'s, shared with the interpreter; this module moves data and
//! adds fast `f32` paths. Results go into preallocated buffers: nothing allocates, except
//! the `f32` accumulator of a reduction of `f16`/`bf16` values.

use dnnc_ir::elementwise::{self, ElemError};
use dnnc_ir::rng;
use dnnc_ir::scalar::{max_f32, min_f32};
use dnnc_ir::{BinaryOp, DType, Dist, ReduceKind, UnaryOp, Window2d};
use dnnc_tensor::{with_same, with_slice_mut, Elem};

use crate::buffer::{In, Out};
use crate::maps::Walk;
use crate::moves::Moves;
use crate::program::{Dims, KernelDesc};
use crate::window::{fold, patches};
use dnnc_kernels::pool;

/// One kernel and its attributes, index maps expanded; its operands and result are
/// buffers.
pub enum Kernel {
    /// Elementwise unary op; the dtype is the result's (integers wrap into it).
    Unary(UnaryOp, DType),
    /// Elementwise binary op; the dtype is the result's.
    Binary(BinaryOp, DType),
    Select,
    Cast(DType),
    /// `out[i] = x[index[i]]` (transpose, broadcast, slice).
    Take(Walk),
    /// Operand `j` goes to `out[index[j][i]]`.
    Concat(Vec<Walk>),
    /// Part `j` moves from operand `j` into `out` ([`KernelDesc::ConcatFrom`]).
    ConcatFrom(Vec<Moves>),
    /// `out = value`, then `out[index[i]] = x[i]`.
    Pad {
        value: f64,
        dtype: DType,
        index: Walk,
    },
    /// `out[index[i]] ⊕= x[i]` from the identity; the dtype is the result's.
    Reduce {
        kind: ReduceKind,
        dtype: DType,
        index: Walk,
    },
    /// An `f32` reduction over the middle axis of `(outer, reduced, inner)`: the
    /// reduced axes are contiguous, so rows are combined whole (vectorised, and in the
    /// interpreter's order for every element).
    ReduceBlock {
        kind: ReduceKind,
        dims: Dims,
    },
    /// An `f32` reduction over axes that are not consecutive ([`crate::reduce`]).
    ReduceRuns {
        kind: ReduceKind,
        runs: Vec<(usize, bool)>,
    },
    Arg {
        max: bool,
        dims: Dims,
    },
    Sort {
        descending: bool,
        dims: Dims,
    },
    Gather(Dims),
    ScatterAdd {
        dims: Dims,
        dtype: DType,
    },
    Random {
        dist: Dist,
        salt: u64,
    },
    /// im2col of an `[N, C, H, W]` input ([`crate::window`]).
    Patches {
        win: Window2d,
        shape: [usize; 4],
    },
    /// col2im into an `[N, C, H, W]` result; the dtype is the result's.
    Fold {
        win: Window2d,
        shape: [usize; 4],
        dtype: DType,
    },
}

impl Kernel {
    /// The kernel `d` describes, with its index maps expanded.
    pub fn from_desc(d: &KernelDesc) -> Result<Kernel, String> {
        let map = |a: &crate::program::Affine| Walk::new(&a.shape, &a.strides, a.offset);
        Ok(match d {
            KernelDesc::Unary(u, t) => Kernel::Unary(*u, *t),
            KernelDesc::Binary(b, t) => Kernel::Binary(*b, *t),
            KernelDesc::Select => Kernel::Select,
            KernelDesc::Cast(t) => Kernel::Cast(*t),
            KernelDesc::Take(a) => Kernel::Take(map(a)),
            KernelDesc::Concat(v) => Kernel::Concat(v.iter().map(map).collect()),
            KernelDesc::ConcatFrom(parts) => Kernel::ConcatFrom(
                parts
                    .iter()
                    .map(|(src, dst)| Moves::new(src, dst))
                    .collect::<Result<_, _>>()?,
            ),
            KernelDesc::Pad {
                value,
                dtype,
                index,
            } => Kernel::Pad {
                value: *value,
                dtype: *dtype,
                index: map(index),
            },
            KernelDesc::Reduce { kind, dtype, index } => Kernel::Reduce {
                kind: *kind,
                dtype: *dtype,
                index: map(index),
            },
            KernelDesc::ReduceBlock { kind, dims } => Kernel::ReduceBlock {
                kind: *kind,
                dims: *dims,
            },
            KernelDesc::ReduceRuns { kind, runs } => Kernel::ReduceRuns {
                kind: *kind,
                runs: runs.clone(),
            },
            KernelDesc::Patches { win, shape } => Kernel::Patches {
                win: *win,
                shape: *shape,
            },
            KernelDesc::Fold { win, shape, dtype } => Kernel::Fold {
                win: *win,
                shape: *shape,
                dtype: *dtype,
            },
            KernelDesc::Arg { max, dims } => Kernel::Arg {
                max: *max,
                dims: *dims,
            },
            KernelDesc::Sort { descending, dims } => Kernel::Sort {
                descending: *descending,
                dims: *dims,
            },
            KernelDesc::Gather(d) => Kernel::Gather(*d),
            KernelDesc::ScatterAdd { dims, dtype } => Kernel::ScatterAdd {
                dims: *dims,
                dtype: *dtype,
            },
            KernelDesc::Random { dist, salt } => Kernel::Random {
                dist: *dist,
                salt: *salt,
            },
        })
    }
}

impl KernelDesc {
    /// A short name for schedule dumps.
    pub fn name(&self) -> String {
        match self {
            KernelDesc::Unary(u, _) => u.name().to_string(),
            KernelDesc::Binary(b, _) => b.name().to_string(),
            KernelDesc::Select => "select".into(),
            KernelDesc::Cast(t) => format!("cast {t}"),
            KernelDesc::Take(_) => "take".into(),
            KernelDesc::Concat(_) => "concat".into(),
            KernelDesc::ConcatFrom(_) => "concat reading slices".into(),
            KernelDesc::Pad { .. } => "pad".into(),
            KernelDesc::Reduce { kind, .. } => {
                format!("reduce_{kind:?} by index map").to_lowercase()
            }
            KernelDesc::ReduceBlock {
                kind,
                dims: (o, r, i),
            } => format!(
                "reduce_{} rows [{o}×{r}×{i}]",
                format!("{kind:?}").to_lowercase()
            ),
            KernelDesc::ReduceRuns { kind, runs } => {
                let dims: Vec<String> = runs
                    .iter()
                    .map(|&(d, r)| if r { format!("{d}r") } else { d.to_string() })
                    .collect();
                format!(
                    "reduce_{} runs [{}]",
                    format!("{kind:?}").to_lowercase(),
                    dims.join("×")
                )
            }
            KernelDesc::Patches { win, .. } => format!("patches {win}"),
            KernelDesc::Fold { win, .. } => format!("fold {win}"),
            KernelDesc::Arg { max: true, .. } => "argmax".into(),
            KernelDesc::Arg { max: false, .. } => "argmin".into(),
            KernelDesc::Sort { .. } => "argsort".into(),
            KernelDesc::Gather(_) => "gather".into(),
            KernelDesc::ScatterAdd { .. } => "scatter_add".into(),
            KernelDesc::Random { .. } => "random".into(),
        }
    }
}

fn bad(what: &str) -> String {
    format!("codegen: {what} of operands it does not take")
}

/// Below this many elements a data-movement kernel runs on the calling thread alone.
const PARALLEL_MOVE: usize = 1 << 16;

/// A buffer the pool's threads write disjoint parts of.
struct SharedOut<T>(*mut T, usize);
unsafe impl<T> Send for SharedOut<T> {}
unsafe impl<T> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The whole buffer.
    ///
    /// # Safety
    /// Callers on different threads must write disjoint elements.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0, self.1)
    }
}

/// `f(out, first, end)` over runs `first..end` of `walk`, split over the pool's threads
/// when the walk is large; `f` must write only what those runs map to.
fn split_runs<T: Send + Sync>(
    out: &mut [T],
    walk: &Walk,
    f: impl Fn(&mut [T], usize, usize) + Sync,
) {
    split_rows(out, walk.runs(), walk.len(), f)
}

/// `f(out, first, end)` over rows `first..end` of `rows` rows of `elements` elements
/// in all, split over the pool's threads when there are many elements; `f` must write
/// only what those rows map to.
fn split_rows<T: Send + Sync>(
    out: &mut [T],
    rows: usize,
    elements: usize,
    f: impl Fn(&mut [T], usize, usize) + Sync,
) {
    let threads = pool::threads()
        .min(elements / PARALLEL_MOVE)
        .min(rows)
        .max(1);
    if threads == 1 {
        return f(out, 0, rows);
    }
    let chunks = (4 * threads).min(rows);
    let shared = SharedOut(out.as_mut_ptr(), out.len());
    pool::run(chunks, threads, &|_, c| {
        // SAFETY: chunk `c` writes only what its rows map to, disjoint from the other
        // chunks' (the callers' maps are injective).
        let out = unsafe { shared.get() };
        f(out, rows * c / chunks, rows * (c + 1) / chunks);
    });
}

/// `out.fill(v)`, split over the pool's threads when `out` is large.
fn fill<T: Copy + Send + Sync>(out: &mut [T], v: T) {
    let n = out.len();
    let threads = pool::threads().min(n / PARALLEL_MOVE).max(1);
    if threads == 1 {
        return out.fill(v);
    }
    let shared = SharedOut(out.as_mut_ptr(), n);
    pool::run(threads, threads, &|_, c| {
        // SAFETY: chunk `c` fills its own range.
        let out = unsafe { shared.get() };
        out[n * c / threads..n * (c + 1) / threads].fill(v);
    });
}

fn take_into<T: Copy + Send + Sync>(out: &mut [T], v: &[T], walk: &Walk) {
    split_runs(out, walk, |out, first, end| {
        take_runs(out, v, walk, first, end)
    });
}

fn take_runs<T: Copy>(out: &mut [T], v: &[T], walk: &Walk, first: usize, end: usize) {
    walk.rows_in(first, end, |i, pos, len, st| {
        let out = &mut out[i..i + len];
        match st {
            1 => out.copy_from_slice(&v[pos..pos + len]),
            // A broadcast row.
            0 => out.fill(v[pos]),
            _ => {
                let src = &v[pos..pos + (len - 1) * st + 1];
                for (e, o) in out.iter_mut().enumerate() {
                    *o = src[e * st];
                }
            }
        }
    });
}

/// `out[walk(i)] = v[i]`; `walk` is injective (a pad's or a concat's map), so threads
/// may split it.
fn put<T: Copy + Send + Sync>(out: &mut [T], walk: &Walk, v: &[T]) {
    split_runs(out, walk, |out, first, end| {
        put_runs(out, walk, v, first, end)
    });
}

fn put_runs<T: Copy>(out: &mut [T], walk: &Walk, v: &[T], first: usize, end: usize) {
    walk.rows_in(first, end, |i, pos, len, st| {
        let v = &v[i..i + len];
        if st == 1 {
            out[pos..pos + len].copy_from_slice(v);
        } else if st == 0 {
            // Every element lands on one position: the last one stays.
            out[pos] = v[len - 1];
        } else {
            let dst = &mut out[pos..pos + (len - 1) * st + 1];
            for (e, &x) in v.iter().enumerate() {
                dst[e * st] = x;
            }
        }
    });
}

/// The `i`-th index of `t` (of any integer type) as a position along an axis of
/// `size` elements.
fn index_at(t: In<'_>, i: usize, size: usize) -> Result<usize, String> {
    let v = t.i64_at(i);
    match usize::try_from(v) {
        Ok(u) if u < size => Ok(u),
        _ => Err(format!(
            "codegen: index {v} is out of range for an axis of size {size}"
        )),
    }
}

fn elem_error(e: ElemError) -> String {
    match e {
        ElemError::Arithmetic(why) => format!("codegen: {why}"),
        other => format!("codegen: {other}"),
    }
}

/// `out[i] = x[index[i]]` for any element type.
fn take_data(x: In<'_>, index: &Walk, out: Out<'_>) -> Result<(), String> {
    with_same!(x, out, Slice, SliceMut, v, o => take_into(o, v, index), else return Err(bad("a copy")));
    Ok(())
}

fn put_data(out: &mut Out<'_>, index: &Walk, x: In<'_>) -> Result<(), String> {
    with_same!(out.reborrow(), x, SliceMut, Slice, o, v => put(o, index, v), else return Err(bad("a copy")));
    Ok(())
}

/// Output elements per slab of [`concat_slabs`] (a slab's operands are all written
/// while it is in cache).
const SLAB: usize = 1 << 14;

/// `out[index[j][i]] = x_j[i]` for each operand `j`.
fn concat_data(out: &mut Out<'_>, index: &[Walk], args: &[In<'_>]) -> Result<(), String> {
    match out {
        Out::F32(o) if args.iter().all(|a| matches!(a, In::F32(_))) => {
            let x = |j: usize| match args[j] {
                In::F32(v) => v,
                _ => unreachable!("checked"),
            };
            concat_slabs(o, index, x);
        }
        _ => {
            for (x, index) in args.iter().zip(index) {
                put_data(out, index, *x)?;
            }
        }
    }
    Ok(())
}

/// `out[dst_j(i)] = x_j[src_j(i)]` for each part `j`; the rows split over the pool's
/// threads when there are many elements.
fn concat_moves(out: &mut Out<'_>, parts: &[Moves], args: &[In<'_>]) -> Result<(), String> {
    if parts.len() != args.len() {
        return Err(bad("a concat"));
    }
    for (m, &x) in parts.iter().zip(args) {
        if !m.fits(x.len(), out.len()) {
            return Err("codegen: a concat's part lies outside its operand or result".into());
        }
        with_same!(out.reborrow(), x, SliceMut, Slice, o, v => move_rows(o, m, v), else return Err(bad("a concat")));
    }
    Ok(())
}

fn move_rows<T: Copy + Send + Sync>(out: &mut [T], m: &Moves, x: &[T]) {
    split_rows(out, m.row_count(), m.len(), |out, first, end| {
        m.run_rows(out, x, first, end)
    });
}

/// [`concat_data`] in slabs: slab `c` of `chunks` writes that fraction of every
/// operand's runs, so when the operands interleave in `out` (the tiles of a pooling
/// gradient) each part of `out` is finished while in cache rather than revisited once
/// per operand; the slabs split over the pool's threads as one job.
fn concat_slabs<'a>(out: &mut [f32], index: &[Walk], x: impl Fn(usize) -> &'a [f32] + Sync) {
    let n = out.len();
    let chunks = (n / SLAB).max(1);
    let slab = |out: &mut [f32], c: usize| {
        for (j, walk) in index.iter().enumerate() {
            let runs = walk.runs();
            put_runs(out, walk, x(j), runs * c / chunks, runs * (c + 1) / chunks);
        }
    };
    let threads = pool::threads().min(n / PARALLEL_MOVE).max(1);
    if threads == 1 || chunks == 1 {
        for c in 0..chunks {
            slab(out, c);
        }
        return;
    }
    let shared = SharedOut(out.as_mut_ptr(), n);
    pool::run(chunks, threads, &|_, c| {
        // SAFETY: slab `c` writes only what its runs map to, disjoint from the other
        // slabs' (a concat's maps are injective and disjoint).
        slab(unsafe { shared.get() }, c);
    });
}

/// `out[o, i] = x[o, 0, i] ⊕ x[o, 1, i] ⊕ …` from `init`, row by row.
fn reduce_block(
    out: &mut [f32],
    x: &[f32],
    (outer, red, inner): Dims,
    init: f32,
    f: impl Fn(f32, f32) -> f32 + Copy,
    any_order: bool,
) {
    out.fill(init);
    if inner == 1 && any_order {
        for (o, row) in out.iter_mut().zip(x.chunks_exact(red.max(1))) {
            *o = f(*o, fold_lanes(row, init, f));
        }
        return;
    }
    if inner == 1 {
        fold_rows_in_order(out, x, red, init, f);
        return;
    }
    for (o, block) in out
        .chunks_exact_mut(inner)
        .zip(x.chunks_exact((red * inner).max(1)))
        .take(outer)
    {
        for row in block.chunks_exact(inner) {
            for (a, &b) in o.iter_mut().zip(row) {
                *a = f(*a, b);
            }
        }
    }
}

/// Each row of `red` elements of `x` folded by `f` from `init` into `out`, element
/// after element (the interpreter's order), eight rows at a time: the eight chains of
/// dependent additions overlap instead of each waiting on its own previous sum
/// (a layer norm's rows of 128 took 4 cycles per element that way).
fn fold_rows_in_order(
    out: &mut [f32],
    x: &[f32],
    red: usize,
    init: f32,
    f: impl Fn(f32, f32) -> f32 + Copy,
) {
    const ROWS: usize = 8;
    if red == 0 {
        return;
    }
    let mut outs = out.chunks_exact_mut(ROWS);
    let mut blocks = x.chunks_exact(ROWS * red);
    for (o, block) in (&mut outs).zip(&mut blocks) {
        let rows: [&[f32]; ROWS] = std::array::from_fn(|k| &block[k * red..(k + 1) * red]);
        let mut acc = [init; ROWS];
        for j in 0..red {
            for (a, row) in acc.iter_mut().zip(&rows) {
                *a = f(*a, row[j]);
            }
        }
        o.copy_from_slice(&acc);
    }
    for (o, row) in outs
        .into_remainder()
        .iter_mut()
        .zip(blocks.remainder().chunks_exact(red))
    {
        *o = row.iter().fold(init, |a, &b| f(a, b));
    }
}

/// `row` combined by `f` in eight interleaved lanes (which vectorise), for an `f`
/// whose result does not depend on the order (the NaN-propagating `max` and `min`).
#[inline(always)]
fn fold_lanes(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    let t = chunks.remainder().iter().fold(init, |a, &v| f(a, v));
    acc.into_iter().fold(t, f)
}

/// Copies `x[b, idx[j], a]` to `out[b, j, a]` (gather) for `(before, size, after)`.
fn gather<T: Copy>(
    out: &mut [T],
    x: &[T],
    idx: In<'_>,
    (before, size, after): Dims,
) -> Result<(), String> {
    let mut o = 0;
    for b in 0..before {
        for j in 0..idx.len() {
            let i = index_at(idx, j, size)?;
            let base = (b * size + i) * after;
            out[o..o + after].copy_from_slice(&x[base..base + after]);
            o += after;
        }
    }
    Ok(())
}

/// Adds `x[b, j, a]` into `out[b, idx[j], a]` (scatter_add of `f32`).
fn scatter(
    out: &mut [f32],
    x: &[f32],
    idx: In<'_>,
    (before, size, after): Dims,
) -> Result<(), String> {
    out.fill(0.0);
    let mut s = 0;
    for b in 0..before {
        for j in 0..idx.len() {
            let i = index_at(idx, j, size)?;
            let base = (b * size + i) * after;
            for a in 0..after {
                out[base + a] += x[s + a];
            }
            s += after;
        }
    }
    Ok(())
}

/// Where each element of a scatter_add's updates goes, in their row-major order.
fn scatter_targets(idx: In<'_>, (before, size, after): Dims) -> Result<Vec<usize>, String> {
    let mut targets = Vec::with_capacity(before * idx.len() * after);
    for b in 0..before {
        for j in 0..idx.len() {
            let base = (b * size + index_at(idx, j, size)?) * after;
            targets.extend(base..base + after);
        }
    }
    Ok(targets)
}

impl Kernel {
    /// Computes the kernel on `args` into `out`, which it overwrites.
    pub fn exec(&self, args: &[In<'_>], mut out: Out<'_>) -> Result<(), String> {
        match self {
            Kernel::Unary(u, _) => elementwise::unary(*u, args[0], out).map_err(elem_error)?,
            Kernel::Binary(op, _) => {
                elementwise::binary(*op, args[0], args[1], out).map_err(elem_error)?
            }
            Kernel::Select => {
                let In::Bool(c) = args[0] else {
                    return Err(bad("select"));
                };
                elementwise::select(c, args[1], args[2], out).map_err(elem_error)?
            }
            Kernel::Cast(_) => elementwise::cast(args[0], out).map_err(elem_error)?,
            Kernel::Take(index) => take_data(args[0], index, out)?,
            Kernel::Concat(index) => concat_data(&mut out, index, args)?,
            Kernel::ConcatFrom(parts) => concat_moves(&mut out, parts, args)?,
            Kernel::Pad { value, index, .. } => {
                with_slice_mut!(out.reborrow(), o => fill(o, Elem::from_f64(*value)));
                put_data(&mut out, index, args[0])?;
            }
            Kernel::Reduce { kind, index, .. } => {
                let positions: elementwise::Positions<'_> = &|visit| {
                    index.rows(|i, pos, len, st| {
                        for j in 0..len {
                            visit(i + j, pos + j * st);
                        }
                    })
                };
                elementwise::reduce(*kind, args[0], positions, out).map_err(elem_error)?
            }
            Kernel::ReduceBlock { kind, dims } => {
                let (In::F32(x), Out::F32(o)) = (args[0], out) else {
                    return Err(bad("a reduction"));
                };
                match kind {
                    // Sums add in the interpreter's order; the extremes are the same in any.
                    ReduceKind::Sum => reduce_block(o, x, *dims, 0.0, |a, b| a + b, false),
                    ReduceKind::Max => reduce_block(o, x, *dims, f32::NEG_INFINITY, max_f32, true),
                    ReduceKind::Min => reduce_block(o, x, *dims, f32::INFINITY, min_f32, true),
                }
            }
            Kernel::ReduceRuns { kind, runs } => {
                let (In::F32(x), Out::F32(o)) = (args[0], out) else {
                    return Err(bad("a reduction"));
                };
                crate::reduce::reduce_runs(o, x, runs, *kind);
            }
            Kernel::Patches { win, shape } => {
                with_same!(args[0], out, Slice, SliceMut, x, o => {
                    patches(o, x, win, *shape, Default::default())
                }, else return Err(bad("patches")))
            }
            Kernel::Fold { win, shape, .. } => match (args[0], out) {
                (In::F32(x), Out::F32(o)) => fold(o, x, win, *shape, 0.0, |a, b| a + b),
                _ => return Err(bad("fold")),
            },
            Kernel::Arg { max, dims } => {
                let Out::I64(o) = out else {
                    return Err(bad("an arg-reduction"));
                };
                elementwise::arg_extreme(*max, args[0], *dims, o);
            }
            Kernel::Sort { descending, dims } => {
                let Out::I64(o) = out else {
                    return Err(bad("a sort"));
                };
                elementwise::arg_sort(*descending, args[0], *dims, o);
            }
            Kernel::Gather(dims) => {
                if !args[1].dtype().is_int() {
                    return Err(bad("gather"));
                }
                with_same!(args[0], out, Slice, SliceMut, x, o => {
                    gather(o, x, args[1], *dims)?
                }, else return Err(bad("gather")))
            }
            Kernel::ScatterAdd { dims, .. } => {
                if !args[1].dtype().is_int() {
                    return Err(bad("scatter_add"));
                }
                match (args[0], out) {
                    (In::F32(x), Out::F32(o)) => scatter(o, x, args[1], *dims)?,
                    (x, o) => {
                        let targets = scatter_targets(args[1], *dims)?;
                        let positions: elementwise::Positions<'_> = &|visit| {
                            for (i, &d) in targets.iter().enumerate() {
                                visit(i, d);
                            }
                        };
                        elementwise::reduce(ReduceKind::Sum, x, positions, o).map_err(elem_error)?
                    }
                }
            }
            Kernel::Random { dist, salt } => {
                let key = match args[0] {
                    In::I64(k) if !k.is_empty() => k[0],
                    _ => return Err(bad("random")),
                };
                let s = rng::stream(key, *salt);
                match (*dist, out) {
                    (Dist::Uniform { low, high }, Out::F32(o)) => {
                        for (i, x) in o.iter_mut().enumerate() {
                            *x = rng::uniform_at(s, i as u64, low, high);
                        }
                    }
                    (Dist::Normal { mean, std }, Out::F32(o)) => {
                        for (i, x) in o.iter_mut().enumerate() {
                            *x = rng::normal_at(s, i as u64, mean, std);
                        }
                    }
                    (Dist::Bernoulli, Out::Bool(o)) => {
                        let In::F32(p) = args[1] else {
                            return Err(bad("random_bernoulli"));
                        };
                        for (i, (x, &p)) in o.iter_mut().zip(p).enumerate() {
                            *x = rng::bernoulli_at(s, i as u64, p);
                        }
                    }
                    _ => return Err(bad("random")),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concat in slabs (on one thread and split over two) writes what one operand
    /// after the other does: the four interleaved tiles of a 2×2 pooling gradient,
    /// large enough for many slabs.
    #[test]
    fn concat_slabs_match_operand_by_operand() {
        let (n, c, h, w) = (4, 8, 64, 80);
        let out_len = n * c * h * w;
        let tile = [n * c, h / 2, w / 2];
        let strides = [h * w, 2 * w, 2];
        let walks: Vec<Walk> = (0..4)
            .map(|t| Walk::new(&tile, &strides, (t / 2) * w + t % 2))
            .collect();
        let xs: Vec<Vec<f32>> = (0..4)
            .map(|t| (0..out_len / 4).map(|i| (i * 4 + t) as f32).collect())
            .collect();
        let mut want = vec![-1.0f32; out_len];
        for (walk, x) in walks.iter().zip(&xs) {
            put(&mut want, walk, x);
        }
        assert!(want.iter().all(|&v| v >= 0.0), "the tiles cover the result");
        for threads in [1, 2] {
            pool::set_threads(threads);
            let mut got = vec![-1.0f32; out_len];
            concat_slabs(&mut got, &walks, |j| &xs[j]);
            assert_eq!(got, want, "{threads} thread(s)");
        }
    }

    /// Row sums eight rows at a time add each row's elements in the interpreter's
    /// order: the same bits as one row after the other, for row counts that leave a
    /// remainder and rows of one element or none.
    #[test]
    fn row_sums_keep_the_interpreters_order() {
        let mut state = 3u32;
        let mut next = move || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        for (rows, red) in [(1, 1), (7, 3), (8, 128), (19, 5), (64, 33), (3, 0), (0, 4)] {
            let x: Vec<f32> = (0..rows * red).map(|_| next() * 1e3).collect();
            let mut got = vec![f32::NAN; rows];
            reduce_block(&mut got, &x, (rows, red, 1), 0.0, |a, b| a + b, false);
            let want: Vec<f32> = (0..rows)
                .map(|r| x[r * red..(r + 1) * red].iter().fold(0.0, |a, &b| a + b))
                .collect();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{rows} rows of {red}");
        }
    }
}
