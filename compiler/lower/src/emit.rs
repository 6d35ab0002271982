//! Building IR for the language's operations: NumPy broadcasting, element-type
//! promotion, matrix products of any rank and reductions, expressed in primitives.

use dnnc_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceKind, UnaryOp};

use crate::error::LowerError;

pub type Res<T> = Result<T, LowerError>;

/// NumPy's broadcast shape of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Res<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let x = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let y = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = if x == y || y == 1 {
            x
        } else if x == 1 {
            y
        } else {
            return Err(format!("shapes {a:?} and {b:?} do not broadcast").into());
        };
    }
    Ok(out)
}

pub struct Emitter<'g> {
    pub g: &'g mut Graph,
    /// Distinguishes random draws: each random op gets the next salt.
    pub next_salt: u64,
}

impl<'g> Emitter<'g> {
    pub fn new(g: &'g mut Graph) -> Emitter<'g> {
        Emitter { g, next_salt: 1 }
    }

    pub fn add(&mut self, op: Op, operands: &[NodeId]) -> Res<NodeId> {
        Ok(self.g.add(op, operands)?)
    }

    pub fn shape(&self, x: NodeId) -> Vec<usize> {
        self.g.ty(x).shape.clone()
    }

    pub fn dtype(&self, x: NodeId) -> DType {
        self.g.ty(x).dtype
    }

    /// When `indices` are a batch field (an input, perhaps reshaped or cast), requires
    /// its values to lie in `0..limit`: the backends check it before every run.
    pub fn limit_index(&mut self, indices: NodeId, limit: usize) {
        if let Some(name) = self.g.input_behind(indices).map(str::to_string) {
            self.g.limit_index(&name, limit);
        }
    }

    pub fn constant(&mut self, value: f64, dtype: DType) -> Res<NodeId> {
        self.add(Op::Const { value, dtype }, &[])
    }

    /// `value` filling `shape`.
    pub fn full(&mut self, value: f64, dtype: DType, shape: &[usize]) -> Res<NodeId> {
        let c = self.constant(value, dtype)?;
        self.broadcast_to(c, shape)
    }

    pub fn broadcast_to(&mut self, x: NodeId, shape: &[usize]) -> Res<NodeId> {
        if self.shape(x) == shape {
            return Ok(x);
        }
        self.add(Op::Broadcast(shape.to_vec()), &[x])
    }

    pub fn cast(&mut self, x: NodeId, dtype: DType) -> Res<NodeId> {
        if self.dtype(x) == dtype {
            return Ok(x);
        }
        self.add(Op::Cast(dtype), &[x])
    }

    pub fn reshape(&mut self, x: NodeId, shape: &[usize]) -> Res<NodeId> {
        if self.shape(x) == shape {
            return Ok(x);
        }
        self.add(Op::Reshape(shape.to_vec()), &[x])
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Res<NodeId> {
        self.add(Op::Unary(op), &[x])
    }

    /// A binary op with broadcasting; operands must already share an element type.
    pub fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Res<NodeId> {
        let shape = broadcast_shape(&self.shape(a), &self.shape(b))?;
        let a = self.broadcast_to(a, &shape)?;
        let b = self.broadcast_to(b, &shape)?;
        self.add(Op::Binary(op), &[a, b])
    }

    pub fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> Res<NodeId> {
        let s1 = broadcast_shape(&self.shape(c), &self.shape(a))?;
        let shape = broadcast_shape(&s1, &self.shape(b))?;
        let c = self.broadcast_to(c, &shape)?;
        let a = self.broadcast_to(a, &shape)?;
        let b = self.broadcast_to(b, &shape)?;
        self.add(Op::Select, &[c, a, b])
    }

    pub fn reduce(
        &mut self,
        kind: ReduceKind,
        x: NodeId,
        axes: &[usize],
        keepdims: bool,
    ) -> Res<NodeId> {
        self.add(
            Op::Reduce {
                kind,
                axes: axes.to_vec(),
                keepdims,
            },
            &[x],
        )
    }

    /// The mean over `axes` (all when empty is not meant: pass every axis).
    pub fn mean(&mut self, x: NodeId, axes: &[usize], keepdims: bool) -> Res<NodeId> {
        let x = self.cast(x, DType::F32)?;
        let n: usize = axes.iter().map(|&a| self.shape(x)[a]).product();
        let s = self.reduce(ReduceKind::Sum, x, axes, keepdims)?;
        let inv = self.constant(1.0 / n.max(1) as f64, DType::F32)?;
        self.binary(BinaryOp::Mul, s, inv)
    }

    /// `a @ b` with the language's rules: vectors are promoted and the promoted axis
    /// removed again; batch dimensions broadcast.
    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Res<NodeId> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let a_vec = sa.len() == 1;
        let b_vec = sb.len() == 1;
        let a2 = if a_vec {
            self.reshape(a, &[1, sa[0]])?
        } else {
            a
        };
        let b2 = if b_vec {
            self.reshape(b, &[sb[0], 1])?
        } else {
            b
        };
        let (sa, sb) = (self.shape(a2), self.shape(b2));
        if sa.len() > 2 && sb.len() == 2 {
            // `[..S, m, k] @ [k, n]` (a layer's weights applied to every position) is
            // one product `[size(S)·m, k] @ [k, n]`: one packing of `b`, and its
            // gradient one product over every row rather than a batch of them summed.
            let rows: usize = sa[..sa.len() - 1].iter().product();
            let flat = self.reshape(a2, &[rows, sa[sa.len() - 1]])?;
            let y = self.add(Op::MatMul, &[flat, b2])?;
            let mut out = sa[..sa.len() - 1].to_vec();
            if !b_vec {
                out.push(sb[1]);
            }
            return self.reshape(y, &out);
        }
        let batch = broadcast_shape(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
        let mut ta = batch.clone();
        ta.extend(&sa[sa.len() - 2..]);
        let mut tb = batch.clone();
        tb.extend(&sb[sb.len() - 2..]);
        let a3 = self.broadcast_to(a2, &ta)?;
        let b3 = self.broadcast_to(b2, &tb)?;
        let y = self.add(Op::MatMul, &[a3, b3])?;
        let mut out = batch;
        if !a_vec {
            out.push(sa[sa.len() - 2]);
        }
        if !b_vec {
            out.push(sb[sb.len() - 1]);
        }
        self.reshape(y, &out)
    }

    pub fn salt(&mut self) -> u64 {
        let s = self.next_salt;
        self.next_salt += 1;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_like_numpy() {
        assert_eq!(broadcast_shape(&[4, 1, 3], &[5, 1]).unwrap(), vec![4, 5, 3]);
        assert_eq!(broadcast_shape(&[], &[2, 3]).unwrap(), vec![2, 3]);
        assert!(broadcast_shape(&[2, 3], &[4]).is_err());
    }
}
