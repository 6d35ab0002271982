//! Evaluating expressions to values, emitting IR for every tensor operation.

use std::sync::Arc;

use dnnc_ir::{BinaryOp, DType, NodeId, Op, UnaryOp};
use dnnc_syntax::ast::{self, BinOp, Expr, ExprKind, IndexItem, Pattern, UnOp};

use crate::emit::Res;
use crate::lowerer::Lowerer;
use crate::value::Val;

pub fn expr(lw: &mut Lowerer<'_, '_>, e: &Expr) -> Res<Val> {
    match &e.kind {
        ExprKind::Int(v) => Ok(Val::Int(*v)),
        ExprKind::Float(v) => Ok(Val::Float(*v)),
        ExprKind::Str(s) => Ok(Val::Str(Arc::from(s.as_str()))),
        ExprKind::Bool(b) => Ok(Val::Bool(*b)),
        ExprKind::Name(n) => lw.lookup(&n.text),
        ExprKind::Tuple(es) => Ok(Val::Tuple(
            es.iter().map(|e| expr(lw, e)).collect::<Res<_>>()?,
        )),
        ExprKind::List(es) => Ok(Val::List(
            es.iter().map(|e| expr(lw, e)).collect::<Res<_>>()?,
        )),
        ExprKind::Record(fs) => Ok(Val::Record(
            fs.iter()
                .map(|(n, e)| Ok((Arc::from(n.text.as_str()), expr(lw, e)?)))
                .collect::<Res<_>>()?,
        )),
        ExprKind::Unary(op, x) => {
            let v = expr(lw, x)?;
            unary(lw, *op, v)
        }
        ExprKind::Binary { op, lhs, rhs, .. } => {
            let a = expr(lw, lhs)?;
            let b = expr(lw, rhs)?;
            binary(lw, *op, a, b)
        }
        ExprKind::Pipe(lhs, rhs) => {
            let first = expr(lw, lhs)?;
            match &rhs.kind {
                ExprKind::Call { callee, args } => {
                    let f = expr(lw, callee)?;
                    let mut vals = vec![(None, first)];
                    vals.extend(args_of(lw, args)?);
                    crate::calls::call(lw, f, vals)
                }
                _ => {
                    let f = expr(lw, rhs)?;
                    crate::calls::call(lw, f, vec![(None, first)])
                }
            }
        }
        ExprKind::Call { callee, args } => {
            if let Some(v) = size_of(lw, callee, args)? {
                return Ok(v);
            }
            let f = expr(lw, callee)?;
            let vals = args_of(lw, args)?;
            crate::calls::call(lw, f, vals)
        }
        ExprKind::Field(base, name) => {
            let b = expr(lw, base)?;
            field(lw, b, &name.text)
        }
        ExprKind::Index(base, items) => {
            let b = expr(lw, base)?;
            index(lw, b, items)
        }
        ExprKind::If { cond, then, els } => match expr(lw, cond)? {
            Val::Bool(true) => block(lw, then),
            Val::Bool(false) => match els {
                Some(e) => expr(lw, e),
                None => Err("`if` without `else`".into()),
            },
            other => Err(format!("`if` condition is a {}", other.kind()).into()),
        },
        ExprKind::Block(b) => block(lw, b),
        ExprKind::Scan {
            item,
            over,
            carries,
            body,
        } => crate::scan::scan(lw, item, over, carries, body),
        ExprKind::Error => Err("an expression that did not parse".into()),
    }
}

pub fn args_of(lw: &mut Lowerer<'_, '_>, args: &[ast::Arg]) -> Res<Vec<(Option<String>, Val)>> {
    args.iter()
        .map(|a| Ok((a.name.as_ref().map(|n| n.text.clone()), expr(lw, &a.value)?)))
        .collect()
}

pub fn block(lw: &mut Lowerer<'_, '_>, b: &ast::Block) -> Res<Val> {
    lw.scopes.push(Default::default());
    let r = (|| {
        for l in &b.lets {
            let v = expr(lw, &l.value)?;
            bind_pattern(lw, &l.pattern, v)?;
        }
        expr(lw, &b.value)
    })();
    lw.scopes.pop();
    r
}

