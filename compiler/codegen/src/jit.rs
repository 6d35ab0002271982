//! Cranelift code generation: fused elementwise loops, and the entry function that
//! runs a whole schedule.
//!
//! Each [`Group`] becomes one function `f(ptrs, start, end)`, where `ptrs` points to
//! one buffer pointer per leaf, then one per stored member, then the output buffer, and `start..end` is the
//! range of elements to compute (threads split large loops). The loop walks byte
//! offsets: an `f32x4` loop over as many whole vectors as fit where every op has a
//! vector instruction, then a scalar loop over the rest (or over everything, when some
//! op calls a Rust helper).
//!
//! The entry function `entry() -> i32` calls every step in order with its buffers'
//! addresses as constants: loops directly, everything else through
//! `run_step(step) -> i32`; it returns 0, or the failing step's index plus one.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, FuncRef, InstBuilder, MemFlagsData, Type, UserFuncName, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use dnnc_ir::vmath::{Cmp, MathOp, Program, POW2_MAGIC};
use dnnc_ir::{DType, Graph, NodeId, Op, UnaryOp};

use crate::fuse::Group;
use crate::loop_ops::{self, BinaryCode, Compare, UnaryCode};
use dnnc_exec::helpers::Helper;

pub(crate) use dnnc_exec::LoopFn;

/// The compiled schedule.
pub(crate) type EntryFn = unsafe extern "C" fn() -> i32;

use dnnc_exec::Call;

/// The helper a unary op calls in a Cranelift loop, if it has no instruction.
fn unary_helper(u: UnaryOp) -> Option<Helper> {
    match loop_ops::unary(u) {
        UnaryCode::Call(h) => Some(h),
        UnaryCode::Neg
        | UnaryCode::Abs
        | UnaryCode::Sqrt
        | UnaryCode::Rsqrt
        | UnaryCode::Floor
        | UnaryCode::Ceil
        | UnaryCode::Math(_)
        | UnaryCode::NotInLoops => None,
    }
}

/// Whether node `id` has an `f32x4` instruction sequence (helpers are scalar calls).
fn vectorisable(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::Unary(u) => unary_helper(*u).is_none(),
        Op::Binary(b) => !matches!(loop_ops::binary(*b), BinaryCode::Call(_)),
        Op::Input { .. }
        | Op::State { .. }
        | Op::Const { .. }
        | Op::Iota { .. }
        | Op::Select
        | Op::Cast(_)
        | Op::Reshape(_)
        | Op::Transpose(_)
        | Op::Broadcast(_)
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Reduce { .. }
        | Op::ArgMax { .. }
        | Op::ArgSort { .. }
        | Op::ArgMin { .. }
        | Op::MatMul
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::Random { .. }
        | Op::StopGradient
        | Op::Patches(_)
        | Op::Fold { .. } => true,
    }
}

/// A module (JIT or object file) being filled with loops.
pub(crate) struct Loops<M: Module> {
    pub(crate) module: M,
    pub(crate) ctx: Context,
    fctx: FunctionBuilderContext,
    helpers: HashMap<&'static str, FuncId>,
    pub(crate) fns: Vec<FuncId>,
    /// Loop `i` is named `{prefix}loop{i}`.
    prefix: String,
    linkage: Linkage,
}

/// A JIT module being filled with loops, then finalised with an entry function.
pub(crate) struct Jit {
    loops: Option<Loops<JITModule>>,
}

pub(crate) fn err(what: &str, e: impl std::fmt::Debug) -> String {
    format!("codegen: {what}: {e:?}")
}

/// Cranelift settings for loops: optimised, and position-independent for object files.
pub(crate) fn isa(
    pic: bool,
) -> Result<std::sync::Arc<dyn cranelift_codegen::isa::TargetIsa>, String> {
    let mut fb = settings::builder();
    // Cranelift's IR verifier runs in debug builds (the tests); a release build trusts
    // the generator and saves its time (a twentieth of compiling an unrolled LSTM).
    let verify = if cfg!(debug_assertions) {
        "true"
    } else {
        "false"
    };
    for (k, v) in [
        ("opt_level", "speed"),
        ("use_colocated_libcalls", "false"),
        ("is_pic", if pic { "true" } else { "false" }),
        ("enable_verifier", verify),
    ] {
        fb.set(k, v).map_err(|e| err("setting", e))?;
    }
    cranelift_native::builder()
        .map_err(|e| err("host", e))?
        .finish(settings::Flags::new(fb))
        .map_err(|e| err("isa", e))
}

