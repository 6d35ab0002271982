//! `scan` unrolled: the body is lowered once per step of the leading axis, with the
//! step's slice and the carried values bound, and the values are stacked along a new
//! leading axis. Backpropagation through time is then the graph's ordinary reverse
//! pass, and a training step keeps each step's activations — what BPTT needs.

use dnnc_ir::{NodeId, Op};
use dnnc_syntax::ast::{self, Expr};

use crate::emit::Res;
use crate::eval::{block, expr, tensor};
use crate::lowerer::Lowerer;
use crate::value::Val;

pub fn scan(
    lw: &mut Lowerer<'_, '_>,
    item: &ast::Name,
    over: &Expr,
    carries: &[(ast::Name, Expr)],
    body: &ast::Block,
) -> Res<Val> {
    let xs_val = expr(lw, over)?;
    let xs = tensor(lw, &xs_val, None)?;
    let mut state: Vec<NodeId> = carries
        .iter()
        .map(|(_, e)| {
            let v = expr(lw, e)?;
            tensor(lw, &v, None)
        })
        .collect::<Res<_>>()?;
    let shape = lw.em.shape(xs);
    let (&steps, rest) = shape
        .split_first()
        .ok_or("`scan` over a tensor without a leading axis")?;
    let mut stacks: Vec<Vec<NodeId>> = Vec::new();
    let mut tuple = carries.len() > 1;
    for t in 0..steps {
        let mut starts = vec![0; shape.len()];
        let mut ends = shape.clone();
        starts[0] = t;
        ends[0] = t + 1;
        let x = lw.em.add(
            Op::Slice {
                starts,
                ends,
                steps: vec![1; shape.len()],
            },
            &[xs],
        )?;
        let x = lw.em.reshape(x, rest)?;
        lw.scopes.push(Default::default());
        lw.bind(&item.text, Val::T(x));
        for ((name, _), &h) in carries.iter().zip(&state) {
            lw.bind(&name.text, Val::T(h));
        }
        let v = block(lw, body);
        lw.scopes.pop();
        let outputs: Vec<NodeId> = match v? {
            Val::T(n) => vec![n],
            Val::Tuple(vs) => {
                tuple = true;
                vs.iter().map(|v| tensor(lw, v, None)).collect::<Res<_>>()?
            }
            other => return Err(format!("the body of `scan` gave a {}", other.kind()).into()),
        };
        if !carries.is_empty() {
            state = outputs.clone();
        }
        stacks.resize(outputs.len(), Vec::new());
        for (stack, o) in stacks.iter_mut().zip(outputs) {
            let mut one = vec![1];
            one.extend(lw.em.shape(o));
            stack.push(lw.em.reshape(o, &one)?);
        }
    }
    if steps == 0 {
        // No step ran: empty stacks of the carried values' shapes.
        if carries.is_empty() {
            return Err("`scan` over an empty sequence without carried values".into());
        }
        let empties: Vec<Val> = state
            .iter()
            .map(|&h| {
                let mut s = vec![0];
                s.extend(lw.em.shape(h));
                Ok(Val::T(lw.em.full(0.0, lw.em.dtype(h), &s)?))
            })
            .collect::<Res<_>>()?;
        return Ok(if tuple {
            Val::Tuple(empties)
        } else {
            empties.into_iter().next().expect("one carry")
        });
    }
    let stacked: Vec<Val> = stacks
        .into_iter()
        .map(|s| {
            Ok(Val::T(if s.len() == 1 {
                s[0]
            } else {
                lw.em.add(Op::Concat { axis: 0 }, &s)?
            }))
        })
        .collect::<Res<_>>()?;
    Ok(if tuple {
        Val::Tuple(stacked)
    } else {
        stacked.into_iter().next().expect("one output")
    })
}
