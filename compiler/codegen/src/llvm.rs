//! LLVM code generation (inkwell, LLVM 14): the same fused loops as [`crate::jit`],
//! compiled for the host's CPU and features with 512-bit vectors.
//!
//! Each [`Group`] becomes one function `loopN(ptrs, start, end)` with the signature of
//! a [`LoopFn`]: `ptrs` points to one buffer pointer per leaf, then one per stored
//! member, then the output buffer; `start..end` are element indices. The body runs over
//! `<16 x float>` vectors as far as whole vectors fit, then one element at a time.
//! Every op has a vector form: those that must round exactly like Rust's `f32` methods
//! (exp, log, sin, cos, tanh, erf, pow) call the scalar helpers of
//! [`dnnc_exec::helpers`] once per lane, everything else is an LLVM instruction or
//! intrinsic with the interpreter's semantics (no fast-math flags, so nothing is
//! reassociated or contracted into a fused multiply-add).
//!
//! Functions carry the host's `target-cpu` and `target-features` (LLVM assumes SSE2
//! otherwise). The module gets the `-O1` IR pipeline (`-O3` compiled the MNIST
//! example's graphs five times slower, 320 ms against 100, and ran no faster: the loops
//! are emitted vectorised already) and MCJIT's `-O3` code generation. Steps are
//! sequenced from Rust ([`dnnc_exec::Instance::run`]): no entry function.

use std::collections::HashMap;

use dnnc_exec::LoopFn;
use dnnc_ir::vmath::{Cmp, MathOp, Program, POW2_MAGIC};
use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp};
use inkwell::attributes::AttributeLoc;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::execution_engine::ExecutionEngine;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, RelocMode, Target, TargetMachine};
use inkwell::types::{BasicTypeEnum, FloatType};
use inkwell::values::{
    BasicValue, BasicValueEnum, CallableValue, FloatValue, FunctionValue, IntValue, PointerValue,
};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate, OptimizationLevel};

use crate::fuse::Group;
use crate::loop_ops::{self, BinaryCode, Compare, UnaryCode};
use dnnc_exec::helpers::Helper;

/// Lanes of a vector: 16 `f32` = 512 bits.
const LANES: u32 = 16;

/// The machine code of a graph's loops. The engine borrows the context it was made
/// in, so it is declared (and dropped) first.
pub(crate) struct Engine {
    _engine: ExecutionEngine<'static>,
    _ctx: Box<Context>,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("llvm: {what}: {e}")
}