pub fn bind_pattern(lw: &mut Lowerer<'_, '_>, p: &Pattern, v: Val) -> Res<()> {
    match p {
        Pattern::Name(n) => {
            lw.bind(&n.text, v);
            Ok(())
        }
        Pattern::Tuple(ps, _) => match v {
            Val::Tuple(vs) if vs.len() == ps.len() => {
                for (p, v) in ps.iter().zip(vs) {
                    bind_pattern(lw, p, v)?;
                }
                Ok(())
            }
            other => Err(format!("cannot destructure a {}", other.kind()).into()),
        },
    }
}

/// `size(S)` of a pack, or `size(x)` of a tensor.
fn size_of(lw: &mut Lowerer<'_, '_>, callee: &Expr, args: &[ast::Arg]) -> Res<Option<Val>> {
    let ExprKind::Name(f) = &callee.kind else {
        return Ok(None);
    };
    if f.text != "size" {
        return Ok(None);
    }
    let [a] = args else {
        return Err("`size` takes one argument".into());
    };
    if let ExprKind::Name(p) = &a.value.kind {
        if let Ok(Val::Shape(dims)) = lw.lookup(&format!("..{}", p.text)) {
            return Ok(Some(Val::Int(dims.iter().product::<usize>() as i64)));
        }
    }
    match expr(lw, &a.value)? {
        Val::T(x) => Ok(Some(Val::Int(
            lw.em.shape(x).iter().product::<usize>() as i64
        ))),
        other => Err(format!("`size` of a {}", other.kind()).into()),
    }
}

/// A tensor for `v`; statics become constants of `like`'s element type (or their own).
pub fn tensor(lw: &mut Lowerer<'_, '_>, v: &Val, like: Option<DType>) -> Res<NodeId> {
    match v {
        Val::T(n) => Ok(*n),
        Val::Float(x) => {
            let dt = match like {
                Some(d) if d.is_float() => d,
                _ => DType::F32,
            };
            lw.em.constant(*x, dt)
        }
        Val::Int(i) => lw.em.constant(*i as f64, like.unwrap_or(DType::I64)),
        Val::Bool(b) => lw.em.constant(f64::from(u8::from(*b)), DType::Bool),
        other => Err(format!("expected a tensor, found a {}", other.kind()).into()),
    }
}

fn unary(lw: &mut Lowerer<'_, '_>, op: UnOp, v: Val) -> Res<Val> {
    match (op, v) {
        (UnOp::Neg, Val::Int(i)) => Ok(Val::Int(-i)),
        (UnOp::Neg, Val::Float(x)) => Ok(Val::Float(-x)),
        (UnOp::Not, Val::Bool(b)) => Ok(Val::Bool(!b)),
        (UnOp::Neg, Val::T(x)) => Ok(Val::T(lw.em.unary(UnaryOp::Neg, x)?)),
        (UnOp::Not, Val::T(x)) => Ok(Val::T(lw.em.unary(UnaryOp::Not, x)?)),
        (_, other) => Err(format!("unary operator on a {}", other.kind()).into()),
    }
}

fn int_op(op: BinOp, a: i64, b: i64) -> Res<Val> {
    use BinOp::*;
    let ov = || "integer overflow".to_string();
    Ok(match op {
        Add => Val::Int(a.checked_add(b).ok_or_else(ov)?),
        Sub => Val::Int(a.checked_sub(b).ok_or_else(ov)?),
        Mul => Val::Int(a.checked_mul(b).ok_or_else(ov)?),
        Div if b != 0 && a % b == 0 => Val::Int(a / b),
        Div if b != 0 => Val::Float(a as f64 / b as f64),
        Rem if b != 0 => Val::Int(a.rem_euclid(b)),
        Pow if b >= 0 => Val::Int(
            a.checked_pow(u32::try_from(b).map_err(|_| ov())?)
                .ok_or_else(ov)?,
        ),
        Pow => Val::Float((a as f64).powf(b as f64)),
        Eq => Val::Bool(a == b),
        Ne => Val::Bool(a != b),
        Lt => Val::Bool(a < b),
        Le => Val::Bool(a <= b),
        Gt => Val::Bool(a > b),
        Ge => Val::Bool(a >= b),
        _ => return Err(format!("`{}` on Ints", op.symbol()).into()),
    })
}