impl<M: Module> Loops<M> {
    /// Loops for `module`, with the Rust helpers they may call declared as imports.
    pub(crate) fn with_module(
        mut module: M,
        prefix: &str,
        linkage: Linkage,
    ) -> Result<Loops<M>, String> {
        let mut hs = HashMap::new();
        for &h in Helper::ALL {
            let name = h.symbol();
            let mut sig = module.make_signature();
            for _ in 0..h.arity() {
                sig.params.push(AbiParam::new(types::F32));
            }
            sig.returns.push(AbiParam::new(types::F32));
            let id = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(|e| err("helper", e))?;
            hs.insert(name, id);
        }
        Ok(Loops {
            ctx: module.make_context(),
            module,
            fctx: FunctionBuilderContext::new(),
            helpers: hs,
            fns: Vec::new(),
            prefix: prefix.to_string(),
            linkage,
        })
    }

    /// Compiles the loop of `group`; returns its number.
    pub(crate) fn declare(&mut self, g: &Graph, group: &Group) -> Result<usize, String> {
        let name = format!("{}loop{}", self.prefix, self.fns.len());
        let module = &mut self.module;
        let ptr = module.target_config().pointer_type();
        let mut sig = module.make_signature();
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        let id = module
            .declare_function(&name, self.linkage, &sig)
            .map_err(|e| err("declare", e))?;
        module.clear_context(&mut self.ctx);
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());

        let vector = group.members.iter().all(|&m| vectorisable(g, m));
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let args = b.block_params(entry)[0];
            let start = b.block_params(entry)[1];
            let end = b.block_params(entry)[2];
            let flags = MemFlagsData::new().with_notrap();
            let mut ptrs: HashMap<NodeId, Value> = HashMap::new();
            for (j, &leaf) in group.leaves.iter().enumerate() {
                let p = b.ins().load(ptr, flags, args, (8 * j) as i32);
                ptrs.insert(leaf, p);
            }
            let mut stores: HashMap<NodeId, Value> = HashMap::new();
            for (j, &m) in group.stores.iter().enumerate() {
                let at = 8 * (group.leaves.len() + j);
                stores.insert(m, b.ins().load(ptr, flags, args, at as i32));
            }
            let out = b.ins().load(
                ptr,
                flags,
                args,
                (8 * (group.leaves.len() + group.stores.len())) as i32,
            );
            // Splatted scalars, read once.
            let mut splats: HashMap<NodeId, Value> = HashMap::new();
            for &m in &group.members {
                if let Op::Broadcast(_) = g.node(m).op {
                    let o = g.operands(m)[0];
                    let s = match g.node(o).op {
                        Op::Const { value, .. } => b.ins().f32const(value as f32),
                        _ => b.ins().load(types::F32, flags, ptrs[&o], 0),
                    };
                    splats.insert(m, s);
                }
            }
            let mut refs: HashMap<&'static str, FuncRef> = HashMap::new();
            let module = &mut self.module;
            for (&name, &fid) in &self.helpers {
                refs.insert(name, module.declare_func_in_func(fid, b.func));
            }
            let body = Body {
                g,
                group,
                ptrs: &ptrs,
                stores: &stores,
                splats: &splats,
                refs: &refs,
                out,
                flags,
            };
            // Byte offsets: [start, vend) in vectors, [vend, end) one by one.
            let start = b.ins().ishl_imm_s(start, 2);
            let end = b.ins().ishl_imm_s(end, 2);
            let vend = if vector {
                let len = b.ins().isub(end, start);
                let whole = b.ins().band_imm_s(len, !15);
                let vend = b.ins().iadd(start, whole);
                body.emit_loop(&mut b, start, vend, 16, types::F32X4);
                vend
            } else {
                start
            };
            body.emit_loop(&mut b, vend, end, 4, types::F32);
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(module.target_config());
        }
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| err(&format!("compiling {name}"), e))?;
        self.fns.push(id);
        Ok(self.fns.len() - 1)
    }
}

