//! The schedule and its memory plan as text, for `dnnc compile --emit schedule` and the
//! golden schedule tests.
//!
//! ```text
//! schedule mlp: 9 steps (3 loops, 2 matmuls, 3 kernels, 1 copy); arena 4.0 KiB, 12.0 KiB unshared; 1 update in place
//!   v0 = input "x" f32[512]
//!   s0: v5 = matmul v0, v1ᵀ + v2, relu  [1×16×32]            @arena+0
//!   s1: v6 = loop(mul, add) v5, v3                            @arena+2048 (reuses v5)
//! ```

use std::fmt::Write;

use dnnc_ir::{Graph, Op};

use crate::plan::{Place, Plan};
use dnnc_exec::program::Operand;

use crate::schedule::{Role, Schedule, Work};

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn operand(o: &Operand) -> String {
    let at = if o.offset > 0 {
        format!("[+{}]", o.offset)
    } else {
        String::new()
    };
    format!("v{}{at}{}", o.val, if o.transposed { "ᵀ" } else { "" })
}

/// The text of `s` as planned by `plan`.
pub(crate) fn schedule(g: &Graph, s: &Schedule, plan: &Plan) -> String {
    let name = &g.name;
    let count = |f: fn(&Work) -> bool| s.steps.iter().filter(|w| f(w)).count();
    let loops = count(|w| matches!(w, Work::Loop { .. }));
    let matmuls = count(|w| matches!(w, Work::MatMul { .. }));
    let kernels = count(|w| matches!(w, Work::Kernel { .. }));
    let copies = count(|w| matches!(w, Work::Copy { .. }));
    let in_place = plan
        .place
        .iter()
        .filter(|p| matches!(p, Place::Alias(_)))
        .count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "schedule {name}: {} ({}, {}, {}, {}); arena {}, {} unshared; {} in place",
        plural(s.steps.len(), "step", "steps"),
        plural(loops, "loop", "loops"),
        plural(matmuls, "matmul", "matmuls"),
        plural(kernels, "kernel", "kernels"),
        plural(copies, "copy", "copies"),
        size(plan.arena_bytes),
        size(plan.unshared_bytes),
        plural(in_place, "update", "updates"),
    );
    for (v, val) in s.vals.iter().enumerate() {
        let what = match &val.role {
            Role::Temp => continue,
            Role::Input(n) => format!("input \"{n}\""),
            Role::State(n) => format!("state \"{n}\""),
            Role::Const(_) => "const".to_string(),
        };
        let _ = writeln!(out, "  v{v} = {what} {}[{}]", val.dtype.name(), val.len);
    }
    let leaves = |vs: &[usize]| {
        vs.iter()
            .map(|v| format!("v{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, w) in s.steps.iter().enumerate() {
        let writes = w.writes();
        let o = *writes.last().expect("every step writes");
        let body = match w {
            Work::Loop {
                group,
                leaves: l,
                stores,
                n,
                ..
            } => {
                // The op names, in evaluation order, of a loop's members; splats are
                // folded into their users.
                let ops: Vec<&str> = group
                    .members
                    .iter()
                    .filter(|&&m| !matches!(g.node(m).op, Op::Broadcast(_)))
                    .map(|&m| g.node(m).op.name())
                    .collect();
                let also = if stores.is_empty() {
                    String::new()
                } else {
                    let st: Vec<String> = stores
                        .iter()
                        .map(|&v| format!("v{v} {}", place_of(s, plan, v)))
                        .collect();
                    format!("  also storing {}", st.join(", "))
                };
                // `split`: large enough work to run on every thread.
                let values = l.len() + stores.len() + 1;
                let cost = crate::loop_ops::loop_cost(g, &group.members, values);
                let split = if dnnc_exec::loop_splits(*n, cost) {
                    ", split"
                } else {
                    ""
                };
                format!("loop({}) {}  [{n}{split}]{also}", ops.join(", "), leaves(l))
            }
            Work::Kernel { k, args, .. } => format!("{} {}", k.name(), leaves(args)),
            Work::MatMul {
                a,
                b,
                dims,
                bias,
                relu,
                bf16,
                ..
            } => {
                let name = if *bf16 { "matmul_bf16" } else { "matmul" };
                let mut t = format!("{name} {}, {}", operand(a), operand(b));
                if let Some(bias) = bias {
                    let _ = write!(t, " + v{bias}");
                }
                if *relu {
                    t.push_str(", relu");
                }
                let [batch, m, k, n] = dims;
                let _ = write!(t, "  [{batch}×{m}×{k}×{n}]");
                t
            }
            Work::Copy { src, .. } => format!("copy v{src}"),
        };
        let _ = writeln!(out, "  s{i}: v{o} = {body}  {}", place_of(s, plan, o));
    }
    out
}

/// Where value `v` lives, in words.
fn place_of(s: &Schedule, plan: &Plan, v: usize) -> String {
    match plan.place[v] {
        Place::Own => match &s.vals[v].role {
            Role::State(n) => format!("state \"{n}\""),
            _ => "own".to_string(),
        },
        Place::Arena(off) => format!("@arena+{off}"),
        Place::Alias(st) => match &s.vals[st].role {
            Role::State(n) => format!("in place of state \"{n}\""),
            _ => format!("in v{st}"),
        },
    }
}