fn float_op(op: BinOp, a: f64, b: f64) -> Res<Val> {
    use BinOp::*;
    Ok(match op {
        Add => Val::Float(a + b),
        Sub => Val::Float(a - b),
        Mul => Val::Float(a * b),
        Div => Val::Float(a / b),
        Rem => Val::Float(a - b * (a / b).floor()),
        Pow => Val::Float(a.powf(b)),
        Eq => Val::Bool(a == b),
        Ne => Val::Bool(a != b),
        Lt => Val::Bool(a < b),
        Le => Val::Bool(a <= b),
        Gt => Val::Bool(a > b),
        Ge => Val::Bool(a >= b),
        _ => return Err(format!("`{}` on Floats", op.symbol()).into()),
    })
}

fn ir_op(op: BinOp) -> Option<BinaryOp> {
    Some(match op {
        BinOp::Add => BinaryOp::Add,
        BinOp::Sub => BinaryOp::Sub,
        BinOp::Mul => BinaryOp::Mul,
        BinOp::Div => BinaryOp::Div,
        BinOp::Rem => BinaryOp::Rem,
        BinOp::Pow => BinaryOp::Pow,
        BinOp::Eq => BinaryOp::Eq,
        BinOp::Ne => BinaryOp::Ne,
        BinOp::Lt => BinaryOp::Lt,
        BinOp::Le => BinaryOp::Le,
        BinOp::Gt => BinaryOp::Gt,
        BinOp::Ge => BinaryOp::Ge,
        BinOp::And => BinaryOp::And,
        BinOp::Or => BinaryOp::Or,
        BinOp::MatMul => return None,
    })
}

pub fn binary(lw: &mut Lowerer<'_, '_>, op: BinOp, a: Val, b: Val) -> Res<Val> {
    match (&a, &b) {
        (Val::Int(x), Val::Int(y)) => return int_op(op, *x, *y),
        (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => {
            let f = |v: &Val| match v {
                Val::Int(i) => *i as f64,
                Val::Float(x) => *x,
                _ => 0.0,
            };
            return float_op(op, f(&a), f(&b));
        }
        (Val::Bool(x), Val::Bool(y)) => {
            return Ok(Val::Bool(match op {
                BinOp::And => *x && *y,
                BinOp::Or => *x || *y,
                BinOp::Eq => x == y,
                BinOp::Ne => x != y,
                _ => return Err("operator on Bools".into()),
            }))
        }
        (Val::Str(x), Val::Str(y)) => {
            return Ok(Val::Bool(match op {
                BinOp::Eq => x == y,
                BinOp::Ne => x != y,
                _ => return Err("operator on Strs".into()),
            }))
        }
        _ => {}
    }
    if op == BinOp::MatMul {
        let (Val::T(x), Val::T(y)) = (&a, &b) else {
            return Err("`@` of non-tensors".into());
        };
        return Ok(Val::T(lw.em.matmul(*x, *y)?));
    }
    // Element types: a Float static with an integer tensor makes both f32.
    let dt_of = |lw: &Lowerer<'_, '_>, v: &Val| match v {
        Val::T(n) => Some(lw.em.dtype(*n)),
        _ => None,
    };
    let (da, db) = (dt_of(lw, &a), dt_of(lw, &b));
    let float_static = matches!(a, Val::Float(_)) || matches!(b, Val::Float(_));
    let target = match (da, db) {
        (Some(x), _) if float_static && !x.is_float() => DType::F32,
        (_, Some(y)) if float_static && !y.is_float() => DType::F32,
        (Some(x), _) => x,
        (None, Some(y)) => y,
        (None, None) => return Err("operator on non-tensors".into()),
    };
    let x = tensor(lw, &a, Some(target))?;
    let y = tensor(lw, &b, Some(target))?;
    let x = lw.em.cast(x, target)?;
    let y = lw.em.cast(y, target)?;
    let iop = ir_op(op).ok_or("no such operator")?;
    Ok(Val::T(lw.em.binary(iop, x, y)?))
}

fn field(lw: &mut Lowerer<'_, '_>, b: Val, name: &str) -> Res<Val> {
    match b {
        Val::Layer(l) => lw
            .layer_member(&l, name)?
            .ok_or_else(|| format!("layer has no member `{name}`").into()),
        Val::Record(fs) => fs
            .into_iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("no field `{name}`").into()),
        other => Err(format!("`.{name}` of a {}", other.kind()).into()),
    }
}