impl Jit {
    pub(crate) fn new() -> Result<Jit, String> {
        let mut jb = JITBuilder::with_isa(isa(false)?, default_libcall_names());
        for &h in Helper::ALL {
            jb.symbol(h.symbol(), h.address());
        }
        let loops = Loops::with_module(JITModule::new(jb), "", Linkage::Local)?;
        Ok(Jit { loops: Some(loops) })
    }

    fn loops(&mut self) -> &mut Loops<JITModule> {
        self.loops.as_mut().expect("the module lives until drop")
    }

    /// Compiles the loop of `group`; returns its number.
    pub(crate) fn declare(&mut self, g: &Graph, group: &Group) -> Result<usize, String> {
        self.loops().declare(g, group)
    }

    /// Compiles the entry function making `calls` in order, finalises the module and
    /// returns every loop (in declaration order) and the entry.
    pub(crate) fn finish(&mut self, calls: &[Call]) -> Result<(Vec<LoopFn>, EntryFn), String> {
        let this = self.loops();
        let module = &mut this.module;
        let ptr = module.target_config().pointer_type();
        let mut sig = module.make_signature();
        sig.returns.push(AbiParam::new(types::I32));
        let entry_id = module
            .declare_function("entry", Linkage::Local, &sig)
            .map_err(|e| err("declare", e))?;
        module.clear_context(&mut this.ctx);
        this.ctx.func.signature = sig;
        this.ctx.func.name = UserFuncName::user(0, entry_id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut this.ctx.func, &mut this.fctx);
            let entry = b.create_block();
            b.switch_to_block(entry);
            let mut native_sig = module.make_signature();
            native_sig.params.push(AbiParam::new(ptr));
            native_sig.returns.push(AbiParam::new(types::I32));
            let native_sig = b.import_signature(native_sig);
            let mut loop_refs: HashMap<usize, FuncRef> = HashMap::new();
            for (i, call) in calls.iter().enumerate() {
                match *call {
                    Call::Loop { f, ptrs, n } => {
                        let fref = *loop_refs
                            .entry(f)
                            .or_insert_with(|| module.declare_func_in_func(this.fns[f], b.func));
                        let p = b.ins().iconst(ptr, ptrs as i64);
                        let zero = b.ins().iconst(types::I64, 0);
                        let n = b.ins().iconst(types::I64, n as i64);
                        b.ins().call(fref, &[p, zero, n]);
                    }
                    Call::Step { ctx } => {
                        let f: unsafe extern "C" fn(*const u8) -> i32 = dnnc_exec::run_step;
                        let callee = b.ins().iconst(ptr, f as usize as i64);
                        let arg = b.ins().iconst(ptr, ctx as i64);
                        let inst = b.ins().call_indirect(native_sig, callee, &[arg]);
                        let status = b.inst_results(inst)[0];
                        let (fail, next) = (b.create_block(), b.create_block());
                        b.ins().brif(status, fail, &[], next, &[]);
                        b.switch_to_block(fail);
                        let code = b.ins().iconst(types::I32, i as i64 + 1);
                        b.ins().return_(&[code]);
                        b.switch_to_block(next);
                    }
                }
            }
            let ok = b.ins().iconst(types::I32, 0);
            b.ins().return_(&[ok]);
            b.seal_all_blocks();
            b.finalize(module.target_config());
        }
        module
            .define_function(entry_id, &mut this.ctx)
            .map_err(|e| err("compiling the entry function", e))?;
        let fns = this.fns.clone();
        let module = &mut this.module;
        module
            .finalize_definitions()
            .map_err(|e| err("finalize", e))?;
        let loops = fns
            .iter()
            .map(|&id| {
                let p = module.get_finalized_function(id);
                // SAFETY: every loop was declared as `fn(ptr, i64, i64)`.
                unsafe { std::mem::transmute::<*const u8, LoopFn>(p) }
            })
            .collect();
        let p = module.get_finalized_function(entry_id);
        // SAFETY: declared as `fn() -> i32` above.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(p) };
        Ok((loops, entry))
    }
}