/// Compiles every group's loop; returns the engine owning the code and the loops in
/// order.
pub(crate) fn compile(g: &Graph, groups: &[Group]) -> Result<(Engine, Vec<LoopFn>), String> {
    let ctx = Box::new(Context::create());
    // SAFETY: the context is boxed (it does not move) and `Engine` drops everything
    // made from it (the engine, which owns the module) before the box.
    let ctx_ref: &'static Context = unsafe { &*(ctx.as_ref() as *const Context) };
    let cg = Codegen::new(ctx_ref)?;
    for (i, group) in groups.iter().enumerate() {
        cg.add_loop(g, group, &format!("loop{i}"))?;
    }
    cg.optimise()?;
    let engine = cg
        .module
        .create_jit_execution_engine(OptimizationLevel::Aggressive)
        .map_err(|e| err("execution engine", e.to_string()))?;
    let loops = (0..groups.len())
        .map(|i| {
            let addr = engine
                .get_function_address(&format!("loop{i}"))
                .map_err(|e| err("lookup", e))?;
            // SAFETY: every loop is defined as `void (float**, i64, i64)`.
            Ok(unsafe { std::mem::transmute::<usize, LoopFn>(addr) })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((
        Engine {
            _engine: engine,
            _ctx: ctx,
        },
        loops,
    ))
}

/// The LLVM IR of every group's loop, before optimisation.
pub(crate) fn ir_text(g: &Graph, groups: &[Group]) -> Result<String, String> {
    let ctx = Context::create();
    let cg = Codegen::new(&ctx)?;
    for (i, group) in groups.iter().enumerate() {
        cg.add_loop(g, group, &format!("loop{i}"))?;
    }
    Ok(cg.module.print_to_string().to_string())
}

/// An object file (position-independent, for the host's CPU) defining loop `names[i]`
/// for each `(graph, group)` of `loops`, with external linkage; helpers are called by
/// their symbols (`dnnc_exp`, …), which the runtime archive defines.
pub(crate) fn object(loops: &[(&Graph, &Group)], names: &[String]) -> Result<Vec<u8>, String> {
    let ctx = Context::create();
    let cg = Codegen::with(&ctx, true)?;
    for ((g, group), name) in loops.iter().zip(names) {
        cg.add_loop(g, group, name)?;
    }
    cg.optimise()?;
    let buf = cg
        .machine
        .write_to_memory_buffer(&cg.module, inkwell::targets::FileType::Object)
        .map_err(|e| err("object file", e))?;
    Ok(buf.as_slice().to_vec())
}

/// A module being filled with loops.
struct Codegen<'ctx> {
    ctx: &'ctx Context,
    module: Module<'ctx>,
    b: Builder<'ctx>,
    machine: TargetMachine,
    cpu: String,
    features: String,
    /// For an object file: helpers are called by symbol (`dnnc_exp`, … from the
    /// runtime archive), not by their address in this process.
    aot: bool,
}

/// The host's target machine, CPU name and features (position-independent code for
/// object files).
fn host(pic: bool) -> Result<(TargetMachine, String, String), String> {
    Target::initialize_native(&Default::default()).map_err(|e| err("init", e))?;
    let triple = TargetMachine::get_default_triple();
    let cpu = TargetMachine::get_host_cpu_name().to_string();
    let features = TargetMachine::get_host_cpu_features().to_string();
    let machine = Target::from_triple(&triple)
        .map_err(|e| err("target", e))?
        .create_target_machine(
            &triple,
            &cpu,
            &features,
            OptimizationLevel::Aggressive,
            if pic {
                RelocMode::PIC
            } else {
                RelocMode::Default
            },
            if pic {
                CodeModel::Default
            } else {
                CodeModel::JITDefault
            },
        )
        .ok_or_else(|| err("target machine", "unsupported host"))?;
    Ok((machine, cpu, features))
}

impl<'ctx> Codegen<'ctx> {
    fn new(ctx: &'ctx Context) -> Result<Codegen<'ctx>, String> {
        Codegen::with(ctx, false)
    }

    fn with(ctx: &'ctx Context, aot: bool) -> Result<Codegen<'ctx>, String> {
        let (machine, cpu, features) = host(aot)?;
        let module = ctx.create_module("dnnc");
        module.set_triple(&machine.get_triple());
        module.set_data_layout(&machine.get_target_data().get_data_layout());
        Ok(Codegen {
            ctx,
            module,
            b: ctx.create_builder(),
            machine,
            cpu,
            features,
            aot,
        })
    }

    fn f32(&self) -> FloatType<'ctx> {
        self.ctx.f32_type()
    }

    fn i64(&self, v: u64) -> IntValue<'ctx> {
        self.ctx.i64_type().const_int(v, false)
    }

    /// Runs the `-O1` pipeline with the host's cost model.
    fn optimise(&self) -> Result<(), String> {
        self.module.verify().map_err(|e| err("verify", e))?;
        self.module
            .run_passes("default<O1>", &self.machine, PassBuilderOptions::create())
            .map_err(|e| err("passes", e))
    }

    /// Declares loop function `name` with the host's CPU and features.
    fn declare(&self, name: &str) -> FunctionValue<'ctx> {
        let ptr = self.f32().ptr_type(AddressSpace::default());
        let ptrs = ptr.ptr_type(AddressSpace::default());
        let i64t = self.ctx.i64_type();
        let ty = self
            .ctx
            .void_type()
            .fn_type(&[ptrs.into(), i64t.into(), i64t.into()], false);
        let f = self.module.add_function(name, ty, None);
        for (k, v) in [
            ("target-cpu", self.cpu.as_str()),
            ("target-features", self.features.as_str()),
            ("prefer-vector-width", "512"),
            ("min-legal-vector-width", "512"),
        ] {
            let a = self.ctx.create_string_attribute(k, v);
            f.add_attribute(AttributeLoc::Function, a);
        }
        let nounwind = inkwell::attributes::Attribute::get_named_enum_kind_id("nounwind");
        f.add_attribute(
            AttributeLoc::Function,
            self.ctx.create_enum_attribute(nounwind, 0),
        );
        f
    }

    /// Defines the loop of `group` as function `name`.
    fn add_loop(&self, g: &Graph, group: &Group, name: &str) -> Result<(), String> {
        let f = self.declare(name);
        let entry = self.ctx.append_basic_block(f, "entry");
        self.b.position_at_end(entry);
        let args = f.get_nth_param(0).expect("ptrs").into_pointer_value();
        let start = f.get_nth_param(1).expect("start").into_int_value();
        let end = f.get_nth_param(2).expect("end").into_int_value();
        let mut bufs = Vec::new();
        for j in 0..group.leaves.len() + group.stores.len() + 1 {
            bufs.push(self.load_ptr(args, j)?);
        }
        let ptrs: HashMap<NodeId, PointerValue<'ctx>> = group
            .leaves
            .iter()
            .copied()
            .zip(bufs.iter().copied())
            .collect();
        let stores: HashMap<NodeId, PointerValue<'ctx>> = group
            .stores
            .iter()
            .copied()
            .zip(bufs[group.leaves.len()..].iter().copied())
            .collect();
        let splats = self.splats(g, group, &ptrs)?;
        let body = Body {
            cg: self,
            g,
            group,
            ptrs,
            stores,
            splats,
            out: *bufs.last().expect("the output"),
        };
        let len = self.b.build_int_sub(end, start, "len").map_err(ber)?;
        let whole = self
            .b
            .build_and(len, self.i64(!(u64::from(LANES) - 1)), "whole")
            .map_err(ber)?;
        let vend = self.b.build_int_add(start, whole, "vend").map_err(ber)?;
        body.emit_loop(f, start, vend, LANES)?;
        body.emit_loop(f, vend, end, 1)?;
        self.b.build_return(None).map_err(ber)?;
        Ok(())
    }

    /// Pointer `j` of the argument array.
    fn load_ptr(&self, args: PointerValue<'ctx>, j: usize) -> Result<PointerValue<'ctx>, String> {
        // SAFETY: the caller passes one pointer per leaf, stored member and output.
        let at = unsafe {
            self.b
                .build_in_bounds_gep(args, &[self.i64(j as u64)], "pp")
        }
        .map_err(ber)?;
        Ok(self
            .b
            .build_load(at, "p")
            .map_err(ber)?
            .into_pointer_value())
    }

    /// Each broadcast member's scalar (read once, here) as a scalar and as a vector.
    fn splats(
        &self,
        g: &Graph,
        group: &Group,
        ptrs: &HashMap<NodeId, PointerValue<'ctx>>,
    ) -> Result<HashMap<NodeId, [BasicValueEnum<'ctx>; 2]>, String> {
        let mut out = HashMap::new();
        for &m in &group.members {
            if !matches!(g.node(m).op, Op::Broadcast(_)) {
                continue;
            }
            let o = g.operands(m)[0];
            let s: FloatValue<'ctx> = match g.node(o).op {
                Op::Const { value, .. } => self.f32().const_float(f64::from(value as f32)),
                _ => self
                    .b
                    .build_load(ptrs[&o], "s")
                    .map_err(ber)?
                    .into_float_value(),
            };
            out.insert(m, [s.into(), self.splat(s, LANES)?]);
        }
        Ok(out)
    }

    /// `s` in every lane of a vector of `width` (`s` itself for width 1).
    fn splat(&self, s: FloatValue<'ctx>, width: u32) -> Result<BasicValueEnum<'ctx>, String> {
        if width == 1 {
            return Ok(s.into());
        }
        let vt = self.f32().vec_type(width);
        let zero = self.ctx.i32_type().const_zero();
        let one = self
            .b
            .build_insert_element(vt.get_undef(), s, zero, "")
            .map_err(ber)?;
        let mask = self.ctx.i32_type().vec_type(width).const_zero();
        Ok(self
            .b
            .build_shuffle_vector(one, vt.get_undef(), mask, "splat")
            .map_err(ber)?
            .into())
    }

    /// The constant `x` in every lane.
    fn konst(&self, x: f32, width: u32) -> Result<BasicValueEnum<'ctx>, String> {
        self.splat(self.f32().const_float(f64::from(x)), width)
    }

    /// A call of the overloaded intrinsic `name` on values of `args[0]`'s type.
    fn intrinsic(
        &self,
        name: &str,
        args: &[BasicValueEnum<'ctx>],
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let ty: BasicTypeEnum<'ctx> = args[0].get_type();
        let f = Intrinsic::find(name)
            .and_then(|i| i.get_declaration(&self.module, &[ty]))
            .ok_or_else(|| err("intrinsic", name))?;
        let args: Vec<_> = args.iter().map(|&a| a.into()).collect();
        let call = self.b.build_call(f, &args, "").map_err(ber)?;
        call.try_as_basic_value()
            .basic()
            .ok_or_else(|| err("intrinsic", "no value"))
    }

    /// A call of the Rust helper at `addr` (`f32` arguments and result) on each lane.
    fn helper(
        &self,
        h: Helper,
        args: &[BasicValueEnum<'ctx>],
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let addr = h.address() as usize;
        let f32t = self.f32();
        let params: Vec<_> = args.iter().map(|_| f32t.into()).collect();
        let fty = f32t.fn_type(&params, false);
        let callee = if self.aot {
            let name = h.symbol();
            let f = self
                .module
                .get_function(name)
                .unwrap_or_else(|| self.module.add_function(name, fty, None));
            CallableValue::from(f)
        } else {
            let fptr = self
                .i64(addr as u64)
                .const_to_pointer(fty.ptr_type(AddressSpace::default()));
            CallableValue::try_from(fptr).map_err(|_| err("helper", "not callable"))?
        };
        let call = |xs: Vec<FloatValue<'ctx>>| -> Result<FloatValue<'ctx>, String> {
            let xs: Vec<_> = xs.into_iter().map(Into::into).collect();
            let c = self.b.build_call(callee, &xs, "h").map_err(ber)?;
            Ok(c.try_as_basic_value()
                .basic()
                .expect("helpers return f32")
                .into_float_value())
        };
        match args[0] {
            BasicValueEnum::FloatValue(_) => {
                Ok(call(args.iter().map(|a| a.into_float_value()).collect())?.into())
            }
            BasicValueEnum::VectorValue(v) => {
                let mut acc = v.get_type().get_undef();
                for lane in 0..u64::from(v.get_type().get_size()) {
                    let k = self.ctx.i32_type().const_int(lane, false);
                    let xs = args
                        .iter()
                        .map(|a| {
                            self.b
                                .build_extract_element(a.into_vector_value(), k, "")
                                .map(BasicValueEnum::into_float_value)
                                .map_err(ber)
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let r = call(xs)?;
                    acc = self.b.build_insert_element(acc, r, k, "").map_err(ber)?;
                }
                Ok(acc.into())
            }
            _ => Err(err("helper", "not a float")),
        }
    }
}

fn ber(e: inkwell::builder::BuilderError) -> String {
    err("builder", e)
}

/// `$b.$m(x, y, "")` on two floats or two float vectors.
macro_rules! float2 {
    ($b:expr, $m:ident, $x:expr, $y:expr $(, $extra:expr)?) => {
        match ($x, $y) {
            (BasicValueEnum::FloatValue(x), BasicValueEnum::FloatValue(y)) => {
                $b.$m($($extra,)? x, y, "").map(BasicValueEnum::from).map_err(ber)
            }
            (BasicValueEnum::VectorValue(x), BasicValueEnum::VectorValue(y)) => {
                $b.$m($($extra,)? x, y, "").map(BasicValueEnum::from).map_err(ber)
            }
            _ => Err(err("operands", "mismatched types")),
        }
    };
}

/// An integer operation on two scalars or two vectors (`$extra` after them).
macro_rules! int2 {
    ($b:expr, $m:ident, $x:expr, $y:expr $(, $extra:expr)?) => {
        match ($x, $y) {
            (BasicValueEnum::IntValue(x), BasicValueEnum::IntValue(y)) => {
                $b.$m(x, y, $($extra,)? "").map(BasicValueEnum::from).map_err(ber)
            }
            (BasicValueEnum::VectorValue(x), BasicValueEnum::VectorValue(y)) => {
                $b.$m(x, y, $($extra,)? "").map(BasicValueEnum::from).map_err(ber)
            }
            _ => Err(err("operands", "mismatched types")),
        }
    };
}

/// What a loop body needs to compute a group.
struct Body<'a, 'ctx> {
    cg: &'a Codegen<'ctx>,
    g: &'a Graph,
    group: &'a Group,
    ptrs: HashMap<NodeId, PointerValue<'ctx>>,
    /// Where the group's stored members go.
    stores: HashMap<NodeId, PointerValue<'ctx>>,
    /// Scalar and vector forms of each splat.
    splats: HashMap<NodeId, [BasicValueEnum<'ctx>; 2]>,
    out: PointerValue<'ctx>,
}

impl<'ctx> Body<'_, 'ctx> {
    /// `for i in (from..to).step_by(width)`, computing `width` elements per iteration.
    fn emit_loop(
        &self,
        f: FunctionValue<'ctx>,
        from: IntValue<'ctx>,
        to: IntValue<'ctx>,
        width: u32,
    ) -> Result<(), String> {
        let (ctx, b) = (self.cg.ctx, &self.cg.b);
        let pre = b.get_insert_block().expect("positioned");
        let head = ctx.append_basic_block(f, "head");
        let body = ctx.append_basic_block(f, "body");
        let exit = ctx.append_basic_block(f, "exit");
        b.build_unconditional_branch(head).map_err(ber)?;
        b.position_at_end(head);
        let i = b.build_phi(ctx.i64_type(), "i").map_err(ber)?;
        let iv = i.as_basic_value().into_int_value();
        let more = b
            .build_int_compare(IntPredicate::SLT, iv, to, "more")
            .map_err(ber)?;
        b.build_conditional_branch(more, body, exit).map_err(ber)?;
        b.position_at_end(body);
        let v = self.compute(iv, width)?;
        self.store(self.out, iv, v)?;
        let next = b
            .build_int_add(iv, self.cg.i64(u64::from(width)), "next")
            .map_err(ber)?;
        let last = b.get_insert_block().expect("positioned");
        b.build_unconditional_branch(head).map_err(ber)?;
        i.add_incoming(&[(&from, pre), (&next, last)]);
        b.position_at_end(exit);
        Ok(())
    }

    /// The address of element `i` of `p`, typed for `width` elements.
    fn addr(
        &self,
        p: PointerValue<'ctx>,
        i: IntValue<'ctx>,
        width: u32,
    ) -> Result<PointerValue<'ctx>, String> {
        let b = &self.cg.b;
        // SAFETY: `i` is within the buffer's `start..end` range.
        let at = unsafe { b.build_in_bounds_gep(p, &[i], "at") }.map_err(ber)?;
        if width == 1 {
            return Ok(at);
        }
        let vp = self
            .cg
            .f32()
            .vec_type(width)
            .ptr_type(AddressSpace::default());
        b.build_pointer_cast(at, vp, "v").map_err(ber)
    }

    /// Elements `i..i + width` of `p` (aligned only to `f32`).
    fn load(
        &self,
        p: PointerValue<'ctx>,
        i: IntValue<'ctx>,
        width: u32,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let v = self
            .cg
            .b
            .build_load(self.addr(p, i, width)?, "x")
            .map_err(ber)?;
        v.as_instruction_value()
            .expect("a load")
            .set_alignment(4)
            .map_err(|e| err("align", e))?;
        Ok(v)
    }

    /// Leaf `o` at elements `i..i + width`: its `f32` values, or, for a boolean buffer
    /// (a select's condition, one byte per element), a mask (`i1` lanes).
    fn load_leaf(
        &self,
        o: NodeId,
        i: IntValue<'ctx>,
        width: u32,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        if self.g.ty(o).dtype != DType::Bool {
            return self.load(self.ptrs[&o], i, width);
        }
        let (ctx, b) = (self.cg.ctx, &self.cg.b);
        let bytes = b
            .build_pointer_cast(
                self.ptrs[&o],
                ctx.i8_type().ptr_type(AddressSpace::default()),
                "b",
            )
            .map_err(ber)?;
        // SAFETY: `i` is within the buffer's `start..end` range.
        let at = unsafe { b.build_in_bounds_gep(bytes, &[i], "at") }.map_err(ber)?;
        if width == 1 {
            let v = b.build_load(at, "c").map_err(ber)?.into_int_value();
            let zero = ctx.i8_type().const_zero();
            return Ok(b
                .build_int_compare(IntPredicate::NE, v, zero, "m")
                .map_err(ber)?
                .into());
        }
        let vt = ctx.i8_type().vec_type(width);
        let vp = b
            .build_pointer_cast(at, vt.ptr_type(AddressSpace::default()), "v")
            .map_err(ber)?;
        let v = b.build_load(vp, "c").map_err(ber)?;
        v.as_instruction_value()
            .expect("a load")
            .set_alignment(1)
            .map_err(|e| err("align", e))?;
        Ok(b.build_int_compare(
            IntPredicate::NE,
            v.into_vector_value(),
            vt.const_zero(),
            "m",
        )
        .map_err(ber)?
        .into())
    }

    fn store(
        &self,
        p: PointerValue<'ctx>,
        i: IntValue<'ctx>,
        v: BasicValueEnum<'ctx>,
    ) -> Result<(), String> {
        let width = match v {
            BasicValueEnum::VectorValue(x) => x.get_type().get_size(),
            _ => 1,
        };
        let st = self
            .cg
            .b
            .build_store(self.addr(p, i, width)?, v)
            .map_err(ber)?;
        st.set_alignment(4).map_err(|e| err("align", e))
    }

    /// The root's value at elements `i..i + width`, storing stored members on the way.
    fn compute(&self, i: IntValue<'ctx>, width: u32) -> Result<BasicValueEnum<'ctx>, String> {
        // Every leaf is loaded before anything is stored: a stored member may be an
        // update written in place over a leaf.
        let mut vals: HashMap<NodeId, BasicValueEnum<'ctx>> = HashMap::new();
        for &m in &self.group.members {
            if matches!(self.g.node(m).op, Op::Broadcast(_)) {
                continue;
            }
            for o in self.g.operands(m) {
                if !self.group.members.contains(&o) && !vals.contains_key(&o) {
                    vals.insert(o, self.load_leaf(o, i, width)?);
                }
            }
        }
        for &m in &self.group.members {
            let v = self.member(m, &vals, width)?;
            if let Some(&p) = self.stores.get(&m) {
                self.store(p, i, v)?;
            }
            vals.insert(m, v);
        }
        Ok(vals[self.group.members.last().expect("groups are not empty")])
    }

    /// The value of member `m` from its operands' values.
    fn member(
        &self,
        m: NodeId,
        vals: &HashMap<NodeId, BasicValueEnum<'ctx>>,
        width: u32,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let ops = self.g.operands(m);
        let arg = |k: usize| vals[&ops[k]];
        match &self.g.node(m).op {
            Op::Broadcast(_) => Ok(self.splats[&m][usize::from(width > 1)]),
            Op::Unary(u) => self.unary(*u, arg(0), width),
            Op::Select => self.select(arg(0), arg(1), arg(2)),
            Op::Binary(op) => self.binary(*op, arg(0), arg(1)),
            other => Err(err("loop", format!("`{other}` is not elementwise"))),
        }
    }

    fn unary(
        &self,
        u: UnaryOp,
        x: BasicValueEnum<'ctx>,
        width: u32,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let (cg, b) = (self.cg, &self.cg.b);
        match loop_ops::unary(u) {
            UnaryCode::Neg => match x {
                BasicValueEnum::FloatValue(x) => b.build_float_neg(x, "").map(Into::into),
                BasicValueEnum::VectorValue(x) => b.build_float_neg(x, "").map(Into::into),
                _ => return Err(err("neg", "not a float")),
            }
            .map_err(ber),
            UnaryCode::Abs => cg.intrinsic("llvm.fabs", &[x]),
            UnaryCode::Sqrt => cg.intrinsic("llvm.sqrt", &[x]),
            UnaryCode::Rsqrt => {
                let r = cg.intrinsic("llvm.sqrt", &[x])?;
                float2!(b, build_float_div, cg.konst(1.0, width)?, r)
            }
            UnaryCode::Floor => cg.intrinsic("llvm.floor", &[x]),
            UnaryCode::Ceil => cg.intrinsic("llvm.ceil", &[x]),
            UnaryCode::Math(f) => self.math(f.program(), x, width),
            // The same Rust functions as Cranelift's loops: rounding stays identical.
            UnaryCode::Call(h) => cg.helper(h, &[x]),
            UnaryCode::NotInLoops => Err(err("loop", format!("no code for `{}`", u.name()))),
        }
    }

    /// IEEE 754-2019 `maximum` (`max`) or `minimum` of `x` and `y`: the larger (smaller)
    /// one; of equal values the bitwise and (or) — `+0` (`-0`) of `±0`; NaN if either is.
    fn extreme(
        &self,
        x: BasicValueEnum<'ctx>,
        y: BasicValueEnum<'ctx>,
        max: bool,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let b = &self.cg.b;
        let (above, below) = if max {
            (Compare::Gt, Compare::Lt)
        } else {
            (Compare::Lt, Compare::Gt)
        };
        let int_ty: BasicTypeEnum<'ctx> = match x {
            BasicValueEnum::VectorValue(v) => self
                .cg
                .ctx
                .i32_type()
                .vec_type(v.get_type().get_size())
                .into(),
            _ => self.cg.ctx.i32_type().into(),
        };
        let bits = |v: BasicValueEnum<'ctx>| b.build_bit_cast(v, int_ty, "").map_err(ber);
        let (xb, yb) = (bits(x)?, bits(y)?);
        let both = match (xb, yb) {
            (BasicValueEnum::IntValue(a), BasicValueEnum::IntValue(c)) => if max {
                b.build_and(a, c, "")
            } else {
                b.build_or(a, c, "")
            }
            .map(BasicValueEnum::from),
            (BasicValueEnum::VectorValue(a), BasicValueEnum::VectorValue(c)) => if max {
                b.build_and(a, c, "")
            } else {
                b.build_or(a, c, "")
            }
            .map(BasicValueEnum::from),
            _ => return Err(err("extreme", "mismatched types")),
        }
        .map_err(ber)?;
        let equal = b.build_bit_cast(both, x.get_type(), "").map_err(ber)?;
        let second = self.select(self.compare(below, x, y)?, y, equal)?;
        let r = self.select(self.compare(above, x, y)?, x, second)?;
        let width = match x {
            BasicValueEnum::VectorValue(v) => v.get_type().get_size(),
            _ => 1,
        };
        self.nan_if_unordered(x, y, r, width)
    }

    /// The `dnnc_ir::vmath` program `p` on `x`, op by op: the same IEEE operations in
    /// the same order as `vmath::eval` (no fused multiply-add), so the results are
    /// bit-identical to the interpreter's and Cranelift's.
    fn math(
        &self,
        p: &Program,
        x: BasicValueEnum<'ctx>,
        width: u32,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let (cg, b) = (self.cg, &self.cg.b);
        let i32t = cg.ctx.i32_type();
        let ity: BasicTypeEnum<'ctx> = if width == 1 {
            i32t.into()
        } else {
            i32t.vec_type(width).into()
        };
        let fty = x.get_type();
        let int = |v: u32| -> Result<BasicValueEnum<'ctx>, String> {
            let c = i32t.const_int(u64::from(v), false);
            if width == 1 {
                return Ok(c.into());
            }
            let vt = i32t.vec_type(width);
            let one = b
                .build_insert_element(vt.get_undef(), c, i32t.const_zero(), "")
                .map_err(ber)?;
            let mask = i32t.vec_type(width).const_zero();
            Ok(b.build_shuffle_vector(one, vt.get_undef(), mask, "")
                .map_err(ber)?
                .into())
        };
        let bits = |v: BasicValueEnum<'ctx>| b.build_bit_cast(v, ity, "").map_err(ber);
        let float = |v: BasicValueEnum<'ctx>| b.build_bit_cast(v, fty, "").map_err(ber);
        let mut v: Vec<BasicValueEnum<'ctx>> = Vec::with_capacity(p.ops.len());
        for op in &p.ops {
            let r = match *op {
                MathOp::Input => x,
                MathOp::Const(c) => cg.konst(c, width)?,
                MathOp::Add(a, c) => float2!(b, build_float_add, v[a], v[c])?,
                MathOp::Sub(a, c) => float2!(b, build_float_sub, v[a], v[c])?,
                MathOp::Mul(a, c) => float2!(b, build_float_mul, v[a], v[c])?,
                MathOp::Div(a, c) => float2!(b, build_float_div, v[a], v[c])?,
                MathOp::Neg(a) => match v[a] {
                    BasicValueEnum::FloatValue(x) => b.build_float_neg(x, "").map(Into::into),
                    BasicValueEnum::VectorValue(x) => b.build_float_neg(x, "").map(Into::into),
                    _ => return Err(err("neg", "not a float")),
                }
                .map_err(ber)?,
                MathOp::Abs(a) => cg.intrinsic("llvm.fabs", &[v[a]])?,
                MathOp::Floor(a) => cg.intrinsic("llvm.floor", &[v[a]])?,
                MathOp::Pow2(a) => {
                    let biased = float2!(b, build_float_add, v[a], cg.konst(POW2_MAGIC, width)?)?;
                    float(int2!(b, build_left_shift, bits(biased)?, int(23)?)?)?
                }
                MathOp::Exponent(a) => {
                    let e = int2!(b, build_right_shift, bits(v[a])?, int(23)?, false)?;
                    let e = int2!(b, build_and, e, int(0xff)?)?;
                    let e = int2!(b, build_int_sub, e, int(126)?)?;
                    match e {
                        BasicValueEnum::IntValue(e) => {
                            b.build_signed_int_to_float(e, cg.f32(), "").map(Into::into)
                        }
                        BasicValueEnum::VectorValue(e) => b
                            .build_signed_int_to_float(e, cg.f32().vec_type(width), "")
                            .map(Into::into),
                        _ => return Err(err("exponent", "not an integer")),
                    }
                    .map_err(ber)?
                }
                MathOp::Mantissa(a) => {
                    let m = int2!(b, build_and, bits(v[a])?, int(0x807f_ffff)?)?;
                    float(int2!(b, build_or, m, int(0x3f00_0000)?)?)?
                }
                MathOp::Cmp(c, a, d) => {
                    let c = match c {
                        Cmp::Lt => Compare::Lt,
                        Cmp::Eq => Compare::Eq,
                        Cmp::Ne => Compare::Ne,
                    };
                    self.compare(c, v[a], v[d])?
                }
                MathOp::Select(m, a, c) => self.select(v[m], v[a], v[c])?,
            };
            v.push(r);
        }
        v.last()
            .copied()
            .ok_or_else(|| err("math", "an empty program"))
    }

    /// `r`, or NaN where `x` or `y` is NaN.
    fn nan_if_unordered(
        &self,
        x: BasicValueEnum<'ctx>,
        y: BasicValueEnum<'ctx>,
        r: BasicValueEnum<'ctx>,
        width: u32,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let uno = float2!(self.cg.b, build_float_compare, x, y, FloatPredicate::UNO)?;
        self.select(uno, self.cg.konst(f32::NAN, width)?, r)
    }

    /// A lane mask (or a flag) with the interpreter's comparison semantics: ordered
    /// except `ne`.
    fn compare(
        &self,
        c: Compare,
        x: BasicValueEnum<'ctx>,
        y: BasicValueEnum<'ctx>,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let p = match c {
            Compare::Lt => FloatPredicate::OLT,
            Compare::Le => FloatPredicate::OLE,
            Compare::Gt => FloatPredicate::OGT,
            Compare::Ge => FloatPredicate::OGE,
            Compare::Eq => FloatPredicate::OEQ,
            Compare::Ne => FloatPredicate::UNE,
        };
        float2!(self.cg.b, build_float_compare, x, y, p)
    }

    fn select(
        &self,
        c: BasicValueEnum<'ctx>,
        x: BasicValueEnum<'ctx>,
        y: BasicValueEnum<'ctx>,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let b = &self.cg.b;
        match c {
            BasicValueEnum::IntValue(c) => b.build_select(c, x, y, "sel"),
            BasicValueEnum::VectorValue(c) => b.build_select(c, x, y, "sel"),
            _ => return Err(err("select", "not a mask")),
        }
        .map_err(ber)
    }

    fn binary(
        &self,
        op: BinaryOp,
        x: BasicValueEnum<'ctx>,
        y: BasicValueEnum<'ctx>,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let (cg, b) = (self.cg, &self.cg.b);
        match loop_ops::binary(op) {
            BinaryCode::Add => float2!(b, build_float_add, x, y),
            BinaryCode::Sub => float2!(b, build_float_sub, x, y),
            BinaryCode::Mul => float2!(b, build_float_mul, x, y),
            BinaryCode::Div => float2!(b, build_float_div, x, y),
            // `dnnc_ir::scalar::max`: IEEE 754-2019 `maximum` (NaN if either is NaN,
            // +0 of ±0), as Cranelift's `fmax`. LLVM 14 cannot select
            // `llvm.maximum` for vectors, so it is spelled out.
            BinaryCode::Max => self.extreme(x, y, true),
            BinaryCode::Min => self.extreme(x, y, false),
            // `x - y * floor(x / y)`, rounded at each step.
            BinaryCode::Rem => {
                let q = float2!(b, build_float_div, x, y)?;
                let f = cg.intrinsic("llvm.floor", &[q])?;
                let p = float2!(b, build_float_mul, y, f)?;
                float2!(b, build_float_sub, x, p)
            }
            BinaryCode::Call(h) => cg.helper(h, &[x, y]),
            BinaryCode::Compare(c) => self.compare(c, x, y),
            BinaryCode::NotInLoops => Err(err("loop", format!("no code for `{}`", op.name()))),
        }
    }
}