fn static_int(v: &Val) -> Res<i64> {
    match v {
        Val::Int(i) => Ok(*i),
        other => Err(format!("expected a static Int, found a {}", other.kind()).into()),
    }
}

fn index(lw: &mut Lowerer<'_, '_>, b: Val, items: &[IndexItem]) -> Res<Val> {
    if let Val::Tuple(vs) = &b {
        if let [IndexItem::Index(e)] = items {
            let i = static_int(&expr(lw, e)?)?;
            let n = vs.len() as i64;
            let j = if i < 0 { i + n } else { i };
            return vs
                .get(j as usize)
                .cloned()
                .ok_or_else(|| "tuple index out of range".into());
        }
    }
    let Val::T(x) = b else {
        return Err(format!("indexing a {}", b.kind()).into());
    };
    let shape = lw.em.shape(x);
    let rank = shape.len();
    let explicit = items
        .iter()
        .filter(|i| !matches!(i, IndexItem::Ellipsis(_)))
        .count();
    let (mut starts, mut ends, mut steps) = (Vec::new(), Vec::new(), Vec::new());
    let mut drop_axes = Vec::new();
    let mut axis = 0;
    for item in items {
        match item {
            IndexItem::Ellipsis(_) => {
                for _ in 0..rank.saturating_sub(explicit) {
                    starts.push(0);
                    ends.push(shape[axis]);
                    steps.push(1);
                    axis += 1;
                }
            }
            IndexItem::Index(e) => {
                let n = *shape.get(axis).ok_or("too many indices")? as i64;
                let i = static_int(&expr(lw, e)?)?;
                let j = if i < 0 { i + n } else { i };
                if !(0..n).contains(&j) {
                    return Err(format!("index {i} out of range for a dimension of {n}").into());
                }
                starts.push(j as usize);
                ends.push(j as usize + 1);
                steps.push(1);
                drop_axes.push(axis);
                axis += 1;
            }
            IndexItem::Slice {
                start, stop, step, ..
            } => {
                let n = *shape.get(axis).ok_or("too many indices")? as i64;
                let norm = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
                let mut get = |e: &Option<Box<Expr>>| -> Res<Option<i64>> {
                    match e {
                        None => Ok(None),
                        Some(e) => Ok(Some(static_int(&expr(lw, e)?)?)),
                    }
                };
                let a = get(start)?.map_or(0, norm);
                let z = get(stop)?.map_or(n, norm).max(a);
                let s = get(step)?.unwrap_or(1).max(1);
                starts.push(a as usize);
                ends.push(z as usize);
                steps.push(s as usize);
                axis += 1;
            }
        }
    }
    while axis < rank {
        starts.push(0);
        ends.push(shape[axis]);
        steps.push(1);
        axis += 1;
    }
    let full = starts
        .iter()
        .zip(&ends)
        .zip(&steps)
        .zip(&shape)
        .all(|(((a, z), s), n)| *a == 0 && z == n && *s == 1);
    let mut y = if full {
        x
    } else {
        lw.em.add(
            Op::Slice {
                starts,
                ends,
                steps,
            },
            &[x],
        )?
    };
    if !drop_axes.is_empty() {
        let s: Vec<usize> = lw
            .em
            .shape(y)
            .iter()
            .enumerate()
            .filter(|(i, _)| !drop_axes.contains(i))
            .map(|(_, d)| *d)
            .collect();
        y = lw.em.reshape(y, &s)?;
    }
    Ok(Val::T(y))
}