impl Drop for Jit {
    fn drop(&mut self) {
        if let Some(l) = self.loops.take() {
            // SAFETY: the loops are only called through `Compiled`, which owns this
            // `Jit` and is being dropped.
            unsafe { l.module.free_memory() };
        }
    }
}

/// What a loop body needs to compute a group.
struct Body<'a> {
    g: &'a Graph,
    group: &'a Group,
    ptrs: &'a HashMap<NodeId, Value>,
    /// Where the group's stored members go.
    stores: &'a HashMap<NodeId, Value>,
    splats: &'a HashMap<NodeId, Value>,
    refs: &'a HashMap<&'static str, FuncRef>,
    out: Value,
    flags: MemFlagsData,
}

impl Body<'_> {
    /// `for off in (start..end).step_by(step)` over byte offsets, elements of type `ty`.
    fn emit_loop(
        &self,
        b: &mut FunctionBuilder<'_>,
        start: Value,
        end: Value,
        step: i64,
        ty: Type,
    ) {
        let off = b.declare_var(types::I64);
        b.def_var(off, start);
        let (header, body, exit) = (b.create_block(), b.create_block(), b.create_block());
        b.ins().jump(header, &[]);
        b.switch_to_block(header);
        let cur = b.use_var(off);
        let more = b.ins().icmp(IntCC::SignedLessThan, cur, end);
        b.ins().brif(more, body, &[], exit, &[]);
        b.switch_to_block(body);
        let cur = b.use_var(off);
        let v = self.compute(b, cur, ty);
        let addr = b.ins().iadd(self.out, cur);
        b.ins().store(self.flags, v, addr, 0);
        let next = b.ins().iadd_imm_s(cur, step);
        b.def_var(off, next);
        b.ins().jump(header, &[]);
        b.switch_to_block(exit);
    }

    /// Leaf `o` at the element of `f32` byte offset `off`: its `f32` values as `ty`, or,
    /// for a boolean buffer (a select's condition, one byte per element), a lane mask
    /// (`i32x4`, all ones where true) or a flag.
    fn load_leaf(&self, b: &mut FunctionBuilder<'_>, o: NodeId, off: Value, ty: Type) -> Value {
        if self.g.ty(o).dtype != DType::Bool {
            let addr = b.ins().iadd(self.ptrs[&o], off);
            return b.ins().load(ty, self.flags, addr, 0);
        }
        let index = b.ins().ushr_imm_u(off, 2);
        let addr = b.ins().iadd(self.ptrs[&o], index);
        if ty == types::F32 {
            let byte = b.ins().uload8(types::I32, self.flags, addr, 0);
            return b.ins().icmp_imm_u(IntCC::NotEqual, byte, 0);
        }
        let little = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);
        let four = b.ins().load(types::I32, self.flags, addr, 0);
        let v = b.ins().scalar_to_vector(types::I32X4, four);
        let bytes = b.ins().bitcast(types::I8X16, little, v);
        let halves = b.ins().uwiden_low(bytes);
        let words = b.ins().uwiden_low(halves);
        let zero = b.ins().iconst(types::I32, 0);
        let zero = b.ins().splat(types::I32X4, zero);
        b.ins().icmp(IntCC::NotEqual, words, zero)
    }

    /// The root's value at byte offset `off`, as `ty` (`f32` or `f32x4`).
    fn compute(&self, b: &mut FunctionBuilder<'_>, off: Value, ty: Type) -> Value {
        // Every leaf is loaded before anything is stored: a stored member may be an
        // update written in place over a leaf (Adam's moment over the old moment). A
        // broadcast's one-element operand is read once, outside the loop, never at
        // `off`.
        let mut vals: HashMap<NodeId, Value> = HashMap::new();
        for &m in &self.group.members {
            if matches!(self.g.node(m).op, Op::Broadcast(_)) {
                continue;
            }
            for o in self.g.operands(m) {
                if !self.group.members.contains(&o) && !vals.contains_key(&o) {
                    vals.insert(o, self.load_leaf(b, o, off, ty));
                }
            }
        }
        let konst = |b: &mut FunctionBuilder<'_>, x: f32| {
            let s = b.ins().f32const(x);
            if ty == types::F32 {
                s
            } else {
                b.ins().splat(ty, s)
            }
        };
        for &m in &self.group.members {
            let ops = self.g.operands(m);
            if !matches!(self.g.node(m).op, Op::Broadcast(_)) {
                for o in &ops {
                    if !vals.contains_key(o) {
                        vals.insert(*o, self.load_leaf(b, *o, off, ty));
                    }
                }
            }
            let x = ops.first().and_then(|o| vals.get(o)).copied();
            let y = ops.get(1).and_then(|o| vals.get(o)).copied();
            let call = |b: &mut FunctionBuilder<'_>, name: &str, args: &[Value]| {
                let inst = b.ins().call(self.refs[name], args);
                b.inst_results(inst)[0]
            };
            let v = match &self.g.node(m).op {
                Op::Broadcast(_) => {
                    let s = self.splats[&m];
                    if ty == types::F32 {
                        s
                    } else {
                        b.ins().splat(ty, s)
                    }
                }
                Op::Unary(u) => {
                    let x = x.expect("unary operand");
                    match loop_ops::unary(*u) {
                        UnaryCode::Neg => b.ins().fneg(x),
                        UnaryCode::Abs => b.ins().fabs(x),
                        UnaryCode::Sqrt => b.ins().sqrt(x),
                        UnaryCode::Rsqrt => {
                            let one = konst(b, 1.0);
                            let r = b.ins().sqrt(x);
                            b.ins().fdiv(one, r)
                        }
                        UnaryCode::Floor => b.ins().floor(x),
                        UnaryCode::Ceil => b.ins().ceil(x),
                        UnaryCode::Math(f) => math(b, f.program(), x, ty),
                        UnaryCode::Call(h) => call(b, h.symbol(), &[x]),
                        UnaryCode::NotInLoops => unreachable!("`{u:?}` is never fused"),
                    }
                }
                Op::Select => {
                    let c = vals[&ops[0]];
                    let (x, y) = (vals[&ops[1]], vals[&ops[2]]);
                    if ty == types::F32 {
                        b.ins().select(c, x, y)
                    } else {
                        // Lanes of the mask are all ones or all zeros.
                        let little = MemFlagsData::new()
                            .with_endianness(cranelift_codegen::ir::Endianness::Little);
                        let c = b.ins().bitcast(types::F32X4, little, c);
                        b.ins().bitselect(c, x, y)
                    }
                }
                Op::Binary(op) => {
                    let (x, y) = (x.expect("lhs"), y.expect("rhs"));
                    match loop_ops::binary(*op) {
                        BinaryCode::Add => b.ins().fadd(x, y),
                        BinaryCode::Sub => b.ins().fsub(x, y),
                        BinaryCode::Mul => b.ins().fmul(x, y),
                        BinaryCode::Div => b.ins().fdiv(x, y),
                        BinaryCode::Max => b.ins().fmax(x, y),
                        BinaryCode::Min => b.ins().fmin(x, y),
                        BinaryCode::Rem => {
                            let q = b.ins().fdiv(x, y);
                            let f = b.ins().floor(q);
                            let p = b.ins().fmul(y, f);
                            b.ins().fsub(x, p)
                        }
                        BinaryCode::Call(h) => call(b, h.symbol(), &[x, y]),
                        // A lane mask (`i32x4`) or a flag (`i8`), read by a select.
                        BinaryCode::Compare(c) => {
                            let cc = match c {
                                Compare::Lt => FloatCC::LessThan,
                                Compare::Le => FloatCC::LessThanOrEqual,
                                Compare::Gt => FloatCC::GreaterThan,
                                Compare::Ge => FloatCC::GreaterThanOrEqual,
                                Compare::Eq => FloatCC::Equal,
                                Compare::Ne => FloatCC::NotEqual,
                            };
                            b.ins().fcmp(cc, x, y)
                        }
                        BinaryCode::NotInLoops => unreachable!("`{op:?}` is never fused"),
                    }
                }
                other => unreachable!("`{other}` is not elementwise"),
            };
            if let Some(&p) = self.stores.get(&m) {
                let addr = b.ins().iadd(p, off);
                b.ins().store(self.flags, v, addr, 0);
            }
            vals.insert(m, v);
        }
        vals[self.group.members.last().expect("groups are not empty")]
    }
}

/// The `dnnc_ir::vmath` program `p` on `x` (`f32` or `f32x4`), op by op: the same IEEE
/// operations in the same order as `vmath::eval`, so the results are bit-identical.
fn math(b: &mut FunctionBuilder<'_>, p: &Program, x: Value, ty: Type) -> Value {
    let vector = ty != types::F32;
    let ity = if vector { types::I32X4 } else { types::I32 };
    let little = MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little);
    let int = |b: &mut FunctionBuilder<'_>, v: i64| {
        let c = b.ins().iconst(types::I32, v);
        if vector {
            b.ins().splat(ity, c)
        } else {
            c
        }
    };
    let mut v: Vec<Value> = Vec::with_capacity(p.ops.len());
    for op in &p.ops {
        let r = match *op {
            MathOp::Input => x,
            MathOp::Const(c) => {
                let s = b.ins().f32const(c);
                if vector {
                    b.ins().splat(ty, s)
                } else {
                    s
                }
            }
            MathOp::Add(a, c) => b.ins().fadd(v[a], v[c]),
            MathOp::Sub(a, c) => b.ins().fsub(v[a], v[c]),
            MathOp::Mul(a, c) => b.ins().fmul(v[a], v[c]),
            MathOp::Div(a, c) => b.ins().fdiv(v[a], v[c]),
            MathOp::Neg(a) => b.ins().fneg(v[a]),
            MathOp::Abs(a) => b.ins().fabs(v[a]),
            MathOp::Floor(a) => b.ins().floor(v[a]),
            MathOp::Pow2(a) => {
                let magic = b.ins().f32const(POW2_MAGIC);
                let magic = if vector {
                    b.ins().splat(ty, magic)
                } else {
                    magic
                };
                let biased = b.ins().fadd(v[a], magic);
                let i = b.ins().bitcast(ity, little, biased);
                let i = b.ins().ishl_imm_u(i, 23);
                b.ins().bitcast(ty, little, i)
            }
            MathOp::Exponent(a) => {
                let bits = b.ins().bitcast(ity, little, v[a]);
                let e = b.ins().ushr_imm_u(bits, 23);
                let mask = int(b, 0xff);
                let e = b.ins().band(e, mask);
                let bias = int(b, 126);
                let e = b.ins().isub(e, bias);
                b.ins().fcvt_from_sint(ty, e)
            }
            MathOp::Mantissa(a) => {
                let bits = b.ins().bitcast(ity, little, v[a]);
                let keep = int(b, 0x807f_ffff_u32 as i32 as i64);
                let m = b.ins().band(bits, keep);
                let half = int(b, 0x3f00_0000);
                let m = b.ins().bor(m, half);
                b.ins().bitcast(ty, little, m)
            }
            MathOp::Cmp(c, a, d) => {
                let cc = match c {
                    Cmp::Lt => FloatCC::LessThan,
                    Cmp::Eq => FloatCC::Equal,
                    Cmp::Ne => FloatCC::NotEqual,
                };
                b.ins().fcmp(cc, v[a], v[d])
            }
            MathOp::Select(m, a, c) => {
                if vector {
                    let m = b.ins().bitcast(ty, little, v[m]);
                    b.ins().bitselect(m, v[a], v[c])
                } else {
                    b.ins().select(v[m], v[a], v[c])
                }
            }
        };
        v.push(r);
    }
    *v.last().expect("a program computes something")
}
